package replay

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/miekg/dns"

	"github.com/bih-nfq/bih-nfq/enr"
	"github.com/bih-nfq/bih-nfq/internal/config"
	"github.com/bih-nfq/bih-nfq/pool"
	"github.com/bih-nfq/bih-nfq/translate"
)

// Addresses of the DNS replay tests: an application on 172.21.112.1 (the
// RFC 6535 §4.4 host source, mapped by an explicit mapping) asking a local
// resolver, and IPv6-only servers.
var (
	zoneApp4      = netip.MustParseAddr("172.21.112.1")
	zoneResolver4 = netip.MustParseAddr("127.0.0.53")
	zoneApp6      = netip.MustParseAddr("::1")
	zoneResolver6 = netip.MustParseAddr("::1")
	zoneAppV6Addr = netip.MustParseAddr("2001:db8:b1a5::1") // 172.21.112.1 maps here
	zoneV6Only    = netip.MustParseAddr("2001:db8:ca5a::80")
	zoneV6Other   = netip.MustParseAddr("2001:db8:ca5a::81")
	zoneMap       = "172.21.112.1=2001:db8:b1a5::1"
)

// zoneText is a master file with an AAAA-only name, a dual-stack name,
// another AAAA-only name, and the ip6.arpa PTR of the first server.
func zoneText(t testing.TB) string {
	t.Helper()
	rev, err := dns.ReverseAddr(zoneV6Only.String())
	if err != nil {
		t.Fatal(err)
	}
	return `$TTL 300
bih.test. IN SOA ns.bih.test. hostmaster.bih.test. 1 3600 600 86400 60
bih.test. IN NS ns.bih.test.
ns.bih.test. IN AAAA 2001:db8:53::53
v6only.bih.test. IN AAAA ` + zoneV6Only.String() + `
other.bih.test. IN AAAA ` + zoneV6Other.String() + `
dual.bih.test. IN A 192.0.2.2
dual.bih.test. IN AAAA 2001:db8:ca5a::2
a.5.a.c.8.b.d.0.1.0.0.2.ip6.arpa. IN SOA ns.bih.test. hostmaster.bih.test. 1 3600 600 86400 60
` + rev + ` IN PTR v6only.bih.test.
`
}

func loadTestZone(t testing.TB) *enr.ZoneUpstream {
	t.Helper()
	z, err := enr.LoadZone(strings.NewReader(zoneText(t)), "", "test.zone")
	if err != nil {
		t.Fatal(err)
	}
	return z
}

// udpDatagram builds an IPv4 or IPv6 UDP datagram with correct checksums.
func udpDatagram(t testing.TB, src, dst netip.AddrPort, payload []byte) []byte {
	t.Helper()
	u := &layers.UDP{SrcPort: layers.UDPPort(src.Port()), DstPort: layers.UDPPort(dst.Port())}
	var ip gopacket.SerializableLayer
	if src.Addr().Is4() {
		ip4 := &layers.IPv4{Version: 4, TTL: 64, Id: 7, Protocol: layers.IPProtocolUDP,
			SrcIP: net.IP(src.Addr().AsSlice()), DstIP: net.IP(dst.Addr().AsSlice())}
		if err := u.SetNetworkLayerForChecksum(ip4); err != nil {
			t.Fatal(err)
		}
		ip = ip4
	} else {
		ip6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP,
			SrcIP: net.IP(src.Addr().AsSlice()), DstIP: net.IP(dst.Addr().AsSlice())}
		if err := u.SetNetworkLayerForChecksum(ip6); err != nil {
			t.Fatal(err)
		}
		ip = ip6
	}
	return serialize(t, ip, u, gopacket.Payload(payload))
}

// tcpSYN builds an IPv4 TCP SYN with correct checksums.
func tcpSYN(t testing.TB, src, dst netip.AddrPort) []byte {
	t.Helper()
	ip := &layers.IPv4{Version: 4, TTL: 64, Id: 9, Flags: layers.IPv4DontFragment, Protocol: layers.IPProtocolTCP,
		SrcIP: net.IP(src.Addr().AsSlice()), DstIP: net.IP(dst.Addr().AsSlice())}
	tc := &layers.TCP{SrcPort: layers.TCPPort(src.Port()), DstPort: layers.TCPPort(dst.Port()), Seq: 1000, SYN: true, Window: 64240}
	if err := tc.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	return serialize(t, ip, tc)
}

func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	b := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(b, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), b.Bytes()...)
}

func pack(t testing.TB, m *dns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dnsQuery is an application's query with RD set, as a stub library sends.
func dnsQuery(id uint16, name string, qtype uint16) *dns.Msg {
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	q.Id = id
	return q
}

// resolverAnswer is what the recursive resolver answers for q: the zone's
// answer, or NXDOMAIN for in-addr.arpa (it knows nothing of pool addresses).
func resolverAnswer(t testing.TB, z *enr.ZoneUpstream, q *dns.Msg) *dns.Msg {
	t.Helper()
	if strings.HasSuffix(q.Question[0].Name, ".in-addr.arpa.") {
		r := new(dns.Msg)
		r.SetRcode(q, dns.RcodeNameError)
		r.RecursionAvailable = true
		return r
	}
	r, err := z.Exchange(context.Background(), q, netip.AddrPort{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// decodeDNS decodes a UDP datagram with gopacket (a decoder independent of
// the one that built it) and checks its checksums by recomputing them.
func decodeDNS(t testing.TB, pkt []byte) (src, dst netip.AddrPort, m *layers.DNS) {
	t.Helper()
	first := layers.LayerTypeIPv4
	if pkt[0]>>4 == 6 {
		first = layers.LayerTypeIPv6
	}
	p := gopacket.NewPacket(pkt, first, gopacket.Default)
	if el := p.ErrorLayer(); el != nil {
		t.Fatalf("decode: %v", el.Error())
	}
	u, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
	m, _ = p.Layer(layers.LayerTypeDNS).(*layers.DNS)
	if u == nil || m == nil {
		t.Fatalf("not UDP DNS: %v", p)
	}
	var sa, da netip.Addr
	switch ip := p.NetworkLayer().(type) {
	case *layers.IPv4:
		sa, _ = netip.AddrFromSlice(ip.SrcIP.To4())
		da, _ = netip.AddrFromSlice(ip.DstIP.To4())
		checkSums(t, pkt, ip, u)
	case *layers.IPv6:
		sa, _ = netip.AddrFromSlice(ip.SrcIP)
		da, _ = netip.AddrFromSlice(ip.DstIP)
		checkSums(t, pkt, ip, u)
	}
	return netip.AddrPortFrom(sa, uint16(u.SrcPort)), netip.AddrPortFrom(da, uint16(u.DstPort)), m
}

// checkSums re-serializes the decoded headers with checksums computed and
// compares with the packet.
func checkSums(t testing.TB, pkt []byte, ip gopacket.NetworkLayer, u *layers.UDP) {
	t.Helper()
	if err := u.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	again := serialize(t, ip.(gopacket.SerializableLayer), u, gopacket.Payload(u.Payload))
	if !bytes.Equal(again, pkt) {
		t.Errorf("checksums or lengths wrong:\n got % x\nwant % x", pkt, again)
	}
}

// newZonePipeline is the pipeline `bih-nfq replay --zone --map` builds.
func newZonePipeline(t testing.TB, pools ...netip.Prefix) (*Pipeline, *DNS) {
	t.Helper()
	d, err := NewDNS(DNSConfig{Upstream: loadTestZone(t), Pool: pool.Config{Pools: pools}, ENR: enr.DefaultConfig()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Error(err)
		}
	})
	tr := config.Default().Translation
	tr.Map = []string{zoneMap}
	m, err := tr.Mapper(d.Pool())
	if err != nil {
		t.Fatal(err)
	}
	tc, err := tr.Build(m)
	if err != nil {
		t.Fatal(err)
	}
	x, err := translate.New(tc)
	if err != nil {
		t.Fatal(err)
	}
	return &Pipeline{Translator: x, Handlers: []Handler{d}}, d
}

// zoneStep is one packet of the DNS replay and what must come of it.
type zoneStep struct {
	name   string
	pkt    []byte
	action Action
	reason string
	// check looks at the single output (nil: the output must be the input).
	check func(t *testing.T, out []byte)
}

// wantA checks a response to the application carrying exactly the A
// records want (none: no A records), with rcode.
func wantA(qname string, rcode layers.DNSResponseCode, want ...string) func(t *testing.T, out []byte) {
	return func(t *testing.T, out []byte) {
		_, _, m := decodeDNS(t, out)
		if !m.QR || m.ResponseCode != rcode || len(m.Questions) != 1 || string(m.Questions[0].Name) != qname {
			t.Fatalf("response %v for %v, want %v for %q", m.ResponseCode, m.Questions, rcode, qname)
		}
		var got []string
		for _, a := range m.Answers {
			if a.Type == layers.DNSTypeA {
				got = append(got, a.IP.String())
			}
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("A records %v, want %v", got, want)
		}
	}
}

func TestDNSReplaySteps(t *testing.T) {
	z := loadTestZone(t)
	app := netip.AddrPortFrom(zoneApp4, 40001)
	res := netip.AddrPortFrom(zoneResolver4, 53)
	app6 := netip.AddrPortFrom(zoneApp6, 40002)
	res6 := netip.AddrPortFrom(zoneResolver6, 53)
	exchange := func(id uint16, name string, qt uint16, c, r netip.AddrPort) (q, resp []byte) {
		m := dnsQuery(id, name, qt)
		return udpDatagram(t, c, r, pack(t, m)), udpDatagram(t, r, c, pack(t, resolverAnswer(t, z, m)))
	}
	qV6, rV6 := exchange(1, "v6only.bih.test.", dns.TypeA, app, res)
	qDual, rDual := exchange(2, "dual.bih.test.", dns.TypeA, app, res)
	qPTR, rPTR := exchange(3, "1.160.170.10.in-addr.arpa.", dns.TypePTR, app, res)
	qPTR2 := udpDatagram(t, app, res, pack(t, dnsQuery(4, "2.160.170.10.in-addr.arpa.", dns.TypePTR)))
	qOther6, rOther6 := exchange(5, "Other.BIH.test.", dns.TypeA, app6, res6)
	_, stray := exchange(6, "v6only.bih.test.", dns.TypeA, app, res) // no query seen for it

	ptrName, err := dns.ReverseAddr(zoneV6Only.String())
	if err != nil {
		t.Fatal(err)
	}
	steps := []zoneStep{
		{name: "A query AAAA-only", pkt: qV6, action: ActionPassed},
		{name: "NODATA response synthesized", pkt: rV6, action: ActionRewritten,
			check: wantA("v6only.bih.test", layers.DNSResponseCodeNoErr, "10.170.160.1")},
		{name: "A query dual-stack", pkt: qDual, action: ActionPassed},
		{name: "dual-stack response untouched", pkt: rDual, action: ActionPassed},
		{name: "PTR query mapped pool address", pkt: qPTR, action: ActionPassed},
		{name: "PTR response from ip6.arpa", pkt: rPTR, action: ActionRewritten, check: func(t *testing.T, out []byte) {
			src, dst, m := decodeDNS(t, out)
			if src != res || dst != app || m.ResponseCode != layers.DNSResponseCodeNoErr ||
				len(m.Questions) != 1 || string(m.Questions[0].Name) != "1.160.170.10.in-addr.arpa" {
				t.Fatalf("%v→%v %v %v", src, dst, m.ResponseCode, m.Questions)
			}
			var ptrs []string
			for _, a := range m.Answers {
				if a.Type == layers.DNSTypePTR {
					ptrs = append(ptrs, string(a.Name)+"="+string(a.PTR))
				}
			}
			// RFC 6535 §2.3.3: the answer comes from the IPv6 address's
			// ip6.arpa name, under the name the application asked.
			if len(ptrs) != 1 || ptrs[0] != "1.160.170.10.in-addr.arpa=v6only.bih.test" {
				t.Errorf("PTR answers %v (zone has %s)", ptrs, ptrName)
			}
		}},
		{name: "PTR unmapped pool address answered locally", pkt: qPTR2, action: ActionAnswered, check: func(t *testing.T, out []byte) {
			src, dst, m := decodeDNS(t, out)
			if src != res || dst != app || !m.QR || m.ID != 4 || m.ResponseCode != layers.DNSResponseCodeNXDomain || len(m.Answers) != 0 {
				t.Errorf("%v→%v id %d rcode %v answers %d, want NXDOMAIN from the resolver", src, dst, m.ID, m.ResponseCode, len(m.Answers))
			}
		}},
		{name: "A query over IPv6", pkt: qOther6, action: ActionPassed},
		{name: "NODATA over IPv6 gets the next pool address", pkt: rOther6, action: ActionRewritten,
			check: wantA("Other.BIH.test", layers.DNSResponseCodeNoErr, "10.170.160.2")},
		{name: "response without a query", pkt: stray, action: ActionPassed, reason: "dns_unmatched"},
		{name: "SYN to the synthesized address", pkt: tcpSYN(t, netip.AddrPortFrom(zoneApp4, 40000), netip.MustParseAddrPort("10.170.160.1:80")),
			action: ActionTranslated, check: func(t *testing.T, out []byte) {
				p := gopacket.NewPacket(out, layers.LayerTypeIPv6, gopacket.Default)
				ip, _ := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
				tc, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
				if ip == nil || tc == nil {
					t.Fatalf("not IPv6 TCP: %v", p)
				}
				if !ip.SrcIP.Equal(net.IP(zoneAppV6Addr.AsSlice())) || !ip.DstIP.Equal(net.IP(zoneV6Only.AsSlice())) || !tc.SYN || tc.DstPort != 80 {
					t.Errorf("%v→%v port %d SYN %v, want %v→%v:80", ip.SrcIP, ip.DstIP, tc.DstPort, tc.SYN, zoneAppV6Addr, zoneV6Only)
				}
				if err := tc.SetNetworkLayerForChecksum(ip); err != nil {
					t.Fatal(err)
				}
				if again := serialize(t, ip, tc); !bytes.Equal(again, out) {
					t.Errorf("checksum wrong:\n got % x\nwant % x", out, again)
				}
			}},
		{name: "SYN to an unmapped pool address", pkt: tcpSYN(t, netip.AddrPortFrom(zoneApp4, 40000), netip.MustParseAddrPort("10.170.160.9:80")),
			action: ActionDropped, reason: "no_mapping_destination"},
	}

	pl, _ := newZonePipeline(t)
	base := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	for i, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			pl.Advance(base.Add(time.Duration(i) * 10 * time.Millisecond))
			netw := IPv4
			if s.pkt[0]>>4 == 6 {
				netw = IPv6
			}
			o, err := pl.Process(s.pkt, netw)
			if err != nil {
				t.Fatal(err)
			}
			if o.Action != s.action || o.Reason.String() != s.reason && !(s.reason == "" && o.Reason == 0) {
				t.Fatalf("%s/%q, want %s/%q", o.Action, o.Reason, s.action, s.reason)
			}
			switch {
			case s.action == ActionDropped:
				if len(o.Packets) != 0 {
					t.Errorf("%d outputs for a drop", len(o.Packets))
				}
			case len(o.Packets) != 1:
				t.Fatalf("%d outputs, want 1", len(o.Packets))
			case s.check == nil:
				if !bytes.Equal(o.Packets[0], s.pkt) {
					t.Errorf("passed packet changed:\n got % x\nwant % x", o.Packets[0], s.pkt)
				}
			default:
				if bytes.Equal(o.Packets[0], s.pkt) {
					t.Errorf("output is the input")
				}
				s.check(t, o.Packets[0])
			}
		})
	}
}

// TestDNSReplayPools checks where synthesized addresses come from: the first
// usable address of the first pool, then the next one.
func TestDNSReplayPools(t *testing.T) {
	z := loadTestZone(t)
	app := netip.AddrPortFrom(zoneApp4, 40001)
	res := netip.AddrPortFrom(zoneResolver4, 53)
	for _, c := range []struct {
		pools []netip.Prefix
		want  []string
	}{
		{nil, []string{"10.170.160.1", "10.170.160.2"}}, // pool defaults (RFC 6535 §4.4)
		{[]netip.Prefix{netip.MustParsePrefix("172.21.80.0/20")}, []string{"172.21.80.1", "172.21.80.2"}},
		{[]netip.Prefix{netip.MustParsePrefix("192.0.2.0/30"), netip.MustParsePrefix("198.51.100.0/24")}, []string{"192.0.2.1", "192.0.2.2"}},
		{[]netip.Prefix{netip.MustParsePrefix("192.0.2.4/30"), netip.MustParsePrefix("198.51.100.0/24")}, []string{"192.0.2.5", "192.0.2.6"}},
	} {
		t.Run(c.want[0], func(t *testing.T) {
			pl, _ := newZonePipeline(t, c.pools...)
			for i, name := range []string{"v6only.bih.test.", "other.bih.test.", "v6only.bih.test."} {
				pl.Advance(time.Unix(1700000000+int64(i), 0))
				q := dnsQuery(uint16(10+i), name, dns.TypeA)
				if o, err := pl.Process(udpDatagram(t, app, res, pack(t, q)), IPv4); err != nil || o.Action != ActionPassed {
					t.Fatalf("query: %v %v", o.Action, err)
				}
				o, err := pl.Process(udpDatagram(t, res, app, pack(t, resolverAnswer(t, z, q))), IPv4)
				if err != nil || o.Action != ActionRewritten || len(o.Packets) != 1 {
					t.Fatalf("response: %v %v", o.Action, err)
				}
				// The third asks the first name again: same mapping (RFC 6535 §6.2).
				wantA(strings.TrimSuffix(name, "."), layers.DNSResponseCodeNoErr, c.want[i%2])(t, o.Packets[0])
			}
		})
	}
}

// TestDNSReplayDeterministic replays the same capture twice through fresh
// pipelines: outputs and verdicts must be identical byte for byte.
func TestDNSReplayDeterministic(t *testing.T) {
	z := loadTestZone(t)
	app := netip.AddrPortFrom(zoneApp4, 40001)
	res := netip.AddrPortFrom(zoneResolver4, 53)
	var frames []testFrame
	base := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	for i, name := range []string{"other.bih.test.", "v6only.bih.test.", "dual.bih.test.", "v6only.bih.test."} {
		q := dnsQuery(uint16(i+1), name, dns.TypeA)
		at := base.Add(time.Duration(i) * 90 * time.Second) // past the cache's and the clock's steps
		frames = append(frames,
			testFrame{ts: at, data: udpDatagram(t, app, res, pack(t, q))},
			testFrame{ts: at.Add(time.Millisecond), data: udpDatagram(t, res, app, pack(t, resolverAnswer(t, z, q)))})
	}
	frames = append(frames, testFrame{ts: base.Add(10 * time.Minute),
		data: tcpSYN(t, netip.AddrPortFrom(zoneApp4, 40000), netip.MustParseAddrPort("10.170.160.2:443"))})
	in := buildCapture(t, FormatPcap, layers.LinkTypeRaw, frames)
	run := func() (out, verdicts []byte) {
		pl, _ := newZonePipeline(t)
		var o, v bytes.Buffer
		if _, err := Run(bytes.NewReader(in), &o, &v, pl); err != nil {
			t.Fatal(err)
		}
		return o.Bytes(), v.Bytes()
	}
	out1, v1 := run()
	out2, v2 := run()
	if !bytes.Equal(out1, out2) || !bytes.Equal(v1, v2) {
		t.Fatalf("two replays differ:\n%s\n%s", v1, v2)
	}
	want := `{"index":0,"action":"passed","reason":"","outputs":[0]}
{"index":1,"action":"rewritten","reason":"","outputs":[1]}
{"index":2,"action":"passed","reason":"","outputs":[2]}
{"index":3,"action":"rewritten","reason":"","outputs":[3]}
{"index":4,"action":"passed","reason":"","outputs":[4]}
{"index":5,"action":"passed","reason":"","outputs":[5]}
{"index":6,"action":"passed","reason":"","outputs":[6]}
{"index":7,"action":"rewritten","reason":"","outputs":[7]}
{"index":8,"action":"translated","reason":"","outputs":[8]}
`
	if string(v1) != want {
		t.Errorf("verdicts:\n%s\nwant:\n%s", v1, want)
	}
	pkts, _ := readOutput(t, out1)
	wantA("other.bih.test", layers.DNSResponseCodeNoErr, "10.170.160.1")(t, pkts[1])
	wantA("v6only.bih.test", layers.DNSResponseCodeNoErr, "10.170.160.2")(t, pkts[3])
	wantA("v6only.bih.test", layers.DNSResponseCodeNoErr, "10.170.160.2")(t, pkts[7])
	if p := gopacket.NewPacket(pkts[8], layers.LayerTypeIPv6, gopacket.Default); p.NetworkLayer() == nil ||
		p.NetworkLayer().NetworkFlow().Dst().String() != zoneV6Only.String() {
		t.Errorf("SYN to 10.170.160.2 went to %v, want %v", p.NetworkLayer(), zoneV6Only)
	}
}

// TestDNSHandlerLeavesOthers: only UDP to or from port 53 is claimed, and
// not fragments after the first.
func TestDNSHandlerLeavesOthers(t *testing.T) {
	_, d := newZonePipeline(t)
	app := netip.AddrPortFrom(zoneApp4, 40001)
	res := netip.AddrPortFrom(zoneResolver4, 53)
	dnsPkt := udpDatagram(t, app, res, pack(t, dnsQuery(1, "v6only.bih.test.", dns.TypeA)))
	laterFrag := append([]byte(nil), dnsPkt...)
	laterFrag[6], laterFrag[7] = 0, 10 // fragment offset 80: no UDP header here
	for _, c := range []struct {
		name  string
		pkt   []byte
		claim bool
	}{
		{"query", dnsPkt, true},
		{"response", udpDatagram(t, res, app, []byte{0, 1, 0x80, 0}), true},
		{"other udp", udpDatagram(t, app, netip.MustParseAddrPort("127.0.0.53:5353"), []byte("x")), false},
		{"tcp to 53", tcpSYN(t, app, res), false},
		{"later fragment", laterFrag, false},
		{"short", dnsPkt[:22], false},
	} {
		t.Run(c.name, func(t *testing.T) {
			buf := make([]byte, translate.Headroom+len(c.pkt))
			copy(buf[translate.Headroom:], c.pkt)
			_, ok, err := d.Handle(buf, translate.Headroom, IPv4)
			if err != nil || ok != c.claim {
				t.Errorf("claimed %v (%v), want %v", ok, err, c.claim)
			}
		})
	}
}

func TestNewDNSErrors(t *testing.T) {
	if _, err := NewDNS(DNSConfig{}); err == nil {
		t.Error("no upstream accepted")
	}
	_, err := NewDNS(DNSConfig{Upstream: loadTestZone(t), ENR: enr.DefaultConfig(),
		Pool: pool.Config{Pools: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}})
	if err == nil || !strings.Contains(err.Error(), "prefix length") {
		t.Errorf("a /8 pool: %v", err)
	}
}

// FuzzDNSHandler feeds arbitrary IP packets through a --zone pipeline.
// Invariants: no panic, no error (every packet gets a verdict); a packet
// passed by the ENR comes out unchanged; a rewritten or answered one comes
// out as one IP/UDP datagram between the same two endpoints.
func FuzzDNSHandler(f *testing.F) {
	z := loadTestZone(f)
	app := netip.AddrPortFrom(zoneApp4, 40001)
	res := netip.AddrPortFrom(zoneResolver4, 53)
	for i, name := range []string{"v6only.bih.test.", "dual.bih.test.", "1.160.170.10.in-addr.arpa.", "2.160.170.10.in-addr.arpa."} {
		qt := dns.TypeA
		if strings.HasSuffix(name, "arpa.") {
			qt = dns.TypePTR
		}
		q := dnsQuery(uint16(i), name, qt)
		qb, rb := udpDatagram(f, app, res, pack(f, q)), udpDatagram(f, res, app, pack(f, resolverAnswer(f, z, q)))
		f.Add(qb, rb)
		six := udpDatagram(f, netip.AddrPortFrom(zoneApp6, 40002), netip.AddrPortFrom(zoneResolver6, 53), pack(f, q))
		f.Add(six, rb[:len(rb)-3])
	}
	f.Fuzz(func(t *testing.T, query, response []byte) {
		pl, _ := newZonePipeline(t)
		for _, pkt := range [][]byte{query, response} {
			if len(pkt) == 0 {
				continue
			}
			netw := IPv4
			if pkt[0]>>4 == 6 {
				netw = IPv6
			}
			o, err := pl.Process(pkt, netw)
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			switch o.Action {
			case ActionPassed:
				if len(o.Packets) != 1 || !bytes.Equal(o.Packets[0], pkt) {
					t.Fatalf("passed packet changed")
				}
			case ActionRewritten, ActionAnswered:
				if len(o.Packets) != 1 {
					t.Fatalf("%s with %d outputs", o.Action, len(o.Packets))
				}
				src, dst, _ := decodeDNS(t, o.Packets[0])
				in := gopacket.NewPacket(pkt, map[Network]gopacket.LayerType{IPv4: layers.LayerTypeIPv4, IPv6: layers.LayerTypeIPv6}[netw], gopacket.Default)
				if in.TransportLayer() == nil || in.NetworkLayer() == nil {
					t.Fatalf("%s for a packet gopacket cannot decode", o.Action)
				}
				ends := []string{src.Addr().String(), dst.Addr().String()}
				nf := in.NetworkLayer().NetworkFlow()
				if !strings.Contains(strings.Join(ends, " "), nf.Src().String()) || !strings.Contains(strings.Join(ends, " "), nf.Dst().String()) {
					t.Fatalf("%s: %v→%v for input %v", o.Action, src, dst, nf)
				}
			}
		}
	})
}

// TestDNSReplayCaptureClock: mapping lifetimes run on the capture's clock. A
// mapping carries traffic while it lives; hours of capture time later, past
// its DNS lifetime (TTL + grace) and idle timeout, it is gone and the same
// packet finds no mapping, however fast the replay runs.
func TestDNSReplayCaptureClock(t *testing.T) {
	z := loadTestZone(t)
	app := netip.AddrPortFrom(zoneApp4, 40001)
	res := netip.AddrPortFrom(zoneResolver4, 53)
	q := dnsQuery(1, "v6only.bih.test.", dns.TypeA)
	syn := tcpSYN(t, netip.AddrPortFrom(zoneApp4, 40000), netip.MustParseAddrPort("10.170.160.1:80"))
	t0 := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	idle := pool.DefaultGrace + pool.DefaultIdleTimeout + pool.DefaultSweepInterval + time.Minute
	steps := []struct {
		at     time.Duration
		pkt    []byte
		action Action
		reason string
	}{
		{0, udpDatagram(t, app, res, pack(t, q)), ActionPassed, ""},
		{time.Millisecond, udpDatagram(t, res, app, pack(t, resolverAnswer(t, z, q))), ActionRewritten, ""},
		{time.Minute, syn, ActionTranslated, ""},
		{time.Minute + idle/2, syn, ActionTranslated, ""},
		// Used again 20 s later, between two sweeps: the use is recorded
		// at that capture time, so past its DNS lifetime the mapping stays
		// until it has been idle for IdleTimeout from there.
		{time.Minute + idle/2 + 20*time.Second, syn, ActionTranslated, ""},
		{time.Minute + idle/2 + 20*time.Second + pool.DefaultIdleTimeout - 10*time.Second, syn, ActionTranslated, ""},
		{time.Minute + idle/2 + 20*time.Second + pool.DefaultIdleTimeout - 10*time.Second + idle, syn, ActionDropped, "no_mapping_destination"},
	}
	pl, _ := newZonePipeline(t)
	for i, s := range steps {
		pl.Advance(t0.Add(s.at))
		o, err := pl.Process(s.pkt, IPv4)
		if err != nil {
			t.Fatal(err)
		}
		if o.Action != s.action || (s.reason != "" && o.Reason.String() != s.reason) {
			t.Errorf("step %d at +%v: %s/%s, want %s/%s", i, s.at, o.Action, o.Reason, s.action, s.reason)
		}
	}
}
