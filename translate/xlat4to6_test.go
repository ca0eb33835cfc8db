package translate

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/bih-nfq/bih-nfq/internal/drop"
	"github.com/gopacket/gopacket/layers"
)

func TestTranslate4to6Basic(t *testing.T) {
	tests := []struct {
		name   string
		build  func(testing.TB, [4]byte, [4]byte, int) ([]byte, int)
		n      int
		nh     uint8
		icmpTy uint8
	}{
		{"TCP", tcp4, 64, 6, 0},
		{"TCP-large", tcp4, 1400, 6, 0},
		{"UDP", udp4, 64, 17, 0},
		{"UDP-odd", udp4, 61, 17, 0},
		{"ICMPEcho", echo4, 56, 58, 128},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTranslator(t, nil)
			buf, off := tc.build(t, app4, srv4, tc.n)
			in := append([]byte(nil), buf[off:]...)
			out := mustOne(t, tr.Translate4to6(buf, off), Translated)
			if &out[len(out)-1] != &buf[len(buf)-1] {
				t.Error("output was not built in place")
			}
			pk := decode6(t, out)
			ip := pk.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
			if !bytes.Equal(ip.SrcIP, app6[:]) || !bytes.Equal(ip.DstIP, srv6[:]) {
				t.Errorf("addresses %v → %v", ip.SrcIP, ip.DstIP)
			}
			if ip.TrafficClass != 0xb8 || ip.FlowLabel != 0 || ip.HopLimit != 64 || uint8(ip.NextHeader) != tc.nh {
				t.Errorf("tc %#x flow %d hop %d nh %d", ip.TrafficClass, ip.FlowLabel, ip.HopLimit, ip.NextHeader)
			}
			if int(ip.Length) != len(out)-40 || len(out)-40 != len(in)-20 {
				t.Errorf("payload length %d, packet %d, input %d", ip.Length, len(out), len(in))
			}
			if valid, ok := refL4Valid6(out); !ok || !valid {
				t.Errorf("transport checksum invalid")
			}
			// Everything but the type and the transport checksum is unchanged.
			ck := map[uint8]int{6: 16, 17: 6, 58: 2}[tc.nh]
			if tc.icmpTy != 0 && out[40] != tc.icmpTy {
				t.Errorf("ICMP type %d, want %d", out[40], tc.icmpTy)
			}
			if !bytes.Equal(out[41:40+ck], in[21:20+ck]) || !bytes.Equal(out[42+ck:], in[22+ck:]) {
				t.Errorf("transport data changed")
			}
		})
	}
}

func TestTranslate4to6NoHeadroom(t *testing.T) {
	tr := newTranslator(t, nil)
	buf, off := tcp4(t, app4, srv4, 100)
	pkt := append([]byte(nil), buf[off:]...)
	out := mustOne(t, tr.Translate4to6(pkt, 0), Translated)
	if valid, _ := refL4Valid6(out); !valid || len(out) != len(pkt)+20 {
		t.Fatalf("bad translation without headroom: len %d", len(out))
	}
	// Trailing bytes beyond Total Length are ignored.
	buf, off = udp4(t, app4, srv4, 30)
	buf = append(buf, 0xde, 0xad, 0xbe, 0xef)
	out = mustOne(t, tr.Translate4to6(buf, off), Translated)
	if binary.BigEndian.Uint16(out[4:]) != 38 || len(out) != 78 {
		t.Fatalf("trailing bytes kept: len %d", len(out))
	}
}

func TestTranslate4to6TOSAndTTL(t *testing.T) {
	tr := newTranslator(t, func(c *Config) { c.IgnoreTOS = true })
	buf, off := tcp4(t, app4, srv4, 10)
	out := mustOne(t, tr.Translate4to6(buf, off), Translated)
	if out[0] != 0x60 || out[1] != 0 {
		t.Errorf("IgnoreTOS: traffic class not zero: %x", out[:2])
	}

	rt := newTranslator(t, func(c *Config) { c.Router = true })
	buf, off = tcp4(t, app4, srv4, 10)
	out = mustOne(t, rt.Translate4to6(buf, off), Translated)
	if out[7] != 63 {
		t.Errorf("router mode hop limit = %d, want 63", out[7])
	}
	for _, ttl := range []uint8{0, 1} {
		buf, off = udp4(t, app4, srv4, 10)
		buf[off+8] = ttl
		fix4(buf[off:])
		orig := append([]byte(nil), buf[off:]...)
		r := rt.Translate4to6(buf, off)
		out = mustOne(t, r, GeneratedError)
		if r.Reason != drop.TTLExceeded {
			t.Errorf("reason %v", r.Reason)
		}
		checkICMPv4Error(t, out, srv4, app4, 11, 0, 0, orig)
	}
	// Host mode leaves TTL 1 alone.
	buf, off = udp4(t, app4, srv4, 10)
	buf[off+8] = 1
	fix4(buf[off:])
	out = mustOne(t, tr.Translate4to6(buf, off), Translated)
	if out[7] != 1 {
		t.Errorf("host mode changed hop limit to %d", out[7])
	}
}

// checkICMPv4Error verifies a generated ICMPv4 error with an independent
// decoder and checksum.
func checkICMPv4Error(t *testing.T, out []byte, src, dst [4]byte, typ, code uint8, mtu uint16, orig []byte) {
	t.Helper()
	pk := decode4(t, out)
	ip := pk.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if !bytes.Equal(ip.SrcIP, src[:]) || !bytes.Equal(ip.DstIP, dst[:]) || ip.Protocol != 1 {
		t.Fatalf("error %v → %v proto %d", ip.SrcIP, ip.DstIP, ip.Protocol)
	}
	if refSum(out[:20]) != 0xffff || int(ip.Length) != len(out) || len(out) > 576 {
		t.Fatalf("bad IPv4 header or length %d", len(out))
	}
	ic := pk.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if ic.TypeCode.Type() != typ || ic.TypeCode.Code() != code {
		t.Fatalf("ICMP %v, want %d/%d", ic.TypeCode, typ, code)
	}
	if refSum(out[20:]) != 0xffff {
		t.Fatal("ICMPv4 checksum invalid")
	}
	if got := binary.BigEndian.Uint16(out[26:]); got != mtu {
		t.Fatalf("MTU %d, want %d", got, mtu)
	}
	n := min(len(orig), 576-28)
	if !bytes.Equal(out[28:], orig[:n]) {
		t.Fatal("quoted datagram differs from the original")
	}
}

func TestTranslate4to6Options(t *testing.T) {
	build := func(opts []byte) ([]byte, int, []byte) {
		ip := ip4Layer(app4, srv4, layers.IPProtocolUDP)
		ip.Options = nil
		ip.Padding = nil
		ip.Options = append(ip.Options, layers.IPv4Option{OptionType: opts[0], OptionLength: uint8(len(opts)), OptionData: opts[2:]})
		udp := &layers.UDP{SrcPort: 1, DstPort: 2}
		_ = udp.SetNetworkLayerForChecksum(ip)
		buf, off := serialize(t, ip, udp, payloadOf(20))
		return buf, off, append([]byte(nil), buf[off:]...)
	}
	tr := newTranslator(t, nil)
	// Record Route (7): ignored.
	buf, off, in := build([]byte{7, 7, 4, 0, 0, 0, 0})
	out := mustOne(t, tr.Translate4to6(buf, off), Translated)
	hl := int(in[0]&0xf) * 4
	if hl == 20 || !bytes.Equal(out[40+8:], in[hl+8:]) {
		t.Fatalf("options not skipped (ihl %d)", hl)
	}
	if valid, _ := refL4Valid6(out); !valid {
		t.Fatal("checksum invalid after options")
	}
	// Unexpired LSRR and SSRR: refused with 3/5.
	for _, typ := range []byte{131, 137} {
		buf, off, in = build([]byte{typ, 7, 4, 1, 2, 3, 4})
		r := tr.Translate4to6(buf, off)
		out = mustOne(t, r, GeneratedError)
		if r.Reason != drop.SourceRoute {
			t.Fatalf("reason %v", r.Reason)
		}
		checkICMPv4Error(t, out, srv4, app4, 3, 5, 0, in)
	}
	// Expired route (pointer past the end): translated.
	buf, off, _ = build([]byte{131, 7, 8, 1, 2, 3, 4})
	mustOne(t, tr.Translate4to6(buf, off), Translated)
	// ICMPSource4 is the source of generated errors when set.
	ts := newTranslator(t, func(c *Config) { c.ICMPSource4 = netip.AddrFrom4(icmpSrc4) })
	buf, off, in = build([]byte{137, 7, 4, 1, 2, 3, 4})
	out = mustOne(t, ts.Translate4to6(buf, off), GeneratedError)
	checkICMPv4Error(t, out, icmpSrc4, app4, 3, 5, 0, in)
}

func TestTranslate4to6Refused(t *testing.T) {
	tests := []struct {
		name string
		edit func(p []byte) []byte // edits the IPv4 packet; header checksum fixed after unless noFix
		fix  bool
		want drop.Reason
	}{
		{"short", func(p []byte) []byte { return p[:19] }, false, drop.TooShort},
		{"version", func(p []byte) []byte { p[0] = 0x65; return p }, true, drop.BadVersion},
		{"ihl<5", func(p []byte) []byte { p[0] = 0x44; return p }, false, drop.BadHeaderLength},
		{"ihl beyond", func(p []byte) []byte { p[0] = 0x4f; return p[:40] }, false, drop.BadHeaderLength},
		{"total > len", func(p []byte) []byte { binary.BigEndian.PutUint16(p[2:], uint16(len(p)+1)); return p }, true, drop.BadTotalLength},
		{"total < ihl", func(p []byte) []byte { binary.BigEndian.PutUint16(p[2:], 19); return p }, true, drop.BadTotalLength},
		{"header checksum", func(p []byte) []byte { p[10] ^= 1; return p }, false, drop.BadHeaderChecksum},
		{"src 0.0.0.0", func(p []byte) []byte { copy(p[12:], []byte{0, 0, 0, 0}); return p }, true, drop.IllegalSource},
		{"src loopback", func(p []byte) []byte { copy(p[12:], []byte{127, 0, 0, 1}); return p }, true, drop.IllegalSource},
		{"src multicast", func(p []byte) []byte { copy(p[12:], []byte{224, 0, 0, 1}); return p }, true, drop.IllegalSource},
		{"src broadcast", func(p []byte) []byte { copy(p[12:], []byte{255, 255, 255, 255}); return p }, true, drop.IllegalSource},
		{"dst loopback", func(p []byte) []byte { copy(p[16:], []byte{127, 0, 0, 1}); return p }, true, drop.IllegalDestination},
		{"dst 0.0.0.0", func(p []byte) []byte { copy(p[16:], []byte{0, 0, 0, 0}); return p }, true, drop.IllegalDestination},
		{"dst broadcast", func(p []byte) []byte { copy(p[16:], []byte{255, 255, 255, 255}); return p }, true, drop.IllegalDestination},
		{"src unmapped", func(p []byte) []byte { copy(p[12:], unm4[:]); return p }, true, drop.NoMappingSource},
		{"dst unmapped", func(p []byte) []byte { copy(p[16:], unm4[:]); return p }, true, drop.NoMappingDestination},
		{"IGMP", func(p []byte) []byte { p[9] = 2; return p }, true, drop.ICMPSingleHop},
		{"ICMPv6 in IPv4", func(p []byte) []byte { p[9] = 58; return p }, true, drop.ProtocolMismatch},
		{"protocol 0", func(p []byte) []byte { p[9] = 0; return p }, true, drop.UnknownNextHeader},
		{"protocol 44", func(p []byte) []byte { p[9] = 44; return p }, true, drop.UnknownNextHeader},
		{"TCP truncated", func(p []byte) []byte {
			binary.BigEndian.PutUint16(p[2:], 39)
			return p[:39]
		}, true, drop.TooShort},
	}
	tr := newTranslator(t, nil)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			buf, off := tcp4(t, app4, srv4, 20)
			p := tc.edit(buf[off:])
			if tc.fix {
				fix4(p)
			}
			r := tr.Translate4to6(buf[:off+len(p)], off)
			if r.Action != Dropped || r.Reason != tc.want {
				t.Fatalf("got %v/%v, want dropped/%v", r.Action, r.Reason, tc.want)
			}
			if len(r.Packets) != 0 {
				t.Fatal("dropped result carries packets")
			}
		})
	}
	if r := tr.Translate4to6(make([]byte, 10), 11); r.Action != Dropped {
		t.Fatal("offset beyond the buffer not refused")
	}
}

func TestTranslate4to6UDPZeroChecksum(t *testing.T) {
	zero := func(frag bool) ([]byte, int) {
		buf, off := udp4(t, app4, srv4, 33)
		p := buf[off:]
		p[26], p[27] = 0, 0
		if frag {
			binary.BigEndian.PutUint16(p[6:], 0x2000) // MF
		}
		fix4(p)
		return buf, off
	}
	tr := newTranslator(t, nil)
	buf, off := zero(false)
	out := mustOne(t, tr.Translate4to6(buf, off), Translated)
	if valid, _ := refL4Valid6(out); !valid || binary.BigEndian.Uint16(out[46:]) == 0 {
		t.Fatal("zero UDP checksum not computed")
	}
	buf, off = zero(true)
	if r := tr.Translate4to6(buf, off); r.Action != Dropped || r.Reason != drop.FragmentedZeroUDP {
		t.Fatalf("fragment with zero checksum: %v %v", r.Action, r.Reason)
	}
	td := newTranslator(t, func(c *Config) { c.UDPZeroChecksum = UDPZeroDrop })
	buf, off = zero(false)
	if r := td.Translate4to6(buf, off); r.Action != Dropped || r.Reason != drop.ZeroUDPChecksum {
		t.Fatalf("drop mode: %v %v", r.Action, r.Reason)
	}
}

// TestTranslate4to6BadChecksumStaysBad: an incorrect TCP/UDP checksum keeps
// the same error after translation (RFC 1624 incremental update).
func TestTranslate4to6BadChecksumStaysBad(t *testing.T) {
	tr := newTranslator(t, nil)
	for _, b := range []func(testing.TB, [4]byte, [4]byte, int) ([]byte, int){tcp4, udp4, echo4} {
		buf, off := b(t, app4, srv4, 40)
		p := buf[off:]
		p[len(p)-1] ^= 0x5a // corrupt the data, not the checksum
		errIn := refSumL4In4(p)
		out := mustOne(t, tr.Translate4to6(buf, off), Translated)
		if valid, _ := refL4Valid6(out); valid {
			t.Fatal("a corrupt packet left with a valid checksum")
		}
		o, nh, _ := upper6(out)
		errOut := refSum(refPseudo6(out[8:24], out[24:40], nh, len(out)-o), out[o:])
		if !equalOnes(errIn, errOut) {
			t.Fatalf("error changed: %#x → %#x", errIn, errOut)
		}
	}
}

// refSumL4In4 returns the sum that a valid IPv4 transport checksum makes
// 0xffff.
func refSumL4In4(p []byte) uint16 {
	up := p[20:]
	if p[9] == 1 {
		return refSum(up)
	}
	return refSum(refPseudo4(p[12:16], p[16:20], p[9], len(up)), up)
}

func TestTranslate4to6Fragments(t *testing.T) {
	tr := newTranslator(t, nil)
	// First fragment (MF) and a later one: Fragment header with the
	// identification's low 16 bits, offset and M copied (§4.1).
	for _, tc := range []struct {
		flags uint16
		off   int
		m     bool
	}{{0x2000, 0, true}, {0x2000 | 185, 1480, true}, {185, 1480, false}} {
		buf, off := udp4(t, app4, srv4, 64)
		p := buf[off:]
		binary.BigEndian.PutUint16(p[6:], tc.flags)
		binary.BigEndian.PutUint16(p[4:], 0xbeef)
		fix4(p)
		in := append([]byte(nil), p...)
		out := mustOne(t, tr.Translate4to6(buf, off), Translated)
		if &out[len(out)-1] != &buf[len(buf)-1] {
			t.Error("fragment not translated in place")
		}
		pk := decode6(t, out)
		fr, ok := pk.Layer(layers.LayerTypeIPv6Fragment).(*layers.IPv6Fragment)
		if !ok {
			t.Fatal("no Fragment header")
		}
		if fr.Identification != 0xbeef || int(fr.FragmentOffset)*8 != tc.off || fr.MoreFragments != tc.m || fr.NextHeader != 17 {
			t.Fatalf("fragment header %+v", fr)
		}
		if binary.BigEndian.Uint16(out[4:]) != uint16(len(in)-20+8) || len(out) != len(in)+28 {
			t.Fatalf("payload length %d", binary.BigEndian.Uint16(out[4:]))
		}
		if tc.off != 0 && !bytes.Equal(out[48:], in[20:]) {
			t.Fatal("non-first fragment data changed")
		}
	}
	// ICMP fragments are refused.
	buf, off := echo4(t, app4, srv4, 64)
	binary.BigEndian.PutUint16(buf[off+6:], 0x2000)
	fix4(buf[off:])
	if r := tr.Translate4to6(buf, off); r.Reason != drop.FragmentedICMP {
		t.Fatalf("fragmented ICMP: %v", r.Reason)
	}
}

// reassemble6 joins IPv6 fragments and checks their headers agree.
func reassemble6(t *testing.T, pkts [][]byte, maxLen int) []byte {
	t.Helper()
	var data []byte
	id := binary.BigEndian.Uint32(pkts[0][44:])
	for i, p := range pkts {
		decode6(t, p)
		if len(p) > maxLen || p[6] != 44 || int(binary.BigEndian.Uint16(p[4:])) != len(p)-40 {
			t.Fatalf("fragment %d: len %d nh %d", i, len(p), p[6])
		}
		offM := binary.BigEndian.Uint16(p[42:])
		if int(offM&^7) != len(data) || (offM&1 == 1) != (i < len(pkts)-1) || binary.BigEndian.Uint32(p[44:]) != id {
			t.Fatalf("fragment %d: offset %d M %d id %#x", i, offM&^7, offM&1, binary.BigEndian.Uint32(p[44:]))
		}
		if i < len(pkts)-1 && (len(p)-48)%8 != 0 {
			t.Fatalf("fragment %d not a multiple of 8", i)
		}
		data = append(data, p[48:]...)
	}
	return data
}

func TestTranslate4to6Fragmentation(t *testing.T) {
	for _, lowest := range []int{1280, 1400} {
		for _, build := range []func(testing.TB, [4]byte, [4]byte, int) ([]byte, int){tcp4, udp4, echo4} {
			tr := newTranslator(t, func(c *Config) { c.LowestIPv6MTU = lowest })
			buf, off := build(t, app4, srv4, 3000)
			p := buf[off:]
			binary.BigEndian.PutUint16(p[6:], 0) // DF clear
			fix4(p)
			in := append([]byte(nil), p...)
			r := tr.Translate4to6(buf, off)
			if r.Action != Translated || len(r.Packets) < 3 {
				t.Fatalf("DF=0 3000 bytes: %v %v, %d packets", r.Action, r.Reason, len(r.Packets))
			}
			data := reassemble6(t, r.Packets, lowest)
			if len(data) != len(in)-20 || !bytes.Equal(data[20:], in[40:]) {
				t.Fatal("reassembled data differs")
			}
			nh := r.Packets[0][40]
			if refSum(refPseudo6(app6[:], srv6[:], nh, len(data)), data) != 0xffff {
				t.Fatal("reassembled checksum invalid")
			}
			if binary.BigEndian.Uint32(r.Packets[0][44:]) != 0x1234 {
				t.Fatal("identification not copied")
			}
		}
	}
	// DF=0 below lowest-ipv6-mtu: no Fragment header (§4 "MUST NOT").
	tr := newTranslator(t, nil)
	buf, off := udp4(t, app4, srv4, 1280-48)
	binary.BigEndian.PutUint16(buf[off+6:], 0)
	fix4(buf[off:])
	out := mustOne(t, tr.Translate4to6(buf, off), Translated)
	if out[6] != 17 || len(out) != 1280 {
		t.Fatalf("unexpected fragment header or size %d", len(out))
	}
	// One byte more: two fragments.
	buf, off = udp4(t, app4, srv4, 1280-48+1)
	binary.BigEndian.PutUint16(buf[off+6:], 0)
	fix4(buf[off:])
	if r := tr.Translate4to6(buf, off); len(r.Packets) != 2 {
		t.Fatalf("1281-byte translation: %d packets", len(r.Packets))
	}
}

func TestTranslate4to6FragmentationNeeded(t *testing.T) {
	for _, tc := range []struct {
		ipv6MTU, n int
		frag       bool
		want       uint16
	}{
		{1500, 1500 - 40 - 20, false, 0}, // exactly fits: translated
		{1500, 1500 - 40 - 20 + 1, false, 1480},
		{1400, 1400 - 40 - 20 + 1, false, 1380},
	} {
		tr := newTranslator(t, func(c *Config) { c.IPv6MTU = tc.ipv6MTU })
		buf, off := tcp4(t, app4, srv4, tc.n)
		in := append([]byte(nil), buf[off:]...)
		r := tr.Translate4to6(buf, off)
		if tc.want == 0 {
			mustOne(t, r, Translated)
			continue
		}
		out := mustOne(t, r, GeneratedError)
		if r.Reason != drop.FragmentNeeded {
			t.Fatalf("reason %v", r.Reason)
		}
		checkICMPv4Error(t, out, srv4, app4, 3, 4, tc.want, in)
	}
}

func TestTranslate4to6ICMPTypes(t *testing.T) {
	tr := newTranslator(t, nil)
	for typ := 0; typ < 256; typ++ {
		buf, off := echo4(t, app4, srv4, 20)
		p := buf[off:]
		p[20] = byte(typ)
		fixICMP4(p)
		r := tr.Translate4to6(buf, off)
		var want drop.Reason
		switch typ {
		case 0, 8:
			want = drop.None
		case 3, 11, 12:
			continue // errors: see the ICMP error tests
		case 4, 5, 6, 9, 10, 13, 14, 15, 16, 17, 18:
			want = drop.ICMPSingleHop
		default:
			want = drop.ICMPUnknownType
		}
		if r.Reason != want {
			t.Errorf("type %d: reason %v, want %v", typ, r.Reason, want)
		}
		if want == drop.None {
			out := mustOne(t, r, Translated)
			if want := map[int]uint8{0: 129, 8: 128}[typ]; out[40] != want {
				t.Errorf("type %d → %d", typ, out[40])
			}
			if valid, _ := refL4Valid6(out); !valid {
				t.Errorf("type %d: checksum invalid", typ)
			}
		}
	}
}

func TestTranslate4to6OtherProtocol(t *testing.T) {
	tr := newTranslator(t, nil)
	buf, off := udp4(t, app4, srv4, 40)
	buf[off+9] = 132 // SCTP: forwarded untouched (§4.5 last paragraph)
	fix4(buf[off:])
	in := append([]byte(nil), buf[off+20:]...)
	out := mustOne(t, tr.Translate4to6(buf, off), Translated)
	if out[6] != 132 || !bytes.Equal(out[40:], in) {
		t.Fatal("unknown protocol not forwarded as is")
	}
}
