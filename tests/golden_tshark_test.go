package tests

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bih-nfq/bih-nfq/internal/testenv"
	"github.com/bih-nfq/bih-nfq/translate/golden"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// The golden corpus, relative to this package.
const goldenDir = "../translate/testdata/golden"

// TestGoldenReplayTshark replays every golden case through the built
// bih-nfq binary and checks (1) the verdict and the output bytes against the
// case, and (2) with tshark as an independent decoder, that no output packet
// is malformed or has a bad checksum (cases whose input transport checksum
// is bad on purpose keep a bad one there).
func TestGoldenReplayTshark(t *testing.T) {
	ts := newTshark(t)
	cases, err := golden.Load(goldenDir)
	if err != nil {
		t.Fatal(err)
	}
	bin := buildBihNfq(t)
	dir := t.TempDir()

	// tshark starts slowly, so the outputs of all single-output cases go
	// into one capture, decoded with reassembly off (fragments of unrelated
	// cases could share an ID). A case with several outputs (fragments) gets
	// its own capture with reassembly on, so the reassembled transport
	// checksum is verified too.
	type origin struct {
		c   golden.Case
		out int
		pkt []byte
	}
	var (
		batch       [][]byte
		batchOrigin []origin
		checked     int
	)
	checkFrames := func(path string, origins []origin, prefs ...string) {
		results := ts.check(t, path, prefs...)
		if len(results) != len(origins) {
			t.Errorf("%s: tshark decoded %d frames, want %d", path, len(results), len(origins))
			return
		}
		for i, r := range results {
			o := origins[i]
			t.Run(fmt.Sprintf("%s/tshark-%d", o.c.Name, o.out), func(t *testing.T) {
				t.Logf("%+v", r)
				checkTsharkResult(t, o.c, r, o.pkt)
			})
			checked++
		}
	}
	for _, c := range cases {
		var outs [][]byte
		t.Run(c.Name, func(t *testing.T) { outs = replayCase(t, bin, dir, c) })
		switch {
		case len(outs) == 1:
			batch = append(batch, outs[0])
			batchOrigin = append(batchOrigin, origin{c, 0, outs[0]})
		case len(outs) > 1:
			path := filepath.Join(dir, c.Name+".check.pcap")
			writeRawPcap(t, path, outs...)
			var origins []origin
			for i := range outs {
				origins = append(origins, origin{c, i, outs[i]})
			}
			checkFrames(path, origins)
		}
	}
	if len(batch) > 0 {
		path := filepath.Join(dir, "single-outputs.pcap")
		writeRawPcap(t, path, batch...)
		checkFrames(path, batchOrigin, "-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE")
	}
	if checked == 0 {
		t.Fatal("no case produced output: nothing for tshark to check")
	}
}

// checkTsharkResult applies the acceptance rule to one output frame, pkt.
func checkTsharkResult(t *testing.T, c golden.Case, r frameResult, pkt []byte) {
	t.Helper()
	if r.malformed {
		t.Errorf("tshark finds it malformed: %s (%s)", r.messages, r.protocols)
	}
	// The packet inside an ICMP error is cut short by design (RFC 7915
	// §4.2, §5.2 size limits); tshark then sums its transport header over
	// the bytes present and calls the checksum bad. Those are not judged.
	truncated := icmpErrorInnerTruncated(pkt)
	var bad []badChecksum
	for _, b := range r.badChecksums {
		inner := b.field == "tcp.checksum.status" || b.field == "udp.checksum.status" || b.occurrence > 0
		if truncated && inner && b.field != "ip.checksum.status" {
			t.Logf("not judged: %s of the truncated packet inside the ICMP error", b)
			if b.field == "tcp.checksum.status" || b.field == "udp.checksum.status" {
				r.errors-- // tshark reports these as expert errors too
			}
			continue
		}
		bad = append(bad, b)
	}
	// bad-checksum cases spoil the transport checksum; the IPv4 header
	// checksum is the translator's own and must always be right.
	for _, b := range bad {
		if !c.BadChecksum || b.field == "ip.checksum.status" {
			t.Errorf("tshark finds bad checksums %v: %s (%s)", bad, r.messages, r.protocols)
			break
		}
	}
	if r.errors > 0 && !c.BadChecksum {
		t.Errorf("tshark reports %d expert errors: %s (%s)", r.errors, r.messages, r.protocols)
	}
	// The family tshark sees must be the one the case implies: translations
	// change it, generated errors go back in the input's family.
	want := "raw:ip:"
	if (c.Dir == golden.Dir4to6) == (c.Action == golden.ActionTranslated) {
		want = "raw:ipv6:"
	}
	if !strings.HasPrefix(r.protocols+":", want) {
		t.Errorf("protocols %q, want %s...", r.protocols, want)
	}
}

// caseTime stamps every golden input; outputs keep it.
var caseTime = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// replayCase runs `bih-nfq replay` on the case's input with its flags, checks
// the verdict and the outputs against the case and returns the outputs.
func replayCase(t *testing.T, bin, dir string, c golden.Case) [][]byte {
	t.Helper()
	in := filepath.Join(dir, c.Name+".in.pcap")
	out := filepath.Join(dir, c.Name+".out.pcap")
	vf := filepath.Join(dir, c.Name+".verdicts")
	writeRawPcap(t, in, c.Input)
	args := append([]string{"replay"}, c.Args...)
	args = append(args, "--verdicts", vf, in, out)
	cmd := exec.Command(bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("bih-nfq %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	vb, err := os.ReadFile(vf)
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Index   int    `json:"index"`
		Action  string `json:"action"`
		Reason  string `json:"reason"`
		Outputs []int  `json:"outputs"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(vb), &v); err != nil {
		t.Fatalf("verdicts %q: %v", vb, err)
	}
	wantReason := c.Reason
	if wantReason == "none" {
		wantReason = ""
	}
	if v.Index != 0 || v.Action != c.Action || v.Reason != wantReason {
		t.Errorf("verdict %s/%q, want %s/%q", v.Action, v.Reason, c.Action, wantReason)
	}
	got := readRawPcap(t, out)
	if len(v.Outputs) != len(got) {
		t.Errorf("verdict lists %d outputs, the capture has %d", len(v.Outputs), len(got))
	}
	for i := 0; i < len(v.Outputs) && i < len(got); i++ {
		if v.Outputs[i] != i {
			t.Errorf("verdict output %d is %d", i, v.Outputs[i])
		}
	}
	// Case.Check compares byte for byte except the IPv4 Identification,
	// which RFC 7915 §5.1 leaves to the translator's generator (it must be
	// consistent with the checksums and shared by all fragments).
	if err := c.Check(c.Action, c.Reason, got); err != nil {
		t.Errorf("output differs from the case:\n%v", err)
	}
	return got
}

func writeRawPcap(t testing.TB, path string, pkts ...[]byte) {
	t.Helper()
	var b bytes.Buffer
	w := pcapgo.NewWriterNanos(&b)
	if err := w.WriteFileHeader(262144, layers.LinkTypeRaw); err != nil {
		t.Fatal(err)
	}
	for _, p := range pkts {
		if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: caseTime, CaptureLength: len(p), Length: len(p)}, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

func readRawPcap(t testing.TB, path string) [][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if r.LinkType() != layers.LinkTypeRaw {
		t.Fatalf("%s: link type %v, want RAW", path, r.LinkType())
	}
	var pkts [][]byte
	for {
		d, _, err := r.ReadPacketData()
		if err == io.EOF {
			return pkts
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		pkts = append(pkts, d)
	}
}

// buildBihNfq builds the command into a temporary directory.
func buildBihNfq(t *testing.T) string {
	t.Helper()
	gobin := testenv.RequireCommand(t, "go")
	bin := filepath.Join(t.TempDir(), "bih-nfq")
	out, err := exec.Command(gobin, "build", "-o", bin, "../cmd/bih-nfq").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v: %s", err, out)
	}
	return bin
}

// tshark runs tshark with checksum validation on for every protocol this
// version can validate, and with every dissector above the layers the
// translator writes switched off: golden payloads are arbitrary bytes, and
// a DNS dissector choking on them says nothing about the translation.
type tshark struct {
	path  string
	prefs []string // -o arguments
	env   []string // points tshark at a profile with the extra dissectors off
}

// keptProtocol reports whether tshark should dissect protocol name: the
// link type, IPv4, IPv6 with its extension headers, TCP, UDP, ICMP, ICMPv6
// and tshark's own pseudo-protocols (expert info, malformed).
func keptProtocol(name string) bool {
	switch name {
	case "frame", "raw", "ip", "ipv6", "tcp", "udp", "icmp", "icmpv6", "data":
		return true
	}
	for _, p := range []string{"ip.", "ipv6.", "tcp.", "udp.", "icmp.", "icmpv6.", "_ws."} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// checksumPrefs are the validation switches wanted. ICMP and ICMPv6
// checksums are always checked by current versions (no preference); should
// a version add one, it is turned on too.
var checksumPrefs = []string{"ip.check_checksum", "tcp.check_checksum", "udp.check_checksum",
	"icmp.check_checksum", "icmpv6.check_checksum"}

// requiredPrefs must exist, or the check would silently pass bad packets.
var requiredPrefs = map[string]bool{"ip.check_checksum": true, "tcp.check_checksum": true, "udp.check_checksum": true}

func newTshark(t *testing.T) *tshark {
	t.Helper()
	p := testenv.RequireCommand(t, "tshark")
	out, err := exec.Command(p, "-G", "defaultprefs").Output()
	if err != nil {
		t.Fatalf("tshark -G defaultprefs: %v", err)
	}
	have := make(map[string]bool)
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		// Lines look like "#ip.check_checksum: FALSE".
		name, _, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "#"), ":")
		if ok {
			have[name] = true
		}
	}
	ts := &tshark{path: p}
	protos, err := exec.Command(p, "-G", "protocols").Output()
	if err != nil {
		t.Fatalf("tshark -G protocols: %v", err)
	}
	var disabled []string
	for _, line := range strings.Split(string(protos), "\n") {
		// Lines are "Full name\tShort name\tfilter name".
		if f := strings.Split(line, "\t"); len(f) == 3 && !keptProtocol(f[2]) {
			disabled = append(disabled, f[2])
		}
	}
	if len(disabled) < 100 {
		t.Fatalf("tshark -G protocols listed only %d protocols to disable", len(disabled))
	}
	cfg := t.TempDir()
	if err := os.MkdirAll(filepath.Join(cfg, "wireshark"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfg, "wireshark", "disabled_protos"), []byte(strings.Join(disabled, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ts.env = append(os.Environ(), "XDG_CONFIG_HOME="+cfg)
	for _, pref := range checksumPrefs {
		switch {
		case have[pref]:
			ts.prefs = append(ts.prefs, "-o", pref+":TRUE")
		case requiredPrefs[pref]:
			t.Fatalf("this tshark has no preference %s", pref)
		}
	}
	return ts
}

// frameResult is what tshark found in one frame.
type frameResult struct {
	protocols    string
	malformed    bool
	errors       int // expert infos of severity error
	badChecksums []badChecksum
	messages     string
}

// badChecksum is one checksum tshark found bad: the status field, and which
// occurrence in the frame (0: the outer header, 1: the packet inside an ICMP
// error).
type badChecksum struct {
	field      string
	occurrence int
}

func (b badChecksum) String() string {
	if b.occurrence == 0 {
		return b.field
	}
	return fmt.Sprintf("%s (inner)", b.field)
}

// icmpErrorInnerTruncated reports whether pkt is an ICMPv4 or ICMPv6 error
// whose embedded packet is shorter than its own length field says.
func icmpErrorInnerTruncated(pkt []byte) bool {
	var icmp []byte
	v4 := len(pkt) >= 20 && pkt[0]>>4 == 4
	switch {
	case v4:
		ihl := int(pkt[0]&0x0f) * 4
		if pkt[9] != 1 || len(pkt) < ihl+8 {
			return false
		}
		if typ := pkt[ihl]; typ != 3 && typ != 11 && typ != 12 {
			return false
		}
		icmp = pkt[ihl:]
	case len(pkt) >= 48 && pkt[0]>>4 == 6:
		// Errors are emitted without extension headers.
		if pkt[6] != 58 || pkt[40] < 1 || pkt[40] > 4 {
			return false
		}
		icmp = pkt[40:]
	default:
		return false
	}
	inner := icmp[8:]
	// RFC 4884: the original datagram's length, in 32-bit (ICMPv4) or
	// 64-bit (ICMPv6) words, when extensions follow it.
	n := int(icmp[5]) * 4
	if !v4 {
		n = int(icmp[4]) * 8
	}
	if n > 0 && n <= len(inner) {
		inner = inner[:n]
	}
	switch {
	case len(inner) >= 20 && inner[0]>>4 == 4:
		return int(binary.BigEndian.Uint16(inner[2:4])) > len(inner)
	case len(inner) >= 40 && inner[0]>>4 == 6:
		return 40+int(binary.BigEndian.Uint16(inner[4:6])) > len(inner)
	}
	return len(inner) > 0 // too short even for its IP header
}

// Fields asked of tshark, in output order.
var tsharkFields = []string{"frame.number", "frame.protocols", "_ws.malformed", "_ws.expert.severity",
	"ip.checksum.status", "tcp.checksum.status", "udp.checksum.status", "icmp.checksum.status",
	"icmpv6.checksum.status", "_ws.expert.message"}

// Wireshark's values for expert severity "error" (PI_ERROR) and checksum
// status "bad" (PROTO_CHECKSUM_E_BAD).
const (
	expertError = 0x00800000
	checksumBad = 0
)

// check decodes pcap; prefs are extra -o arguments. TCP sequence analysis
// is off: it judges conversations, not packets.
func (ts *tshark) check(t *testing.T, pcap string, prefs ...string) []frameResult {
	t.Helper()
	args := append([]string{"-r", pcap, "-n", "-o", "tcp.analyze_sequence_numbers:FALSE"}, ts.prefs...)
	args = append(args, prefs...)
	args = append(args, "-T", "fields", "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=,")
	for _, f := range tsharkFields {
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
	var res []frameResult
	for _, line := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
		if line == "" {
			continue
		}
		col := strings.Split(line, "\t")
		if len(col) != len(tsharkFields) {
			t.Fatalf("tshark line has %d fields, want %d: %q", len(col), len(tsharkFields), line)
		}
		if n, err := strconv.Atoi(col[0]); err != nil || n != len(res)+1 {
			t.Fatalf("tshark frame number %q, want %d", col[0], len(res)+1)
		}
		r := frameResult{protocols: col[1], malformed: col[2] != "" || strings.Contains(col[1], "_ws.malformed"), messages: col[9]}
		for _, s := range splitList(col[3]) {
			if v, err := strconv.ParseUint(s, 0, 32); err == nil && v == expertError {
				r.errors++
			}
		}
		for i, f := range tsharkFields[4:9] {
			for occ, s := range splitList(col[4+i]) {
				if v, err := strconv.Atoi(s); err == nil && v == checksumBad {
					r.badChecksums = append(r.badChecksums, badChecksum{f, occ})
				}
			}
		}
		res = append(res, r)
	}
	return res
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// TestTsharkCheckerCatchesBadPackets makes sure the tshark check above can
// fail: packets with a bad checksum of each kind and a truncated packet must
// be flagged, their correct twins must not.
func TestTsharkCheckerCatchesBadPackets(t *testing.T) {
	ts := newTshark(t)
	src4, dst4 := net.IP{192, 0, 2, 1}, net.IP{198, 51, 100, 1}
	src6, dst6 := net.ParseIP("2001:db8::1"), net.ParseIP("2001:db8::2")
	payload := gopacket.Payload("checksum control")
	udp4 := func() []gopacket.SerializableLayer {
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: src4, DstIP: dst4}
		u := &layers.UDP{SrcPort: 40000, DstPort: 7}
		mustChecksum(t, u.SetNetworkLayerForChecksum(ip))
		return []gopacket.SerializableLayer{ip, u, payload}
	}
	tcp6 := func() []gopacket.SerializableLayer {
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP, SrcIP: src6, DstIP: dst6}
		tc := &layers.TCP{SrcPort: 40000, DstPort: 80, Seq: 1, ACK: true, PSH: true, Ack: 1, Window: 512}
		mustChecksum(t, tc.SetNetworkLayerForChecksum(ip))
		return []gopacket.SerializableLayer{ip, tc, payload}
	}
	icmp4 := func() []gopacket.SerializableLayer {
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: src4, DstIP: dst4}
		return []gopacket.SerializableLayer{ip, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0), Id: 1, Seq: 1}, payload}
	}
	icmp6 := func() []gopacket.SerializableLayer {
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolICMPv6, SrcIP: src6, DstIP: dst6}
		ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(128, 0)}
		mustChecksum(t, ic.SetNetworkLayerForChecksum(ip))
		return []gopacket.SerializableLayer{ip, ic, &layers.ICMPv6Echo{Identifier: 1, SeqNumber: 1}, payload}
	}
	type pkt struct {
		name      string
		b         []byte
		malformed bool
		bad       string // a field that must be reported bad
	}
	var pkts []pkt
	for _, c := range []struct {
		name   string
		build  func() []gopacket.SerializableLayer
		at     func(b []byte) int // offset of a checksum byte to spoil
		badFld string
	}{
		{"udp4", udp4, func([]byte) int { return 20 + 6 }, "udp.checksum.status"},
		{"ipv4 header", udp4, func([]byte) int { return 10 }, "ip.checksum.status"},
		{"tcp6", tcp6, func([]byte) int { return 40 + 16 }, "tcp.checksum.status"},
		{"icmp4", icmp4, func([]byte) int { return 20 + 2 }, "icmp.checksum.status"},
		{"icmp6", icmp6, func([]byte) int { return 40 + 2 }, "icmpv6.checksum.status"},
	} {
		good := serialize(t, c.build()...)
		bad := append([]byte(nil), good...)
		bad[c.at(bad)] ^= 0x5a
		pkts = append(pkts, pkt{name: c.name + " good", b: good}, pkt{name: c.name + " bad", b: bad, bad: c.badFld})
	}
	// Arbitrary bytes to port 53 are not DNS; only the layers the translator
	// writes are judged.
	junk := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: src4, DstIP: dst4}
	junkUDP := &layers.UDP{SrcPort: 40000, DstPort: 53}
	mustChecksum(t, junkUDP.SetNetworkLayerForChecksum(junk))
	pkts = append(pkts, pkt{name: "udp4 junk to port 53", b: serialize(t, junk, junkUDP, gopacket.Payload{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})})
	// IPv6 payload length claims more than there is.
	short := serialize(t, tcp6()...)
	pkts = append(pkts, pkt{name: "tcp6 cut", b: short[:40+10], malformed: true})

	path := filepath.Join(t.TempDir(), "control.pcap")
	var all [][]byte
	for _, p := range pkts {
		all = append(all, p.b)
	}
	writeRawPcap(t, path, all...)
	res := ts.check(t, path)
	if len(res) != len(pkts) {
		t.Fatalf("tshark decoded %d frames, want %d", len(res), len(pkts))
	}
	for i, p := range pkts {
		r := res[i]
		t.Logf("%s: %+v", p.name, r)
		flagged := r.malformed || len(r.badChecksums) > 0 || r.errors > 0
		switch {
		case p.bad != "" && !slices.ContainsFunc(r.badChecksums, func(b badChecksum) bool { return b.field == p.bad }):
			t.Errorf("%s: bad checksums %v, want %s (%s)", p.name, r.badChecksums, p.bad, r.messages)
		case p.malformed && !r.malformed && r.errors == 0:
			t.Errorf("%s: not reported malformed (%s)", p.name, r.protocols)
		case p.bad == "" && !p.malformed && flagged:
			t.Errorf("%s: flagged: %+v", p.name, r)
		case !p.malformed && !strings.HasSuffix(r.protocols, ":data"):
			t.Errorf("%s: protocols %q: dissectors above transport are not off", p.name, r.protocols)
		}
	}
}

func mustChecksum(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

func TestICMPErrorInnerTruncated(t *testing.T) {
	ip4 := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.IP{192, 0, 2, 1}, DstIP: net.IP{198, 51, 100, 1}}
	u4 := &layers.UDP{SrcPort: 1, DstPort: 2}
	mustChecksum(t, u4.SetNetworkLayerForChecksum(ip4))
	inner4 := serialize(t, ip4, u4, gopacket.Payload(make([]byte, 100)))
	ip6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP, SrcIP: net.ParseIP("2001:db8::1"), DstIP: net.ParseIP("2001:db8::2")}
	u6 := &layers.UDP{SrcPort: 1, DstPort: 2}
	mustChecksum(t, u6.SetNetworkLayerForChecksum(ip6))
	inner6 := serialize(t, ip6, u6, gopacket.Payload(make([]byte, 100)))
	err4 := func(typ uint8, inner []byte) []byte {
		return serialize(t, &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4,
			SrcIP: net.IP{198, 51, 100, 1}, DstIP: net.IP{192, 0, 2, 1}},
			&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, 0)}, gopacket.Payload(inner))
	}
	err6 := func(typ uint8, inner []byte) []byte {
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolICMPv6,
			SrcIP: net.ParseIP("2001:db8::2"), DstIP: net.ParseIP("2001:db8::1")}
		ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, 0)}
		mustChecksum(t, ic.SetNetworkLayerForChecksum(ip))
		return serialize(t, ip, ic, gopacket.Payload(append(make([]byte, 4), inner...)))
	}
	for _, c := range []struct {
		name string
		pkt  []byte
		want bool
	}{
		{"v4 unreachable, whole", err4(3, inner4), false},
		{"v4 unreachable, cut", err4(3, inner4[:60]), true},
		{"v4 time exceeded, cut", err4(11, inner4[:28]), true},
		{"v4 echo is no error", err4(8, inner4[:28]), false},
		{"v6 unreachable, whole", err6(1, inner6), false},
		{"v6 packet too big, cut", err6(2, inner6[:60]), true},
		{"v6 echo is no error", err6(128, inner6[:60]), false},
	} {
		if got := icmpErrorInnerTruncated(c.pkt); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
