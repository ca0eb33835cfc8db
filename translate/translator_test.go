package translate

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
)

func TestNewValidates(t *testing.T) {
	m := newMapper()
	tests := []struct {
		name string
		cfg  Config
		want string // substring of the error; "" means success
	}{
		{"defaults", Config{Mapper: m}, ""},
		{"no mapper", Config{}, "Mapper is required"},
		{"lowest below 1280", Config{Mapper: m, LowestIPv6MTU: 1279}, "LowestIPv6MTU"},
		{"lowest negative", Config{Mapper: m, LowestIPv6MTU: -1}, "LowestIPv6MTU"},
		{"lowest above ipv6 mtu", Config{Mapper: m, LowestIPv6MTU: 1400, IPv6MTU: 1300}, "exceeds IPv6MTU"},
		{"ipv6 mtu small", Config{Mapper: m, IPv6MTU: 1000}, "IPv6MTU"},
		{"ipv4 mtu small", Config{Mapper: m, IPv4MTU: 67}, "IPv4MTU"},
		{"ipv4 mtu big", Config{Mapper: m, IPv4MTU: 70000}, "IPv4MTU"},
		{"udp mode", Config{Mapper: m, UDPZeroChecksum: 7}, "UDPZeroChecksum"},
		{"icmp source4 is v6", Config{Mapper: m, ICMPSource4: netip.MustParseAddr("2001:db8::1")}, "ICMPSource4"},
		{"icmp source4 loopback", Config{Mapper: m, ICMPSource4: netip.MustParseAddr("127.0.0.1")}, "ICMPSource4"},
		{"icmp source6 is v4", Config{Mapper: m, ICMPSource6: netip.MustParseAddr("192.0.2.1")}, "ICMPSource6"},
		{"icmp source6 mapped v4", Config{Mapper: m, ICMPSource6: netip.MustParseAddr("::ffff:192.0.2.1")}, "ICMPSource6"},
		{"icmp source6 multicast", Config{Mapper: m, ICMPSource6: netip.MustParseAddr("ff02::1")}, "ICMPSource6"},
		{"all set", Config{Mapper: m, LowestIPv6MTU: 1400, IPv6MTU: 9000, IPv4MTU: 68,
			ICMPSource4: netip.MustParseAddr("192.0.0.8"), ICMPSource6: netip.MustParseAddr("2001:db8::8")}, ""},
	}
	for _, tc := range tests {
		tr, err := New(tc.cfg)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want one mentioning %q", tc.name, err, tc.want)
		case tc.want != "" && tr != nil:
			t.Errorf("%s: translator returned with an error", tc.name)
		}
	}
	tr, err := New(Config{Mapper: m})
	if err != nil {
		t.Fatal(err)
	}
	if c := tr.Config(); c.LowestIPv6MTU != 1280 || c.IPv6MTU != 1500 || c.IPv4MTU != 1500 {
		t.Fatalf("defaults not filled: %+v", c)
	}
}

// TestRoundTrip translates random packets 4→6→4 and checks that
// everything the translation does not own comes back unchanged, including
// deliberately wrong checksums.
func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	tr := newTranslator(t, nil)
	for i := 0; i < 3000; i++ {
		n := rng.IntN(1400)
		var buf []byte
		var off int
		switch i % 3 {
		case 0:
			buf, off = tcp4(t, app4, srv4, n)
		case 1:
			buf, off = udp4(t, app4, srv4, n)
		case 2:
			buf, off = echo4(t, app4, srv4, n)
		}
		p := buf[off:]
		for j := 28; j < len(p); j++ {
			p[j] = byte(rng.Uint32())
		}
		if rng.IntN(2) == 0 {
			binary.BigEndian.PutUint16(p[6:], 0) // DF clear below 1280 too
			fix4(p)
		}
		orig := append([]byte(nil), p...)
		r := tr.Translate4to6(buf, off)
		if r.Action != Translated {
			t.Fatalf("case %d: %v %v", i, r.Action, r.Reason)
		}
		var out6 [][]byte
		for _, q := range r.Packets {
			out6 = append(out6, append([]byte(nil), q...))
		}
		if len(out6) > 1 && (len(orig)+20 <= 1280 || binary.BigEndian.Uint16(orig[6:])&0x4000 != 0) {
			t.Fatalf("case %d: %d-byte packet fragmented", i, len(orig))
		}
		if len(out6) > 1 && orig[9] == 1 {
			continue // fragmented ICMPv6 is not translated (§5.1.1, checksum)
		}
		// Translate back, reassembling IPv4 fragments.
		var back []byte
		for k, q := range out6 {
			b6 := make([]byte, Headroom+len(q))
			copy(b6[Headroom:], q)
			f4 := mustOne(t, tr.Translate6to4(b6, Headroom), Translated)
			if len(out6) > 1 {
				if be16(f4[4:]) != be16(orig[4:]) || int(be16(f4[6:])&0x1fff)*8 != max(len(back)-20, 0) ||
					(be16(f4[6:])&0x2000 != 0) != (k < len(out6)-1) {
					t.Fatalf("case %d: fragment %d header %x", i, k, f4[:20])
				}
			}
			if k == 0 {
				back = append(back, f4...)
			} else {
				back = append(back, f4[20:]...)
			}
		}
		if len(back) != len(orig) || !bytes.Equal(back[12:20], orig[12:20]) || back[9] != orig[9] || back[1] != orig[1] || back[8] != orig[8] {
			t.Fatalf("case %d: IPv4 header did not survive:\n%x\n%x", i, back[:20], orig[:20])
		}
		ck := map[uint8]int{6: 16, 17: 6, 1: 2}[orig[9]]
		for j := 20; j < len(orig); j++ {
			if j == 20+ck || j == 21+ck {
				continue
			}
			if back[j] != orig[j] {
				t.Fatalf("case %d: byte %d changed", i, j)
			}
		}
		if !equalOnes(be16(back[20+ck:]), be16(orig[20+ck:])) {
			t.Fatalf("case %d: checksum %#04x came back as %#04x", i, be16(orig[20+ck:]), be16(back[20+ck:]))
		}
	}
}
