package translate

import (
	"encoding/binary"
	"math/bits"
)

// Internet checksum arithmetic (RFC 1071) and incremental update (RFC 1624).
//
// A "sum" here is the folded 16-bit ones' complement sum of some bytes; the
// checksum field itself is the complement of the sum over everything it
// covers. Sums of several pieces combine with combine as long as every piece
// but the last has an even length (all our pieces do: addresses, headers).

// sumBytes returns the ones' complement sum of b, continuing from initial.
// It adds 64-bit big-endian words with carry: the ones' complement sum is
// independent of word size as long as words are multiples of 16 bits, and
// this is several times faster than a 16-bit loop.
func sumBytes(b []byte, initial uint16) uint16 {
	s := uint64(initial)
	var c uint64
	for len(b) >= 32 {
		s, c = bits.Add64(s, binary.BigEndian.Uint64(b), c)
		s, c = bits.Add64(s, binary.BigEndian.Uint64(b[8:]), c)
		s, c = bits.Add64(s, binary.BigEndian.Uint64(b[16:]), c)
		s, c = bits.Add64(s, binary.BigEndian.Uint64(b[24:]), c)
		b = b[32:]
	}
	for len(b) >= 8 {
		s, c = bits.Add64(s, binary.BigEndian.Uint64(b), c)
		b = b[8:]
	}
	if len(b) >= 4 {
		s, c = bits.Add64(s, uint64(binary.BigEndian.Uint32(b)), c)
		b = b[4:]
	}
	if len(b) >= 2 {
		s, c = bits.Add64(s, uint64(binary.BigEndian.Uint16(b)), c)
		b = b[2:]
	}
	if len(b) == 1 {
		// An odd trailing byte is the high byte of a zero-padded word.
		s, c = bits.Add64(s, uint64(b[0])<<8, c)
	}
	s, c = bits.Add64(s, 0, c)
	s += c // cannot carry again: s was at most 2^64-2 after adding c once
	return fold64(s)
}

// Sum is sumBytes for the packet path outside this package (completing
// checksums the kernel left to offload, cutting super-packets).
func Sum(b []byte, initial uint16) uint16 { return sumBytes(b, initial) }

// fold64 folds a 64-bit ones' complement accumulator to 16 bits.
func fold64(s uint64) uint16 {
	s = (s >> 32) + (s & 0xffffffff)
	s = (s >> 32) + (s & 0xffffffff)
	s = (s >> 16) + (s & 0xffff)
	s = (s >> 16) + (s & 0xffff)
	return uint16(s)
}

// combine adds two ones' complement sums.
func combine(a, b uint16) uint16 {
	s := uint32(a) + uint32(b)
	return uint16(s>>16 + s&0xffff)
}

// checksumOf returns the checksum field value for bytes b whose checksum
// field is zero, continuing from the sum initial (e.g. a pseudo-header).
func checksumOf(b []byte, initial uint16) uint16 {
	return ^sumBytes(b, initial)
}

// checksumValid reports whether b (with its checksum field in place) plus
// initial sums to all ones, i.e. the checksum verifies (RFC 1071).
func checksumValid(b []byte, initial uint16) bool {
	return sumBytes(b, initial) == 0xffff
}

// updateChecksum returns checksum field hc updated for covered data whose sum
// changed from oldSum to newSum: RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m').
// Because it never looks at the rest of the data, an incorrect hc stays
// incorrect by the same amount, and the cost does not depend on packet size.
func updateChecksum(hc, oldSum, newSum uint16) uint16 {
	return ^combine(combine(^hc, ^oldSum), newSum)
}

// pseudoHeaderSum4 returns the sum of the IPv4 pseudo-header (RFC 793 §3.1,
// RFC 768) for upper-layer protocol proto and length n.
func pseudoHeaderSum4(src, dst [4]byte, proto uint8, n int) uint16 {
	s := uint64(binary.BigEndian.Uint32(src[:])) + uint64(binary.BigEndian.Uint32(dst[:]))
	s += uint64(proto) + uint64(n&0xffff)
	return fold64(s)
}

// pseudoHeaderSum6 returns the sum of the IPv6 pseudo-header (RFC 8200 §8.1)
// for next header nh and upper-layer length n.
func pseudoHeaderSum6(src, dst *[16]byte, nh uint8, n int) uint16 {
	return fold64(addrSum6(src, dst) + uint64(nh) + uint64(uint32(n)))
}

// addrSum4 returns the unfolded sum of two IPv4 addresses.
func addrSum4(src, dst [4]byte) uint64 {
	return uint64(binary.BigEndian.Uint32(src[:])) + uint64(binary.BigEndian.Uint32(dst[:]))
}

// addrSum6 returns the unfolded sum of two IPv6 addresses (32-bit halves, so
// the 64-bit accumulator cannot overflow).
func addrSum6(src, dst *[16]byte) uint64 {
	var s uint64
	for i := 0; i < 16; i += 4 {
		s += uint64(binary.BigEndian.Uint32(src[i:])) + uint64(binary.BigEndian.Uint32(dst[i:]))
	}
	return s
}

// pseudoAdjust4to6 updates a TCP or UDP checksum for the change of
// pseudo-header from IPv4 to IPv6 when the upper-layer length and protocol do
// not change (RFC 7915 §4.5): the length and protocol words contribute the
// same to both pseudo-headers (RFC 8200 §8.1 uses a 32-bit length and a
// 32-bit next header word, whose sums equal the IPv4 16-bit ones), so only
// the address sums differ.
func pseudoAdjust4to6(hc uint16, src4, dst4 [4]byte, src6, dst6 *[16]byte) uint16 {
	return updateChecksum(hc, fold64(addrSum4(src4, dst4)), fold64(addrSum6(src6, dst6)))
}

// pseudoAdjust6to4 is the inverse of pseudoAdjust4to6 (RFC 7915 §5.5).
func pseudoAdjust6to4(hc uint16, src6, dst6 *[16]byte, src4, dst4 [4]byte) uint16 {
	return updateChecksum(hc, fold64(addrSum6(src6, dst6)), fold64(addrSum4(src4, dst4)))
}

// udpChecksumOut maps a computed UDP checksum of zero to all ones: zero means
// "no checksum" in IPv4 UDP and is forbidden in IPv6 UDP (RFC 768, RFC 8200
// §8.1); both encode the same ones' complement value.
func udpChecksumOut(c uint16) uint16 {
	if c == 0 {
		return 0xffff
	}
	return c
}
