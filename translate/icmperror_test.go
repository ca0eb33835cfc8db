package translate

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/bih-nfq/bih-nfq/internal/drop"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// innerUDP4 returns a complete IPv4 UDP packet from src to dst, as quoted in
// an ICMPv4 error.
func innerUDP4(t testing.TB, src, dst [4]byte, n int) []byte {
	buf, off := udp4(t, src, dst, n)
	return append([]byte(nil), buf[off:]...)
}

// icmp4Error builds IPv4 src→dst carrying ICMPv4 typ/code with second word
// rest and body (the quoted datagram, extension...).
func icmp4Error(t testing.TB, src, dst [4]byte, typ, code uint8, rest [4]byte, body []byte) ([]byte, int) {
	ip := ip4Layer(src, dst, layers.IPProtocolICMPv4)
	ip.Flags = 0
	hdr := []byte{typ, code, 0, 0, rest[0], rest[1], rest[2], rest[3]}
	msg := append(hdr, body...)
	binary.BigEndian.PutUint16(msg[2:], ^refSum(msg))
	return serialize(t, ip, gopacket.Payload(msg))
}

// checkICMPv6Out decodes a translated ICMPv6 error and checks the outer
// header, the ICMPv6 checksum, the embedded IPv6 header and, when the
// quote is complete, the embedded transport checksum.
func checkICMPv6Out(t *testing.T, out []byte, src, dst [16]byte) (typ, code uint8, rest uint32, inner []byte) {
	t.Helper()
	decode6(t, out)
	if !bytes.Equal(out[8:24], src[:]) || !bytes.Equal(out[24:40], dst[:]) || out[6] != 58 {
		t.Fatalf("outer %x → %x nh %d", out[8:24], out[24:40], out[6])
	}
	if int(binary.BigEndian.Uint16(out[4:])) != len(out)-40 || len(out) > 1280 {
		t.Fatalf("payload length %d for %d bytes", binary.BigEndian.Uint16(out[4:]), len(out))
	}
	if valid, _ := refL4Valid6(out); !valid {
		t.Fatal("ICMPv6 checksum invalid")
	}
	return out[40], out[41], binary.BigEndian.Uint32(out[44:]), out[48:]
}

func TestICMPv4ErrorTypes(t *testing.T) {
	type want struct {
		typ, code uint8
		rest      uint32
		reason    drop.Reason
	}
	tests := []struct {
		typ, code, ptr uint8
		want           want
	}{
		{3, 0, 0, want{1, 0, 0, 0}},
		{3, 1, 0, want{1, 0, 0, 0}},
		{3, 2, 0, want{4, 1, 6, 0}},
		{3, 3, 0, want{1, 4, 0, 0}},
		{3, 5, 0, want{1, 0, 0, 0}},
		{3, 6, 0, want{1, 0, 0, 0}},
		{3, 7, 0, want{1, 0, 0, 0}},
		{3, 8, 0, want{1, 0, 0, 0}},
		{3, 9, 0, want{1, 1, 0, 0}},
		{3, 10, 0, want{1, 1, 0, 0}},
		{3, 11, 0, want{1, 0, 0, 0}},
		{3, 12, 0, want{1, 0, 0, 0}},
		{3, 13, 0, want{1, 1, 0, 0}},
		{3, 14, 0, want{reason: drop.ICMPUnknownType}},
		{3, 15, 0, want{1, 1, 0, 0}},
		{3, 16, 0, want{reason: drop.ICMPUnknownType}},
		{11, 0, 0, want{3, 0, 0, 0}},
		{11, 1, 0, want{3, 1, 0, 0}},
		{11, 2, 0, want{reason: drop.ICMPUnknownType}},
		{12, 1, 0, want{reason: drop.ICMPUnknownType}},
		{12, 3, 0, want{reason: drop.ICMPUnknownType}},
	}
	// Figure 3, for codes 0 and 2.
	fig3 := map[uint8]int{0: 0, 1: 1, 2: 4, 3: 4, 8: 7, 9: 6, 12: 8, 13: 8, 14: 8, 15: 8, 16: 24, 17: 24, 18: 24, 19: 24}
	for _, code := range []uint8{0, 2} {
		for ptr := uint8(0); ptr < 24; ptr++ {
			w := want{reason: drop.ICMPUnknownType}
			if v, ok := fig3[ptr]; ok {
				w = want{4, 0, uint32(v), 0}
			}
			tests = append(tests, struct {
				typ, code, ptr uint8
				want           want
			}{12, code, ptr, w})
		}
	}
	tr := newTranslator(t, nil)
	for _, tc := range tests {
		inner := innerUDP4(t, srv4, app4, 30)
		buf, off := icmp4Error(t, app4, srv4, tc.typ, tc.code, [4]byte{tc.ptr}, inner)
		r := tr.Translate4to6(buf, off)
		if tc.want.reason != drop.None {
			if r.Action != Dropped || r.Reason != tc.want.reason {
				t.Errorf("%d/%d ptr %d: %v %v, want %v", tc.typ, tc.code, tc.ptr, r.Action, r.Reason, tc.want.reason)
			}
			continue
		}
		if r.Action != Translated {
			t.Errorf("%d/%d ptr %d: %v %v", tc.typ, tc.code, tc.ptr, r.Action, r.Reason)
			continue
		}
		typ, code, rest, in6 := checkICMPv6Out(t, r.Packets[0], app6, srv6)
		if typ != tc.want.typ || code != tc.want.code || rest != tc.want.rest {
			t.Errorf("%d/%d ptr %d → %d/%d rest %d, want %+v", tc.typ, tc.code, tc.ptr, typ, code, rest, tc.want)
		}
		checkInner6(t, in6, srv6, app6, inner)
	}
}

// checkInner6 checks an embedded IPv6 packet translated from the complete
// IPv4 packet orig: addresses, lengths as sent, hop limit unchanged, data
// unchanged and transport checksum valid.
func checkInner6(t *testing.T, in6 []byte, src, dst [16]byte, orig []byte) {
	t.Helper()
	if !bytes.Equal(in6[8:24], src[:]) || !bytes.Equal(in6[24:40], dst[:]) {
		t.Fatalf("inner addresses %x → %x", in6[8:24], in6[24:40])
	}
	if in6[0]>>4 != 6 || int(binary.BigEndian.Uint16(in6[4:])) != len(orig)-20 || in6[7] != orig[8] {
		t.Fatalf("inner header %x", in6[:8])
	}
	if len(in6) == len(orig)+20 {
		if valid, _ := refL4Valid6(in6); !valid {
			t.Fatal("inner transport checksum invalid")
		}
		skip := 8 // the transport checksum is within the first 8 bytes...
		if orig[9] == 6 {
			skip = 20 // ...or 20 for TCP
		}
		if !bytes.Equal(in6[40+skip:], orig[20+skip:]) {
			t.Fatal("inner data changed")
		}
	}
}

func TestICMPv4ErrorPacketTooBig(t *testing.T) {
	tests := []struct {
		mtu4, innerTotal, ipv6MTU, ipv4MTU int
		want                               uint32
	}{
		{1400, 1500, 1500, 1500, 1420},
		{1480, 1500, 1500, 1500, 1500},
		{1492, 1500, 1500, 1500, 1500}, // min with the IPv6 next hop
		{1300, 1500, 1500, 1200, 1280}, // IPv4 next hop + 20, then max 1280
		{576, 1500, 1500, 1500, 1280},  // never below 1280
		{0, 1500, 1500, 1500, 1500},    // plateau 1492 + 20, capped by 1500
		{0, 1500, 9000, 9000, 1512},    // plateau 1492 + 20
		{0, 1400, 9000, 9000, 1280},    // no plateau ≥ 1280 below 1400
		{0, 9000, 9000, 9000, 8186},    // plateau 8166
		{0, 65535, 65535, 65535, 32020},
	}
	for _, tc := range tests {
		tr := newTranslator(t, func(c *Config) { c.IPv6MTU, c.IPv4MTU = tc.ipv6MTU, tc.ipv4MTU })
		inner := innerUDP4(t, srv4, app4, 30)
		binary.BigEndian.PutUint16(inner[2:], uint16(tc.innerTotal)) // as the router saw it
		fix4(inner)
		var rest [4]byte
		binary.BigEndian.PutUint16(rest[2:], uint16(tc.mtu4))
		buf, off := icmp4Error(t, app4, srv4, 3, 4, rest, inner)
		out := mustOne(t, tr.Translate4to6(buf, off), Translated)
		typ, code, mtu, _ := checkICMPv6Out(t, out, app6, srv6)
		if typ != 2 || code != 0 || mtu != tc.want {
			t.Errorf("%+v: got %d/%d mtu %d", tc, typ, code, mtu)
		}
	}
}

func TestICMPv4ErrorRFC4884(t *testing.T) {
	tr := newTranslator(t, nil)
	ext := []byte{0x20, 0, 0, 0, 0, 8, 1, 1, 0xc0, 0xa8, 0, 1} // version 2 header, one object
	binary.BigEndian.PutUint16(ext[2:], ^refSum(ext))
	for _, n := range []int{30, 100, 200} {
		inner := innerUDP4(t, srv4, app4, n)
		field := max(128, (len(inner)+3)&^3)
		body := make([]byte, field)
		copy(body, inner)
		body = append(body, ext...)
		buf, off := icmp4Error(t, app4, srv4, 11, 0, [4]byte{0, uint8(field / 4)}, body)
		out := mustOne(t, tr.Translate4to6(buf, off), Translated)
		typ, _, rest, in6 := checkICMPv6Out(t, out, app6, srv6)
		field6 := max(128, (len(inner)+20+7)&^7)
		if typ != 3 || rest>>24 != uint32(field6/8) || rest&0xffffff != 0 {
			t.Fatalf("n=%d: length attribute %d, want %d", n, rest>>24, field6/8)
		}
		if !bytes.Equal(in6[field6:], ext) {
			t.Fatalf("n=%d: extension not carried at %d", n, field6)
		}
		for _, b := range in6[len(inner)+20 : field6] {
			if b != 0 {
				t.Fatalf("n=%d: padding not zero", n)
			}
		}
		checkInner6(t, in6[:len(inner)+20], srv6, app6, inner)
	}
	// A length attribute past the end of the message.
	inner := innerUDP4(t, srv4, app4, 30)
	buf, off := icmp4Error(t, app4, srv4, 3, 1, [4]byte{0, 40}, inner)
	if r := tr.Translate4to6(buf, off); r.Reason != drop.ICMPBadExtension {
		t.Fatalf("bad length attribute: %v", r.Reason)
	}
	// Packet Too Big has no length attribute: the extension is removed.
	body := make([]byte, 128)
	copy(body, inner)
	body = append(body, ext...)
	buf, off = icmp4Error(t, app4, srv4, 3, 4, [4]byte{0, 32, 0x05, 0xdc}, body)
	out := mustOne(t, tr.Translate4to6(buf, off), Translated)
	if len(out) != 40+8+len(inner)+20 || out[44] != 0 {
		t.Fatalf("PTB with extension: %d bytes", len(out))
	}
}

func TestICMPv4ErrorRefused(t *testing.T) {
	tr := newTranslator(t, nil)
	inner := innerUDP4(t, srv4, app4, 30)

	buf, off := icmp4Error(t, app4, srv4, 3, 3, [4]byte{}, inner)
	buf[len(buf)-1] ^= 1
	if r := tr.Translate4to6(buf, off); r.Reason != drop.BadChecksum {
		t.Errorf("bad ICMP checksum: %v", r.Reason)
	}

	nested, noff := icmp4Error(t, srv4, app4, 3, 3, [4]byte{}, inner)
	buf, off = icmp4Error(t, app4, srv4, 3, 3, [4]byte{}, nested[noff:noff+48])
	if r := tr.Translate4to6(buf, off); r.Reason != drop.ICMPNestedError {
		t.Errorf("nested error: %v", r.Reason)
	}

	buf, off = icmp4Error(t, app4, srv4, 3, 3, [4]byte{}, innerUDP4(t, unm4, app4, 30))
	if r := tr.Translate4to6(buf, off); r.Reason != drop.ICMPInnerMalformed {
		t.Errorf("unmapped inner: %v", r.Reason)
	}

	buf, off = icmp4Error(t, app4, srv4, 3, 3, [4]byte{}, inner[:12])
	if r := tr.Translate4to6(buf, off); r.Reason != drop.ICMPTooShort {
		t.Errorf("short inner: %v", r.Reason)
	}

	// An IPv4 router without a mapping: ICMPSource6 or drop.
	buf, off = icmp4Error(t, unm4, srv4, 11, 0, [4]byte{}, inner)
	if r := tr.Translate4to6(buf, off); r.Reason != drop.NoMappingSource {
		t.Errorf("unmapped source without ICMPSource6: %v", r.Reason)
	}
	ts := newTranslator(t, func(c *Config) { c.ICMPSource6 = netip.AddrFrom16(icmpSrc6) })
	buf, off = icmp4Error(t, unm4, srv4, 11, 0, [4]byte{}, inner)
	out := mustOne(t, ts.Translate4to6(buf, off), Translated)
	checkICMPv6Out(t, out, icmpSrc6, srv6)

	// Router mode: an expiring ICMP error is dropped without a reply.
	rt := newTranslator(t, func(c *Config) { c.Router = true })
	buf, off = icmp4Error(t, app4, srv4, 3, 3, [4]byte{}, inner)
	buf[off+8] = 1
	fix4(buf[off:])
	if r := rt.Translate4to6(buf, off); r.Action != Dropped || r.Reason != drop.TTLExceeded {
		t.Errorf("expiring error: %v %v", r.Action, r.Reason)
	}
}

func TestICMPv4ErrorInnerEchoAndTCP(t *testing.T) {
	tr := newTranslator(t, nil)
	for _, build := range []func(testing.TB, [4]byte, [4]byte, int) ([]byte, int){echo4, tcp4} {
		b, o := build(t, srv4, app4, 24)
		inner := append([]byte(nil), b[o:]...)
		buf, off := icmp4Error(t, app4, srv4, 3, 1, [4]byte{}, inner)
		out := mustOne(t, tr.Translate4to6(buf, off), Translated)
		_, _, _, in6 := checkICMPv6Out(t, out, app6, srv6)
		checkInner6(t, in6, srv6, app6, inner)
		if inner[9] == 1 && in6[40] != 128 {
			t.Errorf("inner echo type %d", in6[40])
		}
	}
}

func TestICMPv4ErrorTruncatedTo1280(t *testing.T) {
	tr := newTranslator(t, nil)
	inner := innerUDP4(t, srv4, app4, 1400)
	buf, off := icmp4Error(t, app4, srv4, 3, 3, [4]byte{}, inner)
	out := mustOne(t, tr.Translate4to6(buf, off), Translated)
	_, _, _, in6 := checkICMPv6Out(t, out, app6, srv6)
	if len(out) != 1280 {
		t.Fatalf("translated error is %d bytes, want 1280", len(out))
	}
	if int(binary.BigEndian.Uint16(in6[4:])) != len(inner)-20 {
		t.Fatal("inner payload length not the original one")
	}
}

// TestICMPv4ErrorInnerFragment: a quoted IPv4 fragment becomes an IPv6
// packet with a Fragment header (§4.3: translated like a normal packet).
func TestICMPv4ErrorInnerFragment(t *testing.T) {
	tr := newTranslator(t, nil)
	inner := innerUDP4(t, srv4, app4, 40)
	binary.BigEndian.PutUint16(inner[4:], 0xabcd)
	binary.BigEndian.PutUint16(inner[6:], 0x2000) // MF, offset 0
	fix4(inner)
	buf, off := icmp4Error(t, app4, srv4, 11, 1, [4]byte{}, inner)
	out := mustOne(t, tr.Translate4to6(buf, off), Translated)
	typ, code, _, in6 := checkICMPv6Out(t, out, app6, srv6)
	if typ != 3 || code != 1 {
		t.Fatalf("%d/%d", typ, code)
	}
	if in6[6] != 44 || in6[40] != 17 || binary.BigEndian.Uint16(in6[42:]) != 1 || binary.BigEndian.Uint32(in6[44:]) != 0xabcd ||
		int(binary.BigEndian.Uint16(in6[4:])) != len(inner)-20+8 || len(in6) != len(inner)+28 {
		t.Fatalf("inner fragment header: %x", in6[:48])
	}
	if refSum(refPseudo6(srv6[:], app6[:], 17, len(inner)-20), in6[48:]) != 0xffff {
		t.Fatal("inner UDP checksum invalid")
	}
}
