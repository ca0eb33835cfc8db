package translate

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// equalOnes reports whether two checksum values are the same ones'
// complement number (0x0000 and 0xffff both encode zero).
func equalOnes(a, b uint16) bool {
	norm := func(x uint16) uint16 {
		if x == 0xffff {
			return 0
		}
		return x
	}
	return norm(a) == norm(b)
}

func TestSumBytesMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := 0; n < 300; n++ {
		for k := 0; k < 20; k++ {
			b := make([]byte, n)
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			if k == 0 {
				for i := range b {
					b[i] = 0xff // worst case for carries
				}
			}
			init := uint16(rng.Uint32())
			got := sumBytes(b, init)
			want := refSum([]byte{byte(init >> 8), byte(init)}, b)
			if !equalOnes(got, want) {
				t.Fatalf("len %d: sumBytes = %#04x, reference %#04x", n, got, want)
			}
		}
	}
}

func TestUpdateChecksumMatchesRecompute(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 20000; i++ {
		n := 4 + 2*rng.IntN(100)
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		b[0], b[1] = 0, 0
		binary.BigEndian.PutUint16(b, ^refSum(b))
		// Change one aligned word elsewhere and update incrementally.
		w := 2 + 2*rng.IntN(n/2-1)
		old := binary.BigEndian.Uint16(b[w:])
		nw := uint16(rng.Uint32())
		if i%7 == 0 {
			nw = 0xffff
		}
		binary.BigEndian.PutUint16(b[w:], nw)
		inc := updateChecksum(binary.BigEndian.Uint16(b), old, nw)
		b[0], b[1] = 0, 0
		full := ^refSum(b)
		if !equalOnes(inc, full) {
			t.Fatalf("case %d: incremental %#04x, recomputed %#04x", i, inc, full)
		}
	}
}

// TestPseudoAdjustMatchesRecompute checks the IPv4⇄IPv6 pseudo-header
// helpers against full computation over random segments, and that an
// incorrect checksum stays incorrect by the same amount.
func TestPseudoAdjustMatchesRecompute(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var s4, d4 [4]byte
	var s6, d6 [16]byte
	for i := 0; i < 20000; i++ {
		for j := range s4 {
			s4[j], d4[j] = byte(rng.Uint32()), byte(rng.Uint32())
		}
		for j := range s6 {
			s6[j], d6[j] = byte(rng.Uint32()), byte(rng.Uint32())
		}
		proto := uint8(6)
		if i%2 == 1 {
			proto = 17
		}
		seg := make([]byte, 8+rng.IntN(200))
		for j := range seg {
			seg[j] = byte(rng.Uint32())
		}
		ck := 6 // the UDP checksum offset; any fixed even offset will do
		seg[ck], seg[ck+1] = 0, 0
		c4 := ^refSum(refPseudo4(s4[:], d4[:], proto, len(seg)), seg)
		c6 := ^refSum(refPseudo6(s6[:], d6[:], proto, len(seg)), seg)
		if got := pseudoAdjust4to6(c4, s4, d4, &s6, &d6); !equalOnes(got, c6) {
			t.Fatalf("4to6: %#04x want %#04x", got, c6)
		}
		if got := pseudoAdjust6to4(c6, &s6, &d6, s4, d4); !equalOnes(got, c4) {
			t.Fatalf("6to4: %#04x want %#04x", got, c4)
		}
		// An error of e in the input is an error of e in the output.
		e := uint16(1 + rng.IntN(0xfffe))
		bad := ^combine(^c4, e)
		got := pseudoAdjust4to6(bad, s4, d4, &s6, &d6)
		if !equalOnes(got, ^combine(^c6, e)) {
			t.Fatalf("error not preserved: %#04x", got)
		}
		if equalOnes(got, c6) {
			t.Fatalf("a wrong checksum became right")
		}
		if ps := pseudoHeaderSum6(&s6, &d6, proto, len(seg)); !equalOnes(ps, refSum(refPseudo6(s6[:], d6[:], proto, len(seg)))) {
			t.Fatalf("pseudoHeaderSum6 = %#04x", ps)
		}
		if ps := pseudoHeaderSum4(s4, d4, proto, len(seg)); !equalOnes(ps, refSum(refPseudo4(s4[:], d4[:], proto, len(seg)))) {
			t.Fatalf("pseudoHeaderSum4 = %#04x", ps)
		}
	}
}

func TestUDPChecksumOut(t *testing.T) {
	for _, tc := range []struct{ in, want uint16 }{{0, 0xffff}, {0xffff, 0xffff}, {1, 1}, {0x1234, 0x1234}} {
		if got := udpChecksumOut(tc.in); got != tc.want {
			t.Errorf("udpChecksumOut(%#x) = %#x, want %#x", tc.in, got, tc.want)
		}
	}
}
