package translate

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/bih-nfq/bih-nfq/internal/drop"
	"github.com/gopacket/gopacket/layers"
)

// insertExt returns a copy of the IPv6 packet buf[off:] with extension
// header ext (of type typ; its first byte is overwritten with the next
// header) inserted right after the IPv6 header, with Headroom in front.
func insertExt(buf []byte, off int, typ uint8, ext []byte) ([]byte, int) {
	p := buf[off:]
	e := append([]byte(nil), ext...)
	e[0] = p[6]
	out := make([]byte, Headroom, Headroom+len(p)+len(e))
	out = append(out, p[:40]...)
	out = append(out, e...)
	out = append(out, p[40:]...)
	q := out[Headroom:]
	q[6] = typ
	binary.BigEndian.PutUint16(q[4:], uint16(len(q)-40))
	return out, Headroom
}

var (
	extHopByHop = []byte{0, 0, 1, 4, 0, 0, 0, 0}                          // PadN
	extDestOpts = []byte{0, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0} // 16 bytes
	extRouting0 = []byte{0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	extRouting1 = []byte{0, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
)

// check4Out decodes a translated IPv4 packet and checks header checksum,
// lengths and addresses.
func check4Out(t *testing.T, out []byte, src, dst [4]byte) *layers.IPv4 {
	t.Helper()
	pk := decode4(t, out)
	ip := pk.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if !bytes.Equal(ip.SrcIP, src[:]) || !bytes.Equal(ip.DstIP, dst[:]) {
		t.Fatalf("addresses %v → %v", ip.SrcIP, ip.DstIP)
	}
	if ip.IHL != 5 || int(ip.Length) != len(out) || refSum(out[:20]) != 0xffff {
		t.Fatalf("header: ihl %d length %d (packet %d), checksum ok %v", ip.IHL, ip.Length, len(out), refSum(out[:20]) == 0xffff)
	}
	return ip
}

func TestTranslate6to4Basic(t *testing.T) {
	tests := []struct {
		name  string
		build func(testing.TB) ([]byte, int)
		proto uint8
	}{
		{"TCP", func(tb testing.TB) ([]byte, int) { return tcp6(tb, srv6, app6, 64) }, 6},
		{"TCP-large", func(tb testing.TB) ([]byte, int) { return tcp6(tb, srv6, app6, 1400) }, 6},
		{"UDP", func(tb testing.TB) ([]byte, int) { return udp6(tb, srv6, app6, 63) }, 17},
		{"EchoReply", func(tb testing.TB) ([]byte, int) { return echo6(tb, srv6, app6, 129, 56) }, 1},
		{"EchoRequest", func(tb testing.TB) ([]byte, int) { return echo6(tb, srv6, app6, 128, 56) }, 1},
		{"HopByHop", func(tb testing.TB) ([]byte, int) {
			b, o := udp6(tb, srv6, app6, 40)
			return insertExt(b, o, 0, extHopByHop)
		}, 17},
		{"DestOpts+Routing0", func(tb testing.TB) ([]byte, int) {
			b, o := tcp6(tb, srv6, app6, 40)
			b, o = insertExt(b, o, 43, extRouting0)
			return insertExt(b, o, 60, extDestOpts)
		}, 6},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTranslator(t, nil)
			buf, off := tc.build(t)
			in := append([]byte(nil), buf[off:]...)
			upper := 40
			for nh := in[6]; nh == 0 || nh == 43 || nh == 60; {
				nh = in[upper]
				upper += (int(in[upper+1]) + 1) * 8
			}
			out := mustOne(t, tr.Translate6to4(buf, off), Translated)
			if &out[len(out)-1] != &buf[len(buf)-1] {
				t.Error("not built in place")
			}
			ip := check4Out(t, out, srv4, app4)
			if uint8(ip.Protocol) != tc.proto || ip.TOS != 0xb8 || ip.TTL != 64 || ip.FragOffset != 0 {
				t.Errorf("proto %d tos %#x ttl %d frag %d", ip.Protocol, ip.TOS, ip.TTL, ip.FragOffset)
			}
			// §5.1 "Flags": DF only above 1260 bytes.
			if wantDF := len(out) > 1260; (ip.Flags&layers.IPv4DontFragment != 0) != wantDF || ip.Flags&layers.IPv4MoreFragments != 0 {
				t.Errorf("flags %v for %d bytes", ip.Flags, len(out))
			}
			if len(out) != len(in)-upper+20 {
				t.Errorf("length %d, want %d", len(out), len(in)-upper+20)
			}
			if valid, ok := refL4Valid4(out); !ok || !valid {
				t.Error("transport checksum invalid")
			}
			if !bytes.Equal(out[20+18:], in[upper+18:]) {
				t.Error("data changed")
			}
		})
	}
}

func TestTranslate6to4Refused(t *testing.T) {
	tests := []struct {
		name string
		edit func(p []byte) []byte
		want drop.Reason
	}{
		{"short", func(p []byte) []byte { return p[:39] }, drop.TooShort},
		{"version", func(p []byte) []byte { p[0] = 0x40; return p }, drop.BadVersion},
		{"payload length", func(p []byte) []byte { binary.BigEndian.PutUint16(p[4:], uint16(len(p))); return p }, drop.BadTotalLength},
		{"src unspecified", func(p []byte) []byte { clear(p[8:24]); return p }, drop.IllegalSource},
		{"src loopback", func(p []byte) []byte { clear(p[8:24]); p[23] = 1; return p }, drop.IllegalSource},
		{"src multicast", func(p []byte) []byte { p[8] = 0xff; return p }, drop.IllegalSource},
		{"dst loopback", func(p []byte) []byte { clear(p[24:40]); p[39] = 1; return p }, drop.IllegalDestination},
		{"dst unspecified", func(p []byte) []byte { clear(p[24:40]); return p }, drop.IllegalDestination},
		{"src unmapped", func(p []byte) []byte { copy(p[8:], unm6[:]); return p }, drop.NoMappingSource},
		{"dst unmapped", func(p []byte) []byte { copy(p[24:], unm6[:]); return p }, drop.NoMappingDestination},
		{"ICMPv4 in IPv6", func(p []byte) []byte { p[6] = 1; return p }, drop.ProtocolMismatch},
		{"truncated ext", func(p []byte) []byte {
			p[6] = 60
			p[41] = 200
			return p
		}, drop.BadExtensionChain},
		{"TCP truncated", func(p []byte) []byte { binary.BigEndian.PutUint16(p[4:], 19); return p[:59] }, drop.TooShort},
	}
	tr := newTranslator(t, nil)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			buf, off := tcp6(t, srv6, app6, 20)
			p := tc.edit(buf[off:])
			r := tr.Translate6to4(buf[:off+len(p)], off)
			if r.Action != Dropped || r.Reason != tc.want {
				t.Fatalf("got %v/%v, want dropped/%v", r.Action, r.Reason, tc.want)
			}
		})
	}
	// IPv6 UDP with checksum zero is invalid (RFC 8200 §8.1).
	buf, off := udp6(t, srv6, app6, 20)
	buf[off+46], buf[off+47] = 0, 0
	if r := tr.Translate6to4(buf, off); r.Reason != drop.BadChecksum {
		t.Fatalf("zero UDP checksum: %v", r.Reason)
	}
	// Fragment header followed by another extension header (§5.1.1).
	buf, off = udp6(t, srv6, app6, 20)
	buf, off = insertExt(buf, off, 60, extDestOpts)
	buf, off = insertExt(buf, off, 44, []byte{0, 0, 0, 0, 0, 0, 0, 1})
	if r := tr.Translate6to4(buf, off); r.Reason != drop.UnknownNextHeader {
		t.Fatalf("fragment then destination options: %v", r.Reason)
	}
}

func TestTranslate6to4RoutingHeader(t *testing.T) {
	tr := newTranslator(t, func(c *Config) { c.ICMPSource6 = netip.AddrFrom16(icmpSrc6) })
	buf, off := udp6(t, srv6, app6, 20)
	buf, off = insertExt(buf, off, 0, extHopByHop)
	buf, off = insertExt(buf, off, 43, extRouting1)
	// chain: IPv6 → Routing (40) → Hop-by-Hop (64) → UDP; Segments Left at 43.
	in := append([]byte(nil), buf[off:]...)
	r := tr.Translate6to4(buf, off)
	out := mustOne(t, r, GeneratedError)
	if r.Reason != drop.RoutingHeader {
		t.Fatalf("reason %v", r.Reason)
	}
	checkICMPv6Error(t, out, icmpSrc6, srv6, 4, 0, 43, in)
}

// checkICMPv6Error verifies a generated ICMPv6 error.
func checkICMPv6Error(t *testing.T, out []byte, src, dst [16]byte, typ, code uint8, param uint32, orig []byte) {
	t.Helper()
	decode6(t, out)
	if !bytes.Equal(out[8:24], src[:]) || !bytes.Equal(out[24:40], dst[:]) || out[6] != 58 {
		t.Fatalf("error %x → %x", out[8:24], out[24:40])
	}
	if out[40] != typ || out[41] != code || binary.BigEndian.Uint32(out[44:]) != param {
		t.Fatalf("ICMPv6 %d/%d param %d, want %d/%d %d", out[40], out[41], binary.BigEndian.Uint32(out[44:]), typ, code, param)
	}
	if valid, _ := refL4Valid6(out); !valid || len(out) > 1280 || int(binary.BigEndian.Uint16(out[4:])) != len(out)-40 {
		t.Fatal("bad checksum or length")
	}
	if n := min(len(orig), 1280-48); !bytes.Equal(out[48:], orig[:n]) {
		t.Fatal("quoted packet differs")
	}
}

func TestTranslate6to4HopLimit(t *testing.T) {
	rt := newTranslator(t, func(c *Config) { c.Router = true })
	buf, off := tcp6(t, srv6, app6, 10)
	out := mustOne(t, rt.Translate6to4(buf, off), Translated)
	if out[8] != 63 {
		t.Fatalf("router TTL %d", out[8])
	}
	buf, off = tcp6(t, srv6, app6, 10)
	buf[off+7] = 1
	in := append([]byte(nil), buf[off:]...)
	r := rt.Translate6to4(buf, off)
	out = mustOne(t, r, GeneratedError)
	// Without ICMPSource6, the error comes from the original destination.
	checkICMPv6Error(t, out, app6, srv6, 3, 0, 0, in)
	if r.Reason != drop.TTLExceeded {
		t.Fatalf("reason %v", r.Reason)
	}
	host := newTranslator(t, func(c *Config) { c.IgnoreTOS = true })
	buf, off = tcp6(t, srv6, app6, 10)
	buf[off+7] = 1
	out = mustOne(t, host.Translate6to4(buf, off), Translated)
	if out[8] != 1 || out[1] != 0 {
		t.Fatalf("host mode TTL %d, TOS %#x", out[8], out[1])
	}
}

func TestTranslate6to4Fragments(t *testing.T) {
	tr := newTranslator(t, nil)
	for _, tc := range []struct {
		offM uint16
		off  int
		m    bool
	}{{1, 0, true}, {1480 | 1, 1480, true}, {1480, 1480, false}, {0, 0, false}} {
		buf, off := udp6(t, srv6, app6, 100)
		buf, off = insertExt(buf, off, 44, []byte{0, 0, byte(tc.offM >> 8), byte(tc.offM), 0xab, 0xcd, 0xbe, 0xef})
		in := append([]byte(nil), buf[off:]...)
		out := mustOne(t, tr.Translate6to4(buf, off), Translated)
		ip := check4Out(t, out, srv4, app4)
		if ip.Id != 0xbeef || int(ip.FragOffset)*8 != tc.off || (ip.Flags&layers.IPv4MoreFragments != 0) != tc.m ||
			ip.Flags&layers.IPv4DontFragment != 0 || ip.Protocol != 17 {
			t.Fatalf("%+v: id %#x off %d flags %v", tc, ip.Id, ip.FragOffset, ip.Flags)
		}
		if len(out) != len(in)-48+20 {
			t.Fatalf("length %d", len(out))
		}
		if tc.off == 0 {
			if valid, _ := refUDPValid4Whole(out); !valid {
				t.Fatal("UDP checksum invalid")
			}
		} else if !bytes.Equal(out[20:], in[48:]) {
			t.Fatal("fragment data changed")
		}
	}
	// ICMPv6 fragments are refused; an atomic fragment is translated.
	buf, off := echo6(t, srv6, app6, 129, 20)
	b2, o2 := insertExt(buf, off, 44, []byte{0, 0, 0, 1, 0, 0, 0, 1})
	if r := tr.Translate6to4(b2, o2); r.Reason != drop.FragmentedICMP {
		t.Fatalf("fragmented ICMPv6: %v", r.Reason)
	}
	b2, o2 = insertExt(buf, off, 44, []byte{0, 0, 0, 0, 0, 0, 0, 1})
	out := mustOne(t, tr.Translate6to4(b2, o2), Translated)
	if valid, _ := refSum(out[20:]), 0; valid != 0xffff {
		t.Fatal("atomic fragment echo checksum invalid")
	}
}

// refUDPValid4Whole checks the UDP checksum of an IPv4 packet whose UDP
// datagram is entirely present (ignoring the fragment fields).
func refUDPValid4Whole(p []byte) (bool, bool) {
	up := p[20:]
	return refSum(refPseudo4(p[12:16], p[16:20], 17, len(up)), up) == 0xffff, true
}

func TestTranslate6to4Fragmentation(t *testing.T) {
	for _, mtu := range []int{576, 1280, 1500} {
		tr := newTranslator(t, func(c *Config) { c.IPv4MTU = mtu })
		for _, n := range []int{1000, 1232, 1400, 3000} {
			buf, off := udp6(t, srv6, app6, n-8)
			in := append([]byte(nil), buf[off:]...)
			r := tr.Translate6to4(buf, off)
			total := 20 + n
			switch {
			case total <= mtu:
				mustOne(t, r, Translated)
			case len(in) > 1280 && total > 1260:
				out := mustOne(t, r, GeneratedError)
				if r.Reason != drop.PacketTooBig {
					t.Fatalf("reason %v", r.Reason)
				}
				checkICMPv6Error(t, out, app6, srv6, 2, 0, uint32(max(1280, mtu+20)), in)
			default:
				if r.Action != Translated || len(r.Packets) < 2 {
					t.Fatalf("mtu %d n %d: %v %v %d packets", mtu, n, r.Action, r.Reason, len(r.Packets))
				}
				var data []byte
				for i, p := range r.Packets {
					ip := check4Out(t, p, srv4, app4)
					if len(p) > mtu || int(ip.FragOffset)*8 != len(data) || (ip.Flags&layers.IPv4MoreFragments != 0) != (i < len(r.Packets)-1) ||
						ip.Flags&layers.IPv4DontFragment != 0 || ip.Id != binary.BigEndian.Uint16(r.Packets[0][4:]) {
						t.Fatalf("fragment %d: len %d off %d flags %v", i, len(p), ip.FragOffset, ip.Flags)
					}
					data = append(data, p[20:]...)
				}
				if !bytes.Equal(data[8:], in[48:]) || refSum(refPseudo4(srv4[:], app4[:], 17, len(data)), data) != 0xffff {
					t.Fatal("reassembled datagram wrong")
				}
			}
		}
		// With a Fragment header, a large packet is fragmented, never refused.
		buf, off := udp6(t, srv6, app6, 2000)
		buf, off = insertExt(buf, off, 44, []byte{0, 0, 0, 0, 0, 0, 0x12, 0x34})
		r := tr.Translate6to4(buf, off)
		if mtu < 2028 && (r.Action != Translated || len(r.Packets) < 2) {
			t.Fatalf("mtu %d: fragment not refragmented: %v %v", mtu, r.Action, r.Reason)
		}
	}
}

func TestTranslate6to4ICMPTypes(t *testing.T) {
	tr := newTranslator(t, nil)
	for typ := 128; typ < 256; typ++ {
		buf, off := echo6(t, srv6, app6, uint8(typ), 20)
		r := tr.Translate6to4(buf, off)
		want := drop.ICMPUnknownType
		switch {
		case typ == 128 || typ == 129:
			want = drop.None
		case typ >= 130 && typ <= 137, typ == 143:
			want = drop.ICMPSingleHop
		}
		if r.Reason != want {
			t.Errorf("type %d: %v, want %v", typ, r.Reason, want)
		}
	}
}

func TestTranslate6to4BadChecksumStaysBad(t *testing.T) {
	tr := newTranslator(t, nil)
	for _, build := range []func() ([]byte, int){
		func() ([]byte, int) { return tcp6(t, srv6, app6, 40) },
		func() ([]byte, int) { return udp6(t, srv6, app6, 40) },
		func() ([]byte, int) { return echo6(t, srv6, app6, 128, 40) },
	} {
		buf, off := build()
		p := buf[off:]
		p[len(p)-1] ^= 0x33
		errIn := refSum(refPseudo6(p[8:24], p[24:40], p[6], len(p)-40), p[40:])
		out := mustOne(t, tr.Translate6to4(buf, off), Translated)
		var errOut uint16
		if out[9] == 1 {
			errOut = refSum(out[20:])
		} else {
			errOut = refSum(refPseudo4(out[12:16], out[16:20], out[9], len(out)-20), out[20:])
		}
		if errOut == 0xffff || !equalOnes(errIn, errOut) {
			t.Fatalf("proto %d: error %#x became %#x", out[9], errIn, errOut)
		}
	}
}

// TestUDPChecksumZeroResult: a UDP checksum that computes to zero is sent
// as 0xffff in both directions (RFC 768: zero would mean "no checksum" in
// IPv4; RFC 8200 §8.1), and an input checksum of 0xffff is as valid as the
// equivalent zero sum.
func TestUDPChecksumZeroResult(t *testing.T) {
	tr := newTranslator(t, nil)
	// 4→6: pick the last payload word so that the IPv6 sum is all ones.
	buf, off := udp4(t, app4, srv4, 32)
	p := buf[off:]
	p[len(p)-2], p[len(p)-1] = 0, 0
	p[26], p[27] = 0, 0
	x := ^refSum(refPseudo6(app6[:], srv6[:], 17, len(p)-20), p[20:])
	binary.BigEndian.PutUint16(p[len(p)-2:], x)
	binary.BigEndian.PutUint16(p[26:], udpChecksumOut(^refSum(refPseudo4(app4[:], srv4[:], 17, len(p)-20), p[20:])))
	out := mustOne(t, tr.Translate4to6(buf, off), Translated)
	if c := binary.BigEndian.Uint16(out[46:]); c != 0xffff {
		t.Fatalf("4→6 zero result sent as %#04x", c)
	}
	if valid, _ := refL4Valid6(out); !valid {
		t.Fatal("4→6 checksum invalid")
	}

	// 6→4: the IPv4 sum all ones; the translation must not emit 0.
	buf, off = udp6(t, srv6, app6, 32)
	p = buf[off:]
	p[len(p)-2], p[len(p)-1] = 0, 0
	p[46], p[47] = 0, 0
	x = ^refSum(refPseudo4(srv4[:], app4[:], 17, len(p)-40), p[40:])
	binary.BigEndian.PutUint16(p[len(p)-2:], x)
	binary.BigEndian.PutUint16(p[46:], udpChecksumOut(^refSum(refPseudo6(srv6[:], app6[:], 17, len(p)-40), p[40:])))
	if valid, _ := refL4Valid6(p); !valid {
		t.Fatal("test input invalid")
	}
	out = mustOne(t, tr.Translate6to4(buf, off), Translated)
	if c := binary.BigEndian.Uint16(out[26:]); c != 0xffff {
		t.Fatalf("6→4 zero result sent as %#04x", c)
	}
	if valid, _ := refL4Valid4(out); !valid {
		t.Fatal("6→4 checksum invalid")
	}
}
