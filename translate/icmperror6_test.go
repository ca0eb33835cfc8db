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

func innerUDP6(t testing.TB, src, dst [16]byte, n int) []byte {
	buf, off := udp6(t, src, dst, n)
	return append([]byte(nil), buf[off:]...)
}

// icmp6Error builds IPv6 src→dst carrying ICMPv6 typ/code with second word
// rest and body.
func icmp6Error(t testing.TB, src, dst [16]byte, typ, code uint8, rest uint32, body []byte) ([]byte, int) {
	ip := ip6Layer(src, dst, layers.IPProtocolICMPv6)
	msg := []byte{typ, code, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(msg[4:], rest)
	msg = append(msg, body...)
	binary.BigEndian.PutUint16(msg[2:], ^refSum(refPseudo6(src[:], dst[:], 58, len(msg)), msg))
	return serialize(t, ip, gopacket.Payload(msg))
}

// checkICMPv4Out checks a translated ICMPv4 error: outer header, checksum,
// size limit.
func checkICMPv4Out(t *testing.T, out []byte, src, dst [4]byte) (typ, code uint8, rest []byte, inner []byte) {
	t.Helper()
	ip := check4Out(t, out, src, dst)
	if ip.Protocol != 1 || len(out) > 576 || ip.Flags&layers.IPv4DontFragment != 0 {
		t.Fatalf("proto %d len %d flags %v", ip.Protocol, len(out), ip.Flags)
	}
	if refSum(out[20:]) != 0xffff {
		t.Fatal("ICMPv4 checksum invalid")
	}
	return out[20], out[21], out[24:28], out[28:]
}

// checkInner4 checks an embedded IPv4 packet translated from the complete
// IPv6 packet orig (no extension headers).
func checkInner4(t *testing.T, in4 []byte, src, dst [4]byte, orig []byte) {
	t.Helper()
	if !bytes.Equal(in4[12:16], src[:]) || !bytes.Equal(in4[16:20], dst[:]) || refSum(in4[:20]) != 0xffff {
		t.Fatalf("inner header %x", in4[:20])
	}
	if int(binary.BigEndian.Uint16(in4[2:])) != len(orig)-20 || in4[8] != orig[7] {
		t.Fatalf("inner total length %d ttl %d", binary.BigEndian.Uint16(in4[2:]), in4[8])
	}
	if len(in4) == len(orig)-20 {
		if valid, _ := refL4Valid4(in4); !valid {
			t.Fatal("inner transport checksum invalid")
		}
	}
}

func TestICMPv6ErrorTypes(t *testing.T) {
	type want struct {
		typ, code uint8
		ptr       uint8
		reason    drop.Reason
	}
	tests := []struct {
		typ, code uint8
		ptr       uint32
		want      want
	}{
		{1, 0, 0, want{3, 1, 0, 0}},
		{1, 1, 0, want{3, 10, 0, 0}},
		{1, 2, 0, want{3, 1, 0, 0}},
		{1, 3, 0, want{3, 1, 0, 0}},
		{1, 4, 0, want{3, 3, 0, 0}},
		{1, 5, 0, want{reason: drop.ICMPUnknownType}},
		{1, 6, 0, want{reason: drop.ICMPUnknownType}},
		{3, 0, 0, want{11, 0, 0, 0}},
		{3, 1, 0, want{11, 1, 0, 0}},
		{3, 2, 0, want{reason: drop.ICMPUnknownType}},
		{4, 1, 6, want{3, 2, 0, 0}},
		{4, 2, 0, want{reason: drop.ICMPUnknownType}},
		{4, 3, 0, want{reason: drop.ICMPUnknownType}},
		{4, 0, 40, want{reason: drop.ICMPUnknownType}},
		{4, 0, 1 << 20, want{reason: drop.ICMPUnknownType}},
		{0, 0, 0, want{reason: drop.ICMPUnknownType}},
		{5, 0, 0, want{reason: drop.ICMPUnknownType}},
		{127, 0, 0, want{reason: drop.ICMPUnknownType}},
	}
	// Figure 6.
	fig6 := map[uint32]uint8{0: 0, 1: 1, 4: 2, 5: 2, 6: 9, 7: 8}
	for p := uint32(8); p < 24; p++ {
		fig6[p] = 12
	}
	for p := uint32(24); p < 40; p++ {
		fig6[p] = 16
	}
	for p := uint32(0); p < 40; p++ {
		w := want{reason: drop.ICMPUnknownType}
		if v, ok := fig6[p]; ok {
			w = want{12, 0, v, 0}
		}
		tests = append(tests, struct {
			typ, code uint8
			ptr       uint32
			want      want
		}{4, 0, p, w})
	}
	tr := newTranslator(t, nil)
	for _, tc := range tests {
		inner := innerUDP6(t, app6, srv6, 30)
		buf, off := icmp6Error(t, srv6, app6, tc.typ, tc.code, tc.ptr, inner)
		r := tr.Translate6to4(buf, off)
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
		typ, code, rest, in4 := checkICMPv4Out(t, r.Packets[0], srv4, app4)
		if typ != tc.want.typ || code != tc.want.code || rest[0] != tc.want.ptr || rest[1] != 0 || be16(rest[2:]) != 0 {
			t.Errorf("%d/%d ptr %d → %d/%d rest %x, want %+v", tc.typ, tc.code, tc.ptr, typ, code, rest, tc.want)
		}
		checkInner4(t, in4, app4, srv4, inner)
	}
}

func TestICMPv6ErrorPacketTooBig(t *testing.T) {
	for _, tc := range []struct {
		mtu6             uint32
		ipv4MTU, ipv6MTU int
		want             uint16
	}{
		{1280, 1500, 1500, 1260},
		{1500, 1500, 1500, 1480},
		{1500, 1400, 1500, 1400},
		{9000, 9000, 9000, 8980},
		{9000, 1500, 1300, 1280},
		{100000, 65535, 65535, 65515},
	} {
		tr := newTranslator(t, func(c *Config) { c.IPv4MTU, c.IPv6MTU = tc.ipv4MTU, tc.ipv6MTU })
		inner := innerUDP6(t, app6, srv6, 30)
		buf, off := icmp6Error(t, srv6, app6, 2, 0, tc.mtu6, inner)
		out := mustOne(t, tr.Translate6to4(buf, off), Translated)
		typ, code, rest, in4 := checkICMPv4Out(t, out, srv4, app4)
		if typ != 3 || code != 4 || be16(rest[2:]) != tc.want || rest[0] != 0 || rest[1] != 0 {
			t.Errorf("%+v: %d/%d rest %x", tc, typ, code, rest)
		}
		checkInner4(t, in4, app4, srv4, inner)
	}
}

func TestICMPv6ErrorRFC4884(t *testing.T) {
	tr := newTranslator(t, nil)
	ext := []byte{0x20, 0, 0, 0, 0, 8, 1, 1, 0xc0, 0xa8, 0, 1}
	binary.BigEndian.PutUint16(ext[2:], ^refSum(ext))
	for _, n := range []int{30, 100, 200, 500} {
		inner := innerUDP6(t, app6, srv6, n)
		field := max(128, (len(inner)+7)&^7)
		body := make([]byte, field)
		copy(body, inner)
		body = append(body, ext...)
		buf, off := icmp6Error(t, srv6, app6, 1, 4, uint32(field/8)<<24, body)
		out := mustOne(t, tr.Translate6to4(buf, off), Translated)
		typ, code, rest, in4 := checkICMPv4Out(t, out, srv4, app4)
		inLen := min(len(inner)-20, 576-28-len(ext))
		field4 := max(128, (inLen+3)&^3)
		if typ != 3 || code != 3 || rest[1] != uint8(field4/4) || rest[0] != 0 {
			t.Fatalf("n=%d: length attribute %d, want %d", n, rest[1], field4/4)
		}
		if !bytes.Equal(in4[field4:], ext) {
			t.Fatalf("n=%d: extension not at %d", n, field4)
		}
		checkInner4(t, in4[:inLen], app4, srv4, inner)
	}
}

func TestICMPv6ErrorRefused(t *testing.T) {
	tr := newTranslator(t, nil)
	inner := innerUDP6(t, app6, srv6, 30)

	buf, off := icmp6Error(t, srv6, app6, 1, 4, 0, inner)
	buf[len(buf)-1] ^= 1
	if r := tr.Translate6to4(buf, off); r.Reason != drop.BadChecksum {
		t.Errorf("bad checksum: %v", r.Reason)
	}
	nested, noff := icmp6Error(t, app6, srv6, 1, 4, 0, inner)
	buf, off = icmp6Error(t, srv6, app6, 1, 4, 0, nested[noff:])
	if r := tr.Translate6to4(buf, off); r.Reason != drop.ICMPNestedError {
		t.Errorf("nested: %v", r.Reason)
	}
	buf, off = icmp6Error(t, srv6, app6, 1, 4, 0, innerUDP6(t, app6, unm6, 30))
	if r := tr.Translate6to4(buf, off); r.Reason != drop.ICMPInnerMalformed {
		t.Errorf("unmapped inner: %v", r.Reason)
	}
	buf, off = icmp6Error(t, srv6, app6, 1, 4, 0, inner[:30])
	if r := tr.Translate6to4(buf, off); r.Reason != drop.ICMPTooShort {
		t.Errorf("short inner: %v", r.Reason)
	}
	buf, off = icmp6Error(t, srv6, app6, 1, 4, 20<<24, inner)
	if r := tr.Translate6to4(buf, off); r.Reason != drop.ICMPBadExtension {
		t.Errorf("length attribute beyond the message: %v", r.Reason)
	}
	// Fragmented ICMPv6 error.
	buf, off = icmp6Error(t, srv6, app6, 1, 4, 0, inner)
	buf, off = insertExt(buf, off, 44, []byte{0, 0, 0, 1, 0, 0, 0, 9})
	if r := tr.Translate6to4(buf, off); r.Reason != drop.FragmentedICMP {
		t.Errorf("fragmented: %v", r.Reason)
	}
}

// TestICMPv6ErrorUnmappedSource: an IPv6 router with no mapping (RFC 6535
// §2.4 case 3, RFC 6791).
func TestICMPv6ErrorUnmappedSource(t *testing.T) {
	inner := innerUDP6(t, app6, srv6, 30)
	build := func() ([]byte, int) { return icmp6Error(t, unm6, app6, 3, 0, 0, inner) }

	tr := newTranslator(t, nil)
	buf, off := build()
	if r := tr.Translate6to4(buf, off); r.Reason != drop.NoMappingSource {
		t.Fatalf("no fallback: %v", r.Reason)
	}
	ts := newTranslator(t, func(c *Config) { c.ICMPSource4 = netip.AddrFrom4(icmpSrc4) })
	buf, off = build()
	checkICMPv4Out(t, mustOne(t, ts.Translate6to4(buf, off), Translated), icmpSrc4, app4)

	em := &errSourceMapper{fakeMapper: newMapper(), onDemand: map[[16]byte][4]byte{unm6: unm4}}
	te, err := New(Config{Mapper: em, ICMPSource4: netip.AddrFrom4(icmpSrc4)})
	if err != nil {
		t.Fatal(err)
	}
	buf, off = build()
	checkICMPv4Out(t, mustOne(t, te.Translate6to4(buf, off), Translated), unm4, app4)
	if em.asked != 1 {
		t.Fatalf("ErrorSourceTo4 asked %d times", em.asked)
	}
	// The on-demand mapper refuses: RFC 6791 address.
	em.onDemand = nil
	buf, off = build()
	checkICMPv4Out(t, mustOne(t, te.Translate6to4(buf, off), Translated), icmpSrc4, app4)
	// Not for informational messages.
	buf, off = echo6(t, unm6, app6, 129, 8)
	if r := te.Translate6to4(buf, off); r.Reason != drop.NoMappingSource {
		t.Fatalf("echo from unmapped source: %v", r.Reason)
	}
}

func TestICMPv6ErrorInnerEchoTCPAndExtensions(t *testing.T) {
	tr := newTranslator(t, nil)
	for _, build := range []func() ([]byte, int){
		func() ([]byte, int) { return echo6(t, app6, srv6, 128, 24) },
		func() ([]byte, int) { return tcp6(t, app6, srv6, 24) },
	} {
		b, o := build()
		inner := append([]byte(nil), b[o:]...)
		buf, off := icmp6Error(t, srv6, app6, 1, 4, 0, inner)
		out := mustOne(t, tr.Translate6to4(buf, off), Translated)
		_, _, _, in4 := checkICMPv4Out(t, out, srv4, app4)
		checkInner4(t, in4, app4, srv4, inner)
		if inner[6] == 58 && in4[20] != 8 {
			t.Errorf("inner echo type %d", in4[20])
		}
	}
	// Inner packet with a Fragment header and a Destination Options header.
	b, o := udp6(t, app6, srv6, 40)
	b, o = insertExt(b, o, 44, []byte{0, 0, 0, 1, 0, 0, 0x56, 0x78})
	b, o = insertExt(b, o, 60, extDestOpts)
	inner := append([]byte(nil), b[o:]...)
	buf, off := icmp6Error(t, srv6, app6, 3, 0, 0, inner)
	out := mustOne(t, tr.Translate6to4(buf, off), Translated)
	_, _, _, in4 := checkICMPv4Out(t, out, srv4, app4)
	if binary.BigEndian.Uint16(in4[4:]) != 0x5678 || binary.BigEndian.Uint16(in4[6:]) != 0x2000 || in4[9] != 17 ||
		int(binary.BigEndian.Uint16(in4[2:])) != 20+48 || len(in4) != 20+48 {
		t.Fatalf("inner fragment header %x", in4[:20])
	}
	if refSum(refPseudo4(app4[:], srv4[:], 17, 48), in4[20:]) != 0xffff {
		t.Fatal("inner UDP checksum invalid")
	}
}

func TestICMPv6ErrorTruncatedTo576(t *testing.T) {
	tr := newTranslator(t, nil)
	inner := innerUDP6(t, app6, srv6, 1000)
	buf, off := icmp6Error(t, srv6, app6, 1, 4, 0, inner)
	out := mustOne(t, tr.Translate6to4(buf, off), Translated)
	_, _, _, in4 := checkICMPv4Out(t, out, srv4, app4)
	if len(out) != 576 || int(binary.BigEndian.Uint16(in4[2:])) != len(inner)-20 {
		t.Fatalf("len %d, inner total %d", len(out), binary.BigEndian.Uint16(in4[2:]))
	}
}

// TestGeneratedErrorsNotAnsweringErrors: no ICMP error is generated about
// an ICMP error (RFC 7915 §4.4, §5.4).
func TestGeneratedErrorsNotAnsweringErrors(t *testing.T) {
	rt := newTranslator(t, func(c *Config) { c.Router = true })
	inner := innerUDP6(t, app6, srv6, 30)
	buf, off := icmp6Error(t, srv6, app6, 1, 4, 0, inner)
	buf[off+7] = 1
	if r := rt.Translate6to4(buf, off); r.Action != Dropped || r.Reason != drop.TTLExceeded {
		t.Fatalf("expiring ICMPv6 error: %v %v", r.Action, r.Reason)
	}
	buf, off = icmp6Error(t, srv6, app6, 1, 4, 0, inner)
	buf, off = insertExt(buf, off, 43, extRouting1)
	if r := rt.Translate6to4(buf, off); r.Action != Dropped || r.Reason != drop.RoutingHeader {
		t.Fatalf("ICMPv6 error with routing header: %v %v", r.Action, r.Reason)
	}
}
