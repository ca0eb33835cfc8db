package main

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/miekg/dns"

	"github.com/bih-nfq/bih-nfq/enr"
)

// The --zone tests: an application on 172.21.112.1 asks the local resolver
// (127.0.0.53) for names whose servers are IPv6-only.
const (
	zoneMapFlag = "--map=172.21.112.1=2001:db8:b1a5::1"
	zoneServer  = "2001:db8:ca5a::80"
	zoneFile    = `$ORIGIN bih.test.
$TTL 300
@       IN SOA ns hostmaster 1 3600 600 86400 60
        IN NS  ns
ns      IN AAAA 2001:db8:53::53
v6only  IN AAAA ` + zoneServer + `
dual    IN A    192.0.2.2
dual    IN AAAA 2001:db8:ca5a::2
$ORIGIN a.5.a.c.8.b.d.0.1.0.0.2.ip6.arpa.
@       IN SOA ns.bih.test. hostmaster.bih.test. 1 3600 600 86400 60
0.8.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0 IN PTR v6only.bih.test.
`
)

var (
	zoneApp      = netip.MustParseAddrPort("172.21.112.1:40001")
	zoneResolver = netip.MustParseAddrPort("127.0.0.53:53")
)

// zoneDatagram builds an IPv4 UDP datagram with correct checksums.
func zoneDatagram(t *testing.T, src, dst netip.AddrPort, m *dns.Msg) []byte {
	t.Helper()
	payload, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP,
		SrcIP: net.IP(src.Addr().AsSlice()), DstIP: net.IP(dst.Addr().AsSlice())}
	u := &layers.UDP{SrcPort: layers.UDPPort(src.Port()), DstPort: layers.UDPPort(dst.Port())}
	if err := u.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	return zoneSerialize(t, ip, u, gopacket.Payload(payload))
}

func zoneSYN(t *testing.T, dst string) []byte {
	t.Helper()
	ip := &layers.IPv4{Version: 4, TTL: 64, Flags: layers.IPv4DontFragment, Protocol: layers.IPProtocolTCP,
		SrcIP: net.IP{172, 21, 112, 1}, DstIP: net.ParseIP(dst).To4()}
	tc := &layers.TCP{SrcPort: 40000, DstPort: 80, Seq: 1, SYN: true, Window: 64240}
	if err := tc.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	return zoneSerialize(t, ip, tc)
}

func zoneSerialize(t *testing.T, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	b := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(b, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), b.Bytes()...)
}

// zoneCapture writes the capture: A for an AAAA-only name and its NODATA
// response, A for a dual-stack name and its response, PTR for the first pool
// address (the resolver says NXDOMAIN), PTR for an unmapped pool address,
// and a SYN to poolAddr. It returns the zone file and capture paths.
func zoneCapture(t *testing.T, dir, poolAddr string) (zonePath, inPath string) {
	t.Helper()
	zonePath = filepath.Join(dir, "bih.zone")
	if err := os.WriteFile(zonePath, []byte(zoneFile), 0o600); err != nil {
		t.Fatal(err)
	}
	z, err := enr.LoadZoneFile(zonePath, "")
	if err != nil {
		t.Fatal(err)
	}
	rev := func(a string) string {
		r, err := dns.ReverseAddr(a)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	pool2 := netip.MustParseAddr(poolAddr).Next().String()
	var frames [][]byte
	for i, q := range []struct {
		name  string
		qtype uint16
		nx    bool // the resolver answers NXDOMAIN, not the zone
		noAns bool // the capture holds no response
	}{
		{"v6only.bih.test.", dns.TypeA, false, false},
		{"dual.bih.test.", dns.TypeA, false, false},
		{rev(poolAddr), dns.TypePTR, true, false},
		{rev(pool2), dns.TypePTR, false, true},
	} {
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.qtype)
		m.Id = uint16(100 + i)
		frames = append(frames, zoneDatagram(t, zoneApp, zoneResolver, m))
		var r *dns.Msg
		switch {
		case q.noAns:
			continue
		case q.nx:
			r = new(dns.Msg)
			r.SetRcode(m, dns.RcodeNameError)
		default:
			if r, err = z.Exchange(context.Background(), m, netip.AddrPort{}); err != nil {
				t.Fatal(err)
			}
		}
		frames = append(frames, zoneDatagram(t, zoneResolver, zoneApp, r))
	}
	frames = append(frames, zoneSYN(t, poolAddr))
	return zonePath, writePcap(t, dir, "dns.pcap", layers.LinkTypeRaw, frames...)
}

// readRaw returns the packets of a LINKTYPE_RAW pcap.
func readRaw(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := pcapgo.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	var pkts [][]byte
	for {
		d, _, err := r.ReadPacketData()
		if err != nil {
			return pkts
		}
		pkts = append(pkts, d)
	}
}

// outDNS unpacks the DNS message of an IPv4 UDP output packet.
func outDNS(t *testing.T, pkt []byte) *dns.Msg {
	t.Helper()
	p := gopacket.NewPacket(pkt, layers.LayerTypeIPv4, gopacket.NoCopy)
	u, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
	if !ok {
		t.Fatalf("not IPv4 UDP: %v", p)
	}
	m := new(dns.Msg)
	if err := m.Unpack(u.Payload); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestReplayZone(t *testing.T) {
	for _, c := range []struct {
		name  string
		flags []string
		first string // the first pool address
	}{
		{"default pools", nil, "10.170.160.1"},
		{"--pool", []string{"--pool", "172.21.80.0/20", "--pool", "10.170.160.0/20"}, "172.21.80.1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			zonePath, in := zoneCapture(t, dir, c.first)
			out := filepath.Join(dir, "out.pcap")
			vpath := filepath.Join(dir, "verdicts.jsonl")
			args := append([]string{"replay", "--zone", zonePath, zoneMapFlag, "--verdicts", vpath}, c.flags...)
			var stdout, stderr bytes.Buffer
			if code := runMain(append(args, in, out), &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			wantSummary := "replayed 8 packet(s) from " + in + ": 1 translated, 2 rewritten, 1 answered, 4 passed; wrote 8 packet(s) to " + out + "\n"
			if stderr.String() != wantSummary {
				t.Errorf("stderr %q, want %q", stderr.String(), wantSummary)
			}
			vb, err := os.ReadFile(vpath)
			if err != nil {
				t.Fatal(err)
			}
			wantVerdicts := `{"index":0,"action":"passed","reason":"","outputs":[0]}
{"index":1,"action":"rewritten","reason":"","outputs":[1]}
{"index":2,"action":"passed","reason":"","outputs":[2]}
{"index":3,"action":"passed","reason":"","outputs":[3]}
{"index":4,"action":"passed","reason":"","outputs":[4]}
{"index":5,"action":"rewritten","reason":"","outputs":[5]}
{"index":6,"action":"answered","reason":"","outputs":[6]}
{"index":7,"action":"translated","reason":"","outputs":[7]}
`
			if string(vb) != wantVerdicts {
				t.Errorf("verdicts:\n%s\nwant:\n%s", vb, wantVerdicts)
			}
			inPkts, outPkts := readRaw(t, in), readRaw(t, out)
			if len(outPkts) != 8 {
				t.Fatalf("%d output packets, want 8", len(outPkts))
			}
			for _, i := range []int{0, 2, 3, 4} {
				if !bytes.Equal(inPkts[i], outPkts[i]) {
					t.Errorf("passed packet %d changed", i)
				}
			}
			if m := outDNS(t, outPkts[1]); len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != c.first {
				t.Errorf("synthesized answer %v, want A %s", m.Answer, c.first)
			}
			if m := outDNS(t, outPkts[3]); len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != "192.0.2.2" {
				t.Errorf("dual-stack answer %v, want the real A", m.Answer)
			}
			if m := outDNS(t, outPkts[5]); m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 || m.Answer[0].(*dns.PTR).Ptr != "v6only.bih.test." {
				t.Errorf("PTR answer %v", m)
			}
			if m := outDNS(t, outPkts[6]); m.Rcode != dns.RcodeNameError || m.Id != 103 {
				t.Errorf("unmapped PTR answer %v, want NXDOMAIN for id 103", m)
			}
			p := gopacket.NewPacket(outPkts[7], layers.LayerTypeIPv6, gopacket.NoCopy)
			if ip, ok := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6); !ok || ip.SrcIP.String() != "2001:db8:b1a5::1" || ip.DstIP.String() != zoneServer {
				t.Errorf("SYN translated to %v, want 2001:db8:b1a5::1 → %s", p.NetworkLayer(), zoneServer)
			}

			// The same run again gives the same bytes.
			out2 := filepath.Join(dir, "out2.pcap")
			stderr.Reset()
			if code := runMain(append(append([]string{"replay", "--zone", zonePath, zoneMapFlag}, c.flags...), in, out2), &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			b1, _ := os.ReadFile(out)
			b2, _ := os.ReadFile(out2)
			if len(b1) == 0 || !bytes.Equal(b1, b2) {
				t.Error("a second replay wrote different output")
			}
		})
	}
}

// TestReplayWithoutZone: without --zone, DNS packets go to the translator
// like any others.
func TestReplayWithoutZone(t *testing.T) {
	dir := t.TempDir()
	_, in := zoneCapture(t, dir, "10.170.160.1")
	var stdout, stderr bytes.Buffer
	if code := runMain([]string{"replay", zoneMapFlag, "--verdicts", "-", in, filepath.Join(dir, "out.pcap")}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	lines := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
	if len(lines) != 8 {
		t.Fatalf("verdicts:\n%s", stdout.String())
	}
	// The translator refuses loopback addresses (RFC 7915 §4.1 leaves them
	// to the host); what matters is that it decides, not the ENR.
	for i, l := range lines[:7] {
		if !strings.Contains(l, `"action":"dropped","reason":"illegal_`) {
			t.Errorf("DNS packet %d without --zone: %s", i, l)
		}
	}
	if !strings.Contains(lines[7], `"action":"dropped","reason":"no_mapping_destination"`) {
		t.Errorf("SYN to a pool address without --zone: %s", lines[7])
	}
}

func TestReplayZoneErrors(t *testing.T) {
	dir := t.TempDir()
	zonePath, in := zoneCapture(t, dir, "10.170.160.1")
	badZone := filepath.Join(dir, "bad.zone")
	if err := os.WriteFile(badZone, []byte("$ORIGIN bih.test.\n@ IN SOA ns hostmaster 1 3600 600 86400 60\nv6only IN AAAA 192.0.2.1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	noSOA := filepath.Join(dir, "nosoa.zone")
	if err := os.WriteFile(noSOA, []byte("v6only.bih.test. 300 IN AAAA 2001:db8::1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	poolConfig := filepath.Join(dir, "pools.yaml")
	if err := os.WriteFile(poolConfig, []byte("pool:\n  pools: [10.0.0.0/8]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.pcap")
	nine := []string{}
	for i := range 9 {
		nine = append(nine, "--pool", "192.168."+string(rune('0'+i))+".0/24")
	}
	cases := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"bad zone", []string{"--zone", badZone}, 1, "load zone: " + badZone + ": dns: bad AAAA"},
		{"zone without SOA", []string{"--zone", noSOA}, 1, "load zone " + noSOA + ": no SOA record"},
		{"missing zone", []string{"--zone", filepath.Join(dir, "none.zone")}, 1, "load zone: open " + filepath.Join(dir, "none.zone")},
		{"empty zone name", []string{"--zone="}, 2, "--zone: empty file name"},
		{"bad pool", []string{"--zone", zonePath, "--pool", "10.170.160.0"}, 2, `--pool: "10.170.160.0" is not an IPv4 prefix`},
		{"pool host bits", []string{"--zone", zonePath, "--pool", "10.170.160.1/20"}, 2, `--pool: "10.170.160.1/20" has host bits set`},
		{"pool too big", []string{"--zone", zonePath, "--pool", "10.0.0.0/8"}, 2, `--pool: "10.0.0.0/8": a pool is a /16 to a /30`},
		{"overlapping pools", []string{"--zone", zonePath, "--pool", "10.170.160.0/20", "--pool", "10.170.161.0/24"}, 2, "--pool: \"10.170.161.0/24\" overlaps pool.pools[0]"},
		{"nine pools", append([]string{"--zone", zonePath}, nine...), 2, "--pool: replay dns: pool config: 9 pools: at most 8"},
		{"pool without zone", []string{"--pool", "10.170.160.0/20"}, 2, "--pool needs --zone"},
		{"bad pool in config", []string{"--zone", zonePath, "--config", poolConfig}, 1, poolConfig + ":2: pool.pools[0]"},
		{"bad flag before zone", []string{"--zone", badZone, "--ipv6-mtu", "100"}, 2, "--ipv6-mtu: 100 is outside"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append(append([]string{"replay", zoneMapFlag}, c.args...), in, out)
			code := runMain(args, &stdout, &stderr)
			msg := stderr.String()
			if code != c.code || !strings.HasPrefix(msg, "bih-nfq replay: ") || !strings.Contains(msg, c.msg) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, msg, c.code, c.msg)
			}
			if strings.Count(msg, "\n") != 1 {
				t.Errorf("stderr is not one line: %q", msg)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("a failed run left %s: %v", out, err)
			}
		})
	}
}

func TestReplayZoneHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := runMain([]string{"replay", "-h"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, s := range []string{"--zone FILE", "--pool PFX", "rewritten|answered"} {
		if !strings.Contains(stdout.String(), s) {
			t.Errorf("help does not mention %s", s)
		}
	}
}
