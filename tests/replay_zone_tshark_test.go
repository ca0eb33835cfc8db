package tests

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/miekg/dns"

	"github.com/bih-nfq/bih-nfq/enr"
)

const replayZoneFile = "testdata/replay-zone/bih.zone"

// zonePacket is one packet of the capture TestReplayZoneTshark builds.
type zonePacket struct {
	pkt  []byte
	desc string
}

// TestReplayZoneTshark is the acceptance test of `bih-nfq replay --zone`: a
// capture of an application's A and PTR queries with its resolver's answers
// and of the connections that follow, replayed through the built binary;
// tshark, as an independent decoder, reads the DNS answers and the
// translated packets out of the result and validates every IPv4, UDP and
// TCP checksum.
func TestReplayZoneTshark(t *testing.T) {
	ts := newTshark(t)
	// Unlike the golden check, DNS must be dissected: a profile directory of
	// our own, with nothing disabled.
	ts.env = append(os.Environ(), "XDG_CONFIG_HOME="+t.TempDir(), "HOME="+t.TempDir())
	bin := buildBihNfq(t)
	dir := t.TempDir()
	zone, err := enr.LoadZoneFile(replayZoneFile, "")
	if err != nil {
		t.Fatal(err)
	}

	app4 := netip.MustParseAddrPort("127.0.0.1:40001")
	res4 := netip.MustParseAddrPort("127.0.0.53:53")
	app6 := netip.MustParseAddrPort("[::1]:40002")
	res6 := netip.MustParseAddrPort("[::1]:53")
	var in []zonePacket
	ask := func(id uint16, name string, qtype uint16, app, res netip.AddrPort, answer string) {
		q := new(dns.Msg)
		q.SetQuestion(name, qtype)
		q.Id = id
		in = append(in, zonePacket{zoneUDPPacket(t, app, res, zonePackDNS(t, q)), "query " + name})
		var r *dns.Msg
		switch answer {
		case "none": // the ENR answers itself; no response in the capture
			return
		case "nxdomain": // what a resolver says for a pool address
			r = new(dns.Msg)
			r.SetRcode(q, dns.RcodeNameError)
			r.RecursionAvailable = true
		default:
			if r, err = zone.Exchange(context.Background(), q, netip.AddrPort{}); err != nil {
				t.Fatal(err)
			}
		}
		in = append(in, zonePacket{zoneUDPPacket(t, res, app, zonePackDNS(t, r)), "response " + name})
	}
	ask(1, "v6only.bih.test.", dns.TypeA, app4, res4, "zone")
	ask(2, "dual.bih.test.", dns.TypeA, app4, res4, "zone")
	ask(3, "1.160.170.10.in-addr.arpa.", dns.TypePTR, app4, res4, "nxdomain")
	ask(4, "2.160.170.10.in-addr.arpa.", dns.TypePTR, app4, res4, "none")
	ask(5, "other.bih.test.", dns.TypeA, app6, res6, "zone")
	in = append(in,
		zonePacket{zoneSYNPacket(t, "172.21.112.1:40000", "10.170.160.1:80"), "SYN to v6only"},
		zonePacket{zoneSYNPacket(t, "172.21.112.1:40001", "10.170.160.2:443"), "SYN to other"})

	inPath := filepath.Join(dir, "in.pcap")
	f, err := os.Create(inPath)
	if err != nil {
		t.Fatal(err)
	}
	w := pcapgo.NewWriterNanos(f)
	if err := w.WriteFileHeader(65535, layers.LinkTypeRaw); err != nil {
		t.Fatal(err)
	}
	for i, p := range in {
		ts := caseTime.Add(time.Duration(i) * 20 * time.Millisecond)
		if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: ts, CaptureLength: len(p.pkt), Length: len(p.pkt)}, p.pkt); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	outPath := filepath.Join(dir, "out.pcap")
	vPath := filepath.Join(dir, "verdicts.jsonl")
	cmd := exec.Command(bin, "replay", "--zone", replayZoneFile, "--map", "172.21.112.1=2001:db8:b1a5::1",
		"--verdicts", vPath, inPath, outPath)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("bih-nfq replay: %v: %s", err, stderr.String())
	}
	vb, err := os.ReadFile(vPath)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, l := range strings.Split(strings.TrimSpace(string(vb)), "\n") {
		_, rest, _ := strings.Cut(l, `"action":"`)
		a, _, _ := strings.Cut(rest, `"`)
		actions = append(actions, a)
	}
	wantActions := []string{"passed", "rewritten", "passed", "passed", "passed", "rewritten", "answered",
		"passed", "rewritten", "translated", "translated"}
	if strings.Join(actions, " ") != strings.Join(wantActions, " ") {
		t.Errorf("actions %v, want %v\n%s", actions, wantActions, vb)
	}

	// Every output packet: no malformed packet, no bad checksum, no error.
	results := ts.check(t, outPath)
	if len(results) != len(in) {
		t.Fatalf("tshark decoded %d frames, want %d (one output per input)", len(results), len(in))
	}
	for i, r := range results {
		if r.malformed || len(r.badChecksums) > 0 || r.errors > 0 {
			t.Errorf("frame %d (%s): malformed %v, bad checksums %v, %d errors: %s (%s)",
				i+1, in[i].desc, r.malformed, r.badChecksums, r.errors, r.messages, r.protocols)
		}
		want := "raw:ip:udp:dns"
		switch {
		case i >= 9:
			want = "raw:ipv6:tcp"
		case i >= 7:
			want = "raw:ipv6:udp:dns"
		}
		if r.protocols != want {
			t.Errorf("frame %d (%s): protocols %q, want %q", i+1, in[i].desc, r.protocols, want)
		}
	}

	// The values, as tshark reads them.
	fields := []string{"dns.flags.response", "dns.qry.name", "dns.flags.rcode", "dns.a", "dns.ptr.domain_name",
		"ipv6.src", "ipv6.dst", "tcp.dstport", "tcp.flags.syn"}
	got := zoneTsharkFields(t, ts, outPath, fields)
	want := map[int]map[string]string{
		// RFC 6535 §2.3: NODATA for A with an AAAA: the first pool address.
		2: {"dns.flags.response": "1", "dns.qry.name": "v6only.bih.test", "dns.flags.rcode": "0", "dns.a": "10.170.160.1"},
		// Dual stack: the real A record, untouched.
		4: {"dns.flags.response": "1", "dns.qry.name": "dual.bih.test", "dns.a": "192.0.2.2"},
		// RFC 6535 §2.3.3: PTR of a mapped pool address, from ip6.arpa.
		6: {"dns.flags.response": "1", "dns.qry.name": "1.160.170.10.in-addr.arpa", "dns.flags.rcode": "0", "dns.ptr.domain_name": "v6only.bih.test"},
		// PTR of an unmapped pool address: NXDOMAIN, answered locally.
		7: {"dns.flags.response": "1", "dns.qry.name": "2.160.170.10.in-addr.arpa", "dns.flags.rcode": "3", "dns.a": "", "dns.ptr.domain_name": ""},
		// Over IPv6, the next name gets the next pool address.
		9: {"dns.flags.response": "1", "dns.qry.name": "other.bih.test", "dns.a": "10.170.160.2"},
		// Connections to the synthesized addresses reach the servers.
		10: {"ipv6.src": "2001:db8:b1a5::1", "ipv6.dst": "2001:db8:ca5a::80", "tcp.dstport": "80", "tcp.flags.syn": "1"},
		11: {"ipv6.src": "2001:db8:b1a5::1", "ipv6.dst": "2001:db8:ca5a::81", "tcp.dstport": "443", "tcp.flags.syn": "1"},
	}
	for frame, kv := range want {
		for k, v := range kv {
			if g := got[frame-1][k]; g != v {
				t.Errorf("frame %d (%s): %s = %q, want %q", frame, in[frame-1].desc, k, g, v)
			}
		}
	}

	// Control: the check above must notice a spoiled UDP checksum in a
	// rewritten DNS response, with the DNS dissector on.
	out := readRawPcap(t, outPath)
	spoiled := append([]byte(nil), out[1]...)
	spoiled[len(spoiled)-1] ^= 0xff
	ctl := filepath.Join(dir, "control.pcap")
	writeRawPcap(t, ctl, spoiled)
	if r := ts.check(t, ctl); len(r) != 1 || len(r[0].badChecksums) == 0 {
		t.Errorf("tshark did not flag a spoiled UDP checksum: %+v", r)
	}
}

// zoneTsharkFields returns, per frame, the values of fields (all occurrences
// joined by commas).
func zoneTsharkFields(t *testing.T, ts *tshark, pcap string, fields []string) []map[string]string {
	t.Helper()
	args := append([]string{"-r", pcap, "-n"}, ts.prefs...)
	args = append(args, "-T", "fields", "-E", "separator=|", "-E", "occurrence=a", "-E", "aggregator=,")
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	cmd := exec.Command(ts.path, args...)
	cmd.Env = ts.env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	var res []map[string]string
	for _, line := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
		col := strings.Split(line, "|")
		if len(col) != len(fields) {
			t.Fatalf("tshark line has %d fields, want %d: %q", len(col), len(fields), line)
		}
		m := make(map[string]string, len(fields))
		for i, f := range fields {
			m[f] = col[i]
		}
		res = append(res, m)
	}
	return res
}

func zonePackDNS(t *testing.T, m *dns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// zoneUDPPacket builds an IPv4 or IPv6 UDP datagram with correct checksums.
func zoneUDPPacket(t *testing.T, src, dst netip.AddrPort, payload []byte) []byte {
	t.Helper()
	u := &layers.UDP{SrcPort: layers.UDPPort(src.Port()), DstPort: layers.UDPPort(dst.Port())}
	var ip gopacket.SerializableLayer
	if src.Addr().Is4() {
		ip4 := &layers.IPv4{Version: 4, TTL: 64, Id: 1, Protocol: layers.IPProtocolUDP,
			SrcIP: net.IP(src.Addr().AsSlice()), DstIP: net.IP(dst.Addr().AsSlice())}
		mustChecksum(t, u.SetNetworkLayerForChecksum(ip4))
		ip = ip4
	} else {
		ip6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP,
			SrcIP: net.IP(src.Addr().AsSlice()), DstIP: net.IP(dst.Addr().AsSlice())}
		mustChecksum(t, u.SetNetworkLayerForChecksum(ip6))
		ip = ip6
	}
	return zoneSerialize(t, ip, u, gopacket.Payload(payload))
}

// zoneSYNPacket builds an IPv4 TCP SYN (DF set, as TCP stacks send it).
func zoneSYNPacket(t *testing.T, src, dst string) []byte {
	t.Helper()
	s, d := netip.MustParseAddrPort(src), netip.MustParseAddrPort(dst)
	ip := &layers.IPv4{Version: 4, TTL: 64, Id: 2, Flags: layers.IPv4DontFragment, Protocol: layers.IPProtocolTCP,
		SrcIP: net.IP(s.Addr().AsSlice()), DstIP: net.IP(d.Addr().AsSlice())}
	tc := &layers.TCP{SrcPort: layers.TCPPort(s.Port()), DstPort: layers.TCPPort(d.Port()), Seq: 1, SYN: true, Window: 64240}
	mustChecksum(t, tc.SetNetworkLayerForChecksum(ip))
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
