package golden

import (
	"encoding/binary"
	"sort"
	"strings"
	"testing"

	"github.com/bih-nfq/bih-nfq/translate"
)

const corpus = "../testdata/golden"

func loadCorpus(t *testing.T) []Case {
	t.Helper()
	cs, err := Load(corpus)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func TestCorpusLoads(t *testing.T) {
	cs := loadCorpus(t)
	if len(cs) < 50 {
		t.Errorf("corpus has %d cases, want at least 50", len(cs))
	}
	dirs := map[string]int{}
	for _, c := range cs {
		dirs[c.Dir]++
		cfg, err := c.Config()
		if err != nil {
			t.Errorf("%s: %v", c.Name, err)
			continue
		}
		if _, err := translate.New(cfg); err != nil {
			t.Errorf("%s: translate.New: %v", c.Name, err)
		}
	}
	if dirs[Dir4to6] == 0 || dirs[Dir6to4] == 0 {
		t.Errorf("corpus directions: %v, want both", dirs)
	}
}

// The corpus is written by hand; this checks it against itself, without the
// translator: lengths agree with the headers, and every checksum is right
// except the transport checksums a case marks as wrong on purpose.
func TestCorpusPacketsConsistent(t *testing.T) {
	for _, c := range loadCorpus(t) {
		t.Run(c.Name, func(t *testing.T) {
			checkPacket(t, "input", c.Input, c.BadChecksum)
			for i, o := range c.Outputs {
				checkPacket(t, "output "+string(rune('0'+i)), o, c.BadChecksum)
			}
			if len(c.Outputs) > 1 {
				checkReassembled(t, c.Outputs)
			}
		})
	}
}

func sum16(b []byte, s uint32) uint32 {
	for len(b) >= 2 {
		s += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	return s
}

func fold(s uint32) uint16 {
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

func valid(b []byte, s uint32) bool { return fold(sum16(b, s)) == 0xffff }

// pseudo4 sums the IPv4 pseudo-header. With a source route the destination
// in it is the route's final one (RFC 9293 §3.1, RFC 768).
func pseudo4(p []byte, proto byte, n int) uint32 {
	return sum16(finalDst4(p), sum16(p[12:16], uint32(proto)+uint32(n)))
}

// finalDst4 returns the last address of an unexpired LSRR/SSRR option
// (RFC 791 §3.1), or the header's destination.
func finalDst4(p []byte) []byte {
	ihl := int(p[0]&0xf) * 4
	for o := 20; o < ihl && o < len(p); {
		switch typ := p[o]; typ {
		case 0:
			return p[16:20]
		case 1:
			o++
			continue
		default:
			if o+1 >= len(p) {
				return p[16:20]
			}
			l := int(p[o+1])
			if l < 2 || o+l > ihl || o+l > len(p) {
				return p[16:20]
			}
			// Unexpired (pointer within the option): the header holds the
			// next hop, the option's last address the final destination.
			if (typ == 131 || typ == 137) && l >= 7 && int(p[o+2]) <= l {
				return p[o+l-4 : o+l]
			}
			o += l
		}
	}
	return p[16:20]
}

func pseudo6(p []byte, nh byte, n int) uint32 {
	return sum16(p[8:40], uint32(nh)+uint32(n>>16)+uint32(n&0xffff))
}

// checkPacket checks one top-level packet (whole, so lengths must match).
func checkPacket(t *testing.T, what string, p []byte, bad bool) {
	t.Helper()
	if len(p) == 0 {
		t.Fatalf("%s: empty", what)
	}
	switch p[0] >> 4 {
	case 4:
		if int(binary.BigEndian.Uint16(p[2:])) != len(p) {
			t.Errorf("%s: IPv4 total length %d, packet has %d bytes", what, binary.BigEndian.Uint16(p[2:]), len(p))
		}
	case 6:
		if int(binary.BigEndian.Uint16(p[4:]))+40 != len(p) {
			t.Errorf("%s: IPv6 payload length %d, packet has %d bytes", what, binary.BigEndian.Uint16(p[4:]), len(p))
		}
	default:
		t.Fatalf("%s: version %d", what, p[0]>>4)
	}
	checkIP(t, what, p, bad, true)
}

// checkIP checks headers and checksums of p; outer says p is not a quote
// (a quote may be cut short, so its transport checksum is checked only if
// complete).
func checkIP(t *testing.T, what string, p []byte, bad, outer bool) {
	t.Helper()
	var proto byte
	var l4 []byte
	var ps func(proto byte, n int) uint32
	switch p[0] >> 4 {
	case 4:
		ihl := int(p[0]&0xf) * 4
		if len(p) < ihl {
			return
		}
		if !valid(p[:ihl], 0) {
			t.Errorf("%s: IPv4 header checksum wrong", what)
		}
		if binary.BigEndian.Uint16(p[6:])&0x3fff != 0 {
			return // a fragment: see checkReassembled
		}
		end := int(binary.BigEndian.Uint16(p[2:]))
		if end > len(p) {
			if outer {
				return
			}
			end = -1
		}
		proto = p[9]
		if end < 0 {
			l4 = nil
		} else {
			l4 = p[ihl:end]
		}
		ps = func(pr byte, n int) uint32 { return pseudo4(p, pr, n) }
		if proto == 1 && !outer && end < 0 {
			return
		}
		if proto == 1 && outer {
			l4 = p[ihl:]
		}
	case 6:
		nh, off := p[6], 40
		for nh == 0 || nh == 43 || nh == 60 || nh == 44 {
			if off+8 > len(p) {
				return
			}
			if nh == 44 && binary.BigEndian.Uint16(p[off+2:]) != 0 {
				return // a fragment
			}
			n := (int(p[off+1]) + 1) * 8
			if nh == 44 {
				n = 8
			}
			nh, off = p[off], off+n
		}
		end := 40 + int(binary.BigEndian.Uint16(p[4:]))
		if end > len(p) {
			if !outer {
				return
			}
		}
		if end > len(p) || off > end {
			return
		}
		proto, l4 = nh, p[off:end]
		if outer && nh == 58 {
			l4 = p[off:]
		}
		ps = func(pr byte, n int) uint32 { return pseudo6(p, pr, n) }
	}
	if l4 == nil {
		return
	}
	var ok bool
	switch proto {
	case 6:
		if len(l4) < 20 {
			return
		}
		ok = valid(l4, ps(6, len(l4)))
	case 17:
		if len(l4) < 8 {
			return
		}
		if binary.BigEndian.Uint16(l4[6:]) == 0 && p[0]>>4 == 4 {
			return // no checksum (IPv4 only)
		}
		ok = valid(l4, ps(17, len(l4)))
	case 1:
		ok = valid(l4, 0)
	case 58:
		ok = valid(l4, ps(58, len(l4)))
	default:
		return
	}
	isErr := (proto == 1 && len(l4) > 0 && (l4[0] == 3 || l4[0] == 11 || l4[0] == 12 || l4[0] == 4 || l4[0] == 5)) || (proto == 58 && len(l4) > 0 && l4[0] < 128)
	switch {
	case outer && bad && !isErr && (proto == 1 || proto == 58 || proto == 6 || proto == 17):
		if ok {
			t.Errorf("%s: bad-checksum case, but the transport checksum is right", what)
		}
	case !ok:
		t.Errorf("%s: %s checksum wrong (protocol %d)", what, map[bool]string{true: "transport", false: "quoted transport"}[outer], proto)
	}
	if isErr && outer && len(l4) > 8+20 {
		checkIP(t, what+" quote", l4[8:], false, false)
	}
}

// checkReassembled puts fragments back together and checks the transport
// checksum of the whole.
func checkReassembled(t *testing.T, frags [][]byte) {
	t.Helper()
	type piece struct {
		off  int
		data []byte
	}
	var ps []piece
	var first []byte
	var proto byte
	for _, f := range frags {
		switch f[0] >> 4 {
		case 4:
			ihl := int(f[0]&0xf) * 4
			fo := binary.BigEndian.Uint16(f[6:])
			ps = append(ps, piece{int(fo&0x1fff) * 8, f[ihl:]})
			if fo&0x1fff == 0 {
				first, proto = f, f[9]
			}
		case 6:
			if f[6] != 44 {
				t.Fatalf("several outputs, but one is not a fragment")
			}
			fo := binary.BigEndian.Uint16(f[42:])
			ps = append(ps, piece{int(fo>>3) * 8, f[48:]})
			if fo>>3 == 0 {
				first, proto = f, f[40]
			}
		}
	}
	if first == nil {
		t.Fatal("no first fragment")
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].off < ps[j].off })
	var whole []byte
	for _, p := range ps {
		if p.off != len(whole) {
			t.Fatalf("fragment at %d, expected %d", p.off, len(whole))
		}
		whole = append(whole, p.data...)
	}
	var s uint32
	if first[0]>>4 == 4 {
		s = pseudo4(first, proto, len(whole))
	} else {
		s = pseudo6(first, proto, len(whole))
	}
	if !valid(whole, s) {
		t.Errorf("reassembled transport checksum wrong")
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"dir: 4to6\naction: dropped\nreason: too_short\n45 00\n", "x.golden:4: hex bytes outside"},
		{"dir: 5to7\n", "x.golden:1: dir \"5to7\""},
		{"dir: 4to6\naction: maybe\n", "x.golden:2: action"},
		{"dir: 4to6\naction: dropped\nreason: no_such_reason\n", "x.golden:3: reason \"no_such_reason\""},
		{"dir: 4to6\naction: dropped\nreason: too_short\ninput:\n4 5\n", "x.golden:5: hex token \"4\" has an odd"},
		{"dir: 4to6\naction: dropped\nreason: too_short\ninput:\nzz\n", "x.golden:5: bad hex token"},
		{"dir: 4to6\ndir: 6to4\n", "x.golden:2: duplicate \"dir\" (first at line 1)"},
		{"dir: 4to6\ncolour: blue\n", "x.golden:2: unknown key"},
		{"dir: 4to6\naction: dropped\nreason: too_short\ninput:\noutput:\n45\n", "x.golden:4: empty hex block"},
		{"dir: 4to6\naction: dropped\nreason: too_short\ninput:\n45\noutput:\n60\n", "dropped case with output"},
		{"dir: 4to6\naction: translated\ninput:\n45\n", "translated case without output"},
		{"dir: 4to6\naction: dropped\ninput:\n45\n", "dropped case needs a reason"},
		{"dir: 4to6\naction: generated-error\nreason: source_route\ninput:\n45\n", "exactly one output"},
		{"dir: 4to6\naction: dropped\nreason: too_short\n", "missing \"input\""},
		{"dir: 4to6\naction: dropped\nreason: too_short\nbad-checksum: perhaps\n", "bad-checksum \"perhaps\""},
		{"dir: 4to6\naction: dropped\nreason: too_short\ninput: 45\n", "hex starts on the next line"},
	} {
		_, err := Parse("x.golden", strings.NewReader(tc.text))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) error = %v, want it to contain %q", tc.text, err, tc.want)
		}
	}
}

func TestParseComments(t *testing.T) {
	c, err := Parse("dir/name.golden", strings.NewReader(`# a comment
dir: 6to4   # trailing comment
args: --pref64 64:ff9b::/96   --router
action: translated
input:
6000 0000   # grouped
0a0b0c
output:
45 # one
00 01
output:
46
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "name" || c.Dir != Dir6to4 || len(c.Args) != 3 || c.Reason != "none" || c.BadChecksum {
		t.Errorf("parsed %+v", c)
	}
	if string(c.Input) != "\x60\x00\x00\x00\x0a\x0b\x0c" || len(c.Outputs) != 2 || string(c.Outputs[0]) != "\x45\x00\x01" || string(c.Outputs[1]) != "\x46" {
		t.Errorf("parsed bytes %x %x", c.Input, c.Outputs)
	}
}

func TestParseFlags(t *testing.T) {
	cfg, err := ParseFlags("t", []string{"--map", "198.51.100.0/24=2001:db8:1::/120", "--map=192.0.2.1=2001:db8::1", "--pref64", "64:ff9b::/96",
		"--icmp-source4", "192.0.0.8", "--icmp-source6", "2001:db8::6791", "--router", "--lowest-ipv6-mtu", "1400", "--ipv6-mtu", "9000",
		"--ipv4-mtu", "576", "--udp-zero-checksum", "drop"})
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Router || cfg.LowestIPv6MTU != 1400 || cfg.IPv6MTU != 9000 || cfg.IPv4MTU != 576 || cfg.UDPZeroChecksum != translate.UDPZeroDrop ||
		cfg.ICMPSource4.String() != "192.0.0.8" || cfg.ICMPSource6.String() != "2001:db8::6791" {
		t.Errorf("config %+v", cfg)
	}
	if v6, ok := cfg.Mapper.To6([4]byte{192, 0, 2, 1}); !ok || v6 != [16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 1} {
		t.Errorf("--map not applied: %x %v", v6, ok)
	}
	if v6, ok := cfg.Mapper.To6([4]byte{8, 8, 8, 8}); !ok || v6 != [16]byte{0, 0x64, 0xff, 0x9b, 12: 8, 13: 8, 14: 8, 15: 8} {
		t.Errorf("--pref64 not applied: %x %v", v6, ok)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "need --map or --pref64"},
		{[]string{"--pref64", "64:ff9b::/95"}, "--pref64"},
		{[]string{"--map", "192.0.2.0/24=2001:db8::/124"}, "suffix length mismatch"},
		{[]string{"--pref64", "64:ff9b::/96", "--icmp-source4", "2001:db8::1"}, "--icmp-source4"},
		{[]string{"--pref64", "64:ff9b::/96", "--icmp-source6", "192.0.2.1"}, "--icmp-source6"},
		{[]string{"--pref64", "64:ff9b::/96", "--udp-zero-checksum", "ignore"}, "--udp-zero-checksum"},
		{[]string{"--pref64", "64:ff9b::/96", "--lowest-ipv6-mtu", "1000"}, "--lowest-ipv6-mtu"},
		{[]string{"--pref64", "64:ff9b::/96", "--ipv4-mtu", "20"}, "--ipv4-mtu"},
		{[]string{"--pref64", "64:ff9b::/96", "--ipv6-mtu", "x"}, "replay flags"},
		{[]string{"--pref64", "64:ff9b::/96", "--verdicts", "f"}, "replay flags"},
		{[]string{"--pref64", "64:ff9b::/96", "stray"}, "unexpected argument"},
	} {
		_, err := ParseFlags("t", tc.args)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseFlags(%q) error = %v, want it to contain %q", tc.args, err, tc.want)
		}
	}
}

func findCase(t *testing.T, name string) Case {
	t.Helper()
	for _, c := range loadCorpus(t) {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no case %s", name)
	return Case{}
}

func TestCheck(t *testing.T) {
	c := findCase(t, "4to6-tcp")
	if err := c.Check("translated", "none", c.Outputs); err != nil {
		t.Errorf("expected outputs do not match themselves: %v", err)
	}
	bad := append([]byte(nil), c.Outputs[0]...)
	bad[4], bad[5] = 0, 0x2c
	err := c.Check("translated", "none", [][]byte{bad})
	if err == nil || !strings.Contains(err.Error(), "ipv6.payload_length @4: got 00 2c, want 00 24") {
		t.Errorf("changed payload length: %v", err)
	}
	err = c.Check("dropped", "too_short", nil)
	if err == nil || !strings.Contains(err.Error(), "action: got dropped, want translated") || !strings.Contains(err.Error(), "reason: got too_short, want none") ||
		!strings.Contains(err.Error(), "packets: got 0, want 1") {
		t.Errorf("wrong action: %v", err)
	}
	// An IPv4 ID the RFC leaves free: another value with its checksum matches,
	// with a stale checksum it does not.
	c = findCase(t, "6to4-tcp")
	got := append([]byte(nil), c.Outputs[0]...)
	ck := binary.BigEndian.Uint16(got[10:])
	binary.BigEndian.PutUint16(got[4:], 0x4d2)
	if err := c.Check("translated", "none", [][]byte{got}); err == nil || !strings.Contains(err.Error(), "ipv4.checksum") {
		t.Errorf("free ID with a stale checksum: %v", err)
	}
	binary.BigEndian.PutUint16(got[10:], adjust(ck, 0, 0x4d2))
	if err := c.Check("translated", "none", [][]byte{got}); err != nil {
		t.Errorf("free ID with its checksum: %v", err)
	}
	// The ID copied from a Fragment Header is not free.
	c = findCase(t, "6to4-fragment-first")
	got = append([]byte(nil), c.Outputs[0]...)
	ck = binary.BigEndian.Uint16(got[10:])
	binary.BigEndian.PutUint16(got[4:], 0x4d2)
	binary.BigEndian.PutUint16(got[10:], adjust(ck, 0x5678, 0x4d2))
	if err := c.Check("translated", "none", [][]byte{got}); err == nil || !strings.Contains(err.Error(), "ipv4.id") {
		t.Errorf("copied ID changed: %v", err)
	}
	// A free ID in a quoted header: the quote's and the ICMP checksums follow.
	c = findCase(t, "6to4-icmp-dest-unreach-code4")
	got = append([]byte(nil), c.Outputs[0]...)
	q := 28
	oldCk := binary.BigEndian.Uint16(got[q+10:])
	newCk := adjust(oldCk, 0, 0x99)
	binary.BigEndian.PutUint16(got[q+4:], 0x99)
	binary.BigEndian.PutUint16(got[q+10:], newCk)
	icmpCk := adjust(adjust(binary.BigEndian.Uint16(got[22:]), 0, 0x99), oldCk, newCk)
	binary.BigEndian.PutUint16(got[22:], icmpCk)
	if err := c.Check("translated", "none", [][]byte{got}); err != nil {
		t.Errorf("free quoted ID with its checksums: %v", err)
	}
	got[q+5] ^= 1
	if err := c.Check("translated", "none", [][]byte{got}); err == nil || !strings.Contains(err.Error(), "inner.ipv4.checksum") && !strings.Contains(err.Error(), "icmpv4.checksum") {
		t.Errorf("free quoted ID with stale checksums: %v", err)
	}
	// Fragments of one packet must share their free ID.
	c = findCase(t, "6to4-ipv4-fragmentation")
	outs := make([][]byte, len(c.Outputs))
	for i, o := range c.Outputs {
		outs[i] = append([]byte(nil), o...)
	}
	binary.BigEndian.PutUint16(outs[1][4:], 7)
	binary.BigEndian.PutUint16(outs[1][10:], adjust(binary.BigEndian.Uint16(outs[1][10:]), 0, 7))
	if err := c.Check("translated", "none", outs); err == nil || !strings.Contains(err.Error(), "share one ID") {
		t.Errorf("fragments with different IDs: %v", err)
	}
}

func TestFieldsQuoted(t *testing.T) {
	c := findCase(t, "4to6-icmp-dest-unreach-code3")
	names := map[string]bool{}
	for _, f := range Fields(c.Outputs[0]) {
		names[f.Name] = true
	}
	for _, n := range []string{"ipv6.src", "icmpv6.type", "inner.ipv6.dst", "inner.udp.checksum"} {
		if !names[n] {
			t.Errorf("Fields: no %s in %v", n, names)
		}
	}
}

// FuzzParse: the loader never panics, and what it accepts is consistent.
func FuzzParse(f *testing.F) {
	f.Add("dir: 4to6\naction: dropped\nreason: too_short\ninput:\n45 00\n")
	f.Add("dir: 6to4\nargs: --router\naction: translated\ninput:\n60\noutput:\n45 # x\n")
	f.Add("dir: 4to6\naction: generated-error\nreason: source_route\nbad-checksum: yes\ninput:\n45\noutput:\n45\noutput:\n46\n")
	f.Fuzz(func(t *testing.T, text string) {
		c, err := Parse("f.golden", strings.NewReader(text))
		if err != nil {
			return
		}
		if len(c.Input) == 0 || (c.Action == ActionTranslated) != (c.Reason == "none") {
			t.Fatalf("accepted inconsistent case %+v", c)
		}
	})
}
