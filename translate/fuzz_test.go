package translate

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// fuzzPrefix maps every IPv4 address into 2001:db8:64::/96 so that random
// inputs reach the translation code, not only the mapping check.
var fuzzPrefix = a16("2001:db8:64::")

type prefixMapper struct{ *fakeMapper }

func (m prefixMapper) To6(a [4]byte) ([16]byte, bool) {
	if v, ok := m.fakeMapper.To6(a); ok {
		return v, true
	}
	v := fuzzPrefix
	copy(v[12:], a[:])
	return v, true
}

func (m prefixMapper) To4(a [16]byte) ([4]byte, bool) {
	if v, ok := m.fakeMapper.To4(a); ok {
		return v, true
	}
	if [12]byte(a[:12]) != [12]byte(fuzzPrefix[:12]) {
		return [4]byte{}, false
	}
	return [4]byte(a[12:]), true
}

// fuzzTranslators returns translators for a few configurations, chosen by
// the fuzzer's mode byte.
func fuzzTranslators(tb testing.TB) [4]*Translator {
	var ts [4]*Translator
	for i := range ts {
		cfg := Config{Mapper: prefixMapper{newMapper()}}
		if i&1 != 0 {
			cfg.Router, cfg.IgnoreTOS, cfg.UDPZeroChecksum = true, true, UDPZeroDrop
			cfg.ICMPSource4 = netip.AddrFrom4(icmpSrc4)
			cfg.ICMPSource6 = netip.AddrFrom16(icmpSrc6)
		}
		if i&2 != 0 {
			cfg.LowestIPv6MTU, cfg.IPv6MTU, cfg.IPv4MTU = 1400, 1400, 576
		}
		t, err := New(cfg)
		if err != nil {
			tb.Fatal(err)
		}
		ts[i] = t
	}
	return ts
}

func seeds4(f *testing.F) {
	for _, b := range [][]byte{
		pkt(tcp4(f, app4, srv4, 64)), pkt(udp4(f, app4, srv4, 64)), pkt(echo4(f, app4, srv4, 32)),
		pkt(tcp4(f, app4, srv4, 1400)), pkt(udp4(f, app4, srv4, 2000)),
		pkt(icmp4Error(f, app4, srv4, 3, 3, [4]byte{}, innerUDP4(f, srv4, app4, 30))),
		pkt(icmp4Error(f, rtr4, srv4, 3, 4, [4]byte{0, 0, 5, 0}, innerUDP4(f, srv4, app4, 30))),
		pkt(icmp4Error(f, app4, srv4, 12, 0, [4]byte{9, 32}, append(innerUDP4(f, srv4, app4, 100), 0x20, 0, 0xdf, 0xff))),
	} {
		f.Add(b, uint8(0))
		f.Add(b, uint8(3))
	}
}

func seeds6(f *testing.F) {
	u := func() ([]byte, int) { return udp6(f, srv6, app6, 40) }
	withFrag := func() []byte {
		b, o := u()
		return pkt(insertExt(b, o, 44, []byte{0, 0, 0, 1, 0, 0, 0, 7}))
	}
	withRH := func() []byte {
		b, o := u()
		return pkt(insertExt(b, o, 43, extRouting1))
	}
	for _, b := range [][]byte{
		pkt(tcp6(f, srv6, app6, 64)), pkt(udp6(f, srv6, app6, 64)), pkt(echo6(f, srv6, app6, 128, 32)),
		pkt(tcp6(f, srv6, app6, 1400)), pkt(udp6(f, srv6, app6, 1200)), withFrag(), withRH(),
		pkt(icmp6Error(f, srv6, app6, 1, 4, 0, innerUDP6(f, app6, srv6, 30))),
		pkt(icmp6Error(f, rtr6, app6, 2, 0, 1400, innerUDP6(f, app6, srv6, 30))),
		pkt(icmp6Error(f, unm6, app6, 3, 0, 19<<24, append(innerUDP6(f, app6, srv6, 100), 0x20, 0, 0xdf, 0xff))),
	} {
		f.Add(b, uint8(0))
		f.Add(b, uint8(3))
	}
}

func pkt(buf []byte, off int) []byte { return append([]byte(nil), buf[off:]...) }

// inputValid4 reports whether an IPv4 input is a whole TCP, UDP (non-zero
// checksum) or ICMP datagram with a valid checksum.
func inputValid4(p []byte) bool {
	if len(p) < 20 || p[0]>>4 != 4 {
		return false
	}
	hl := int(p[0]&0xf) * 4
	tl := int(binary.BigEndian.Uint16(p[2:]))
	if hl < 20 || tl < hl || tl > len(p) {
		return false
	}
	p = p[:tl]
	if binary.BigEndian.Uint16(p[6:])&0x3fff != 0 {
		return false
	}
	up := p[hl:]
	switch p[9] {
	case 6:
		return len(up) >= 20 && refSum(refPseudo4(p[12:16], p[16:20], 6, len(up)), up) == 0xffff
	case 17:
		return len(up) >= 8 && binary.BigEndian.Uint16(up[6:]) != 0 && refSum(refPseudo4(p[12:16], p[16:20], 17, len(up)), up) == 0xffff
	case 1:
		return len(up) >= 8 && refSum(up) == 0xffff
	}
	return false
}

// inputValid6 is the IPv6 counterpart; it walks the extension headers
// itself.
func inputValid6(p []byte) bool {
	if len(p) < 40 || p[0]>>4 != 6 {
		return false
	}
	pl := int(binary.BigEndian.Uint16(p[4:]))
	if 40+pl > len(p) {
		return false
	}
	p = p[:40+pl]
	nh, pos := p[6], 40
	for nh == 0 || nh == 43 || nh == 60 || nh == 44 {
		if len(p)-pos < 8 {
			return false
		}
		if nh == 44 {
			if binary.BigEndian.Uint16(p[pos+2:])&0xfff9 != 0 {
				return false // a real fragment
			}
			nh, pos = p[pos], pos+8
			continue
		}
		nh, pos = p[pos], pos+(int(p[pos+1])+1)*8
		if pos > len(p) {
			return false
		}
	}
	up := p[pos:]
	switch nh {
	case 6, 17, 58:
		return len(up) >= 8 && refSum(refPseudo6(p[8:24], p[24:40], nh, len(up)), up) == 0xffff
	}
	return false
}

// checkOut6 checks one IPv6 output packet.
func checkOut6(t *testing.T, p []byte) {
	t.Helper()
	var ip layers.IPv6
	if err := ip.DecodeFromBytes(p, gopacket.NilDecodeFeedback); err != nil {
		t.Fatalf("IPv6 output does not parse: %v", err)
	}
	if ip.Version != 6 || int(ip.Length) != len(p)-40 {
		t.Fatalf("IPv6 payload length %d for %d bytes", ip.Length, len(p))
	}
	// Errors are recomputed and must verify whatever the input.
	if p[6] == 58 && len(p) > 40 && p[40] < 128 {
		if valid, _ := refL4Valid6(p); !valid {
			t.Fatal("ICMPv6 error output checksum invalid")
		}
	}
}

func checkOut4(t *testing.T, p []byte) {
	t.Helper()
	var ip layers.IPv4
	if err := ip.DecodeFromBytes(p, gopacket.NilDecodeFeedback); err != nil {
		t.Fatalf("IPv4 output does not parse: %v", err)
	}
	if int(ip.Length) != len(p) || refSum(p[:int(ip.IHL)*4]) != 0xffff {
		t.Fatalf("IPv4 total length %d for %d bytes or bad header checksum", ip.Length, len(p))
	}
}

func FuzzTranslate4to6(f *testing.F) {
	seeds4(f)
	ts := fuzzTranslators(f)
	f.Fuzz(func(t *testing.T, data []byte, mode uint8) {
		tr := ts[mode&3]
		valid := inputValid4(data)
		buf := make([]byte, Headroom+len(data))
		copy(buf[Headroom:], data)
		off := Headroom
		if mode&4 != 0 {
			buf, off = buf[Headroom:], 0
		}
		r := tr.Translate4to6(buf, off)
		switch r.Action {
		case Dropped:
			if r.Reason == 0 || len(r.Packets) != 0 {
				t.Fatalf("dropped with reason %v and %d packets", r.Reason, len(r.Packets))
			}
		case GeneratedError:
			if len(r.Packets) != 1 || r.Reason == 0 {
				t.Fatal("generated error without one packet and a reason")
			}
			checkOut4(t, r.Packets[0])
			if len(r.Packets[0]) > 576 || refSum(r.Packets[0][20:]) != 0xffff {
				t.Fatal("generated ICMPv4 error too long or bad checksum")
			}
		case Translated:
			if len(r.Packets) == 0 {
				t.Fatal("translated to nothing")
			}
			for _, p := range r.Packets {
				checkOut6(t, p)
			}
			if !valid {
				return
			}
			if len(r.Packets) == 1 {
				if v, ok := refL4Valid6(r.Packets[0]); ok && !v {
					t.Fatal("valid input, invalid output checksum")
				}
				return
			}
			var data6 []byte
			for _, p := range r.Packets {
				data6 = append(data6, p[48:]...)
			}
			p0 := r.Packets[0]
			if refSum(refPseudo6(p0[8:24], p0[24:40], p0[40], len(data6)), data6) != 0xffff {
				t.Fatal("valid input, invalid checksum over the fragments")
			}
		default:
			t.Fatalf("unknown action %v", r.Action)
		}
	})
}

func FuzzTranslate6to4(f *testing.F) {
	seeds6(f)
	ts := fuzzTranslators(f)
	f.Fuzz(func(t *testing.T, data []byte, mode uint8) {
		tr := ts[mode&3]
		valid := inputValid6(data)
		buf := append([]byte(nil), data...)
		r := tr.Translate6to4(buf, 0)
		switch r.Action {
		case Dropped:
			if r.Reason == 0 || len(r.Packets) != 0 {
				t.Fatalf("dropped with reason %v and %d packets", r.Reason, len(r.Packets))
			}
		case GeneratedError:
			if len(r.Packets) != 1 || r.Reason == 0 {
				t.Fatal("generated error without one packet and a reason")
			}
			checkOut6(t, r.Packets[0])
			if len(r.Packets[0]) > 1280 {
				t.Fatal("generated ICMPv6 error too long")
			}
		case Translated:
			if len(r.Packets) == 0 {
				t.Fatal("translated to nothing")
			}
			var data4 []byte
			for _, p := range r.Packets {
				checkOut4(t, p)
				data4 = append(data4, p[20:]...)
			}
			p0 := r.Packets[0]
			// Errors are recomputed and must verify whatever the input.
			if p0[9] == 1 && p0[20] != 0 && p0[20] != 8 && refSum(p0[20:]) != 0xffff {
				t.Fatal("translated ICMPv4 error with invalid checksum")
			}
			if !valid || binary.BigEndian.Uint16(p0[6:])&0x1fff != 0 {
				return
			}
			var ok bool
			switch p0[9] {
			case 1:
				ok = refSum(data4) == 0xffff
			case 6, 17:
				ok = refSum(refPseudo4(p0[12:16], p0[16:20], p0[9], len(data4)), data4) == 0xffff
			default:
				return
			}
			if !ok {
				t.Fatal("valid input, invalid output checksum")
			}
		default:
			t.Fatalf("unknown action %v", r.Action)
		}
	})
}
