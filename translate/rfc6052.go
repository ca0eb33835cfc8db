package translate

import (
	"fmt"
	"net/netip"
)

// RFC6052WellKnownPrefix is the RFC 6052 §2.1 Well-Known Prefix 64:ff9b::/96.
var RFC6052WellKnownPrefix = netip.MustParsePrefix("64:ff9b::/96")

// RFC6052Prefix maps addresses with an RFC 6052 IPv4-embedded IPv6 prefix
// (/32, /40, /48, /56, /64 or /96). It is immutable, safe for concurrent use
// and does not allocate.
type RFC6052Prefix struct {
	prefix [16]byte
	bits   int
	pos    [4]uint8 // byte offsets of the IPv4 octets (RFC 6052 §2.2, Figure 1)
	wkp    bool
}

// rfc6052Octets gives, per prefix length, where each IPv4 octet goes; octet 8
// (bits 64-71, "u") is always skipped (RFC 6052 §2.2).
var rfc6052Octets = map[int][4]uint8{
	32: {4, 5, 6, 7},
	40: {5, 6, 7, 9},
	48: {6, 7, 9, 10},
	56: {7, 9, 10, 11},
	64: {9, 10, 11, 12},
	96: {12, 13, 14, 15},
}

// NewRFC6052Prefix checks p (RFC 6052 §2.2: length 32, 40, 48, 56, 64 or 96;
// no bits set beyond the length; bits 64-71 zero) and returns its mapper.
func NewRFC6052Prefix(p netip.Prefix) (*RFC6052Prefix, error) {
	if !p.IsValid() || !p.Addr().Is6() {
		return nil, fmt.Errorf("RFC 6052 prefix %v: not an IPv6 prefix", p)
	}
	if p.Addr().Is4In6() {
		return nil, fmt.Errorf("RFC 6052 prefix %v: IPv4-mapped addresses cannot embed IPv4 addresses", p)
	}
	if p.Addr().Zone() != "" {
		return nil, fmt.Errorf("RFC 6052 prefix %v: zones are not allowed", p)
	}
	pos, ok := rfc6052Octets[p.Bits()]
	if !ok {
		return nil, fmt.Errorf("RFC 6052 prefix %v: length must be 32, 40, 48, 56, 64 or 96 (RFC 6052 §2.2)", p)
	}
	if p.Masked() != p {
		return nil, fmt.Errorf("RFC 6052 prefix %v: bits set beyond the prefix length (want %v)", p, p.Masked())
	}
	b := p.Addr().As16()
	if b[8] != 0 {
		return nil, fmt.Errorf("RFC 6052 prefix %v: bits 64-71 (the u octet) must be zero (RFC 6052 §2.2)", p)
	}
	return &RFC6052Prefix{prefix: b, bits: p.Bits(), pos: pos, wkp: p == RFC6052WellKnownPrefix}, nil
}

// ParseRFC6052Prefix parses and checks a prefix such as "64:ff9b::/96".
func ParseRFC6052Prefix(s string) (*RFC6052Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return nil, fmt.Errorf("RFC 6052 prefix: %w", err)
	}
	return NewRFC6052Prefix(p)
}

// Prefix returns the configured prefix.
func (p *RFC6052Prefix) Prefix() netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom16(p.prefix), p.bits)
}

// Embed builds the IPv4-embedded IPv6 address of a (RFC 6052 §2.3): the
// prefix, the IPv4 address around the null u octet, a zero suffix.
func (p *RFC6052Prefix) Embed(a [4]byte) [16]byte {
	b := p.prefix
	for i, o := range p.pos {
		b[o] = a[i]
	}
	return b
}

// Extract recovers the IPv4 address from an IPv4-embedded IPv6 address
// (RFC 6052 §2.3). It fails if a is not under the prefix or its u octet is
// not zero (§2.2 "MUST be set to zero"); suffix bits are ignored, as §2.2
// asks of receivers.
func (p *RFC6052Prefix) Extract(a [16]byte) ([4]byte, bool) {
	n := p.bits / 8
	for i := 0; i < n; i++ {
		if a[i] != p.prefix[i] {
			return [4]byte{}, false
		}
	}
	if a[8] != 0 {
		return [4]byte{}, false
	}
	return [4]byte{a[p.pos[0]], a[p.pos[1]], a[p.pos[2]], a[p.pos[3]]}, true
}

// To6 is Embed, refusing what RFC 6052 §3.1 forbids: the Well-Known Prefix
// must not represent non-global IPv4 addresses.
func (p *RFC6052Prefix) To6(a [4]byte) ([16]byte, bool) {
	if p.wkp && wkpNonGlobal4(a) {
		return [16]byte{}, false
	}
	return p.Embed(a), true
}

// To4 is Extract, refusing what RFC 6052 §3.1 forbids: an address made of
// the Well-Known Prefix and a non-global IPv4 address.
func (p *RFC6052Prefix) To4(a [16]byte) ([4]byte, bool) {
	v4, ok := p.Extract(a)
	if !ok || p.wkp && wkpNonGlobal4(v4) {
		return [4]byte{}, false
	}
	return v4, true
}

// wkpNonGlobal4 reports whether a is non-global in the sense of RFC 6052 §3.1:
// RFC 1918 space or listed in RFC 5735 §3.
func wkpNonGlobal4(a [4]byte) bool {
	x := addr4Uint(a)
	for _, r := range wkpNonGlobalRanges {
		if x&prefixMask4(r.bits) == r.start {
			return true
		}
	}
	return false
}

var wkpNonGlobalRanges = [...]struct {
	start uint32
	bits  uint8
}{
	{0x00000000, 8},  // 0.0.0.0/8 "this" network
	{0x0a000000, 8},  // 10.0.0.0/8 RFC 1918
	{0x7f000000, 8},  // 127.0.0.0/8 loopback
	{0xa9fe0000, 16}, // 169.254.0.0/16 link local
	{0xac100000, 12}, // 172.16.0.0/12 RFC 1918
	{0xc0000000, 24}, // 192.0.0.0/24 IETF protocol assignments
	{0xc0000200, 24}, // 192.0.2.0/24 TEST-NET-1
	{0xc0586300, 24}, // 192.88.99.0/24 6to4 relay anycast
	{0xc0a80000, 16}, // 192.168.0.0/16 RFC 1918
	{0xc6120000, 15}, // 198.18.0.0/15 benchmarking
	{0xc6336400, 24}, // 198.51.100.0/24 TEST-NET-2
	{0xcb007100, 24}, // 203.0.113.0/24 TEST-NET-3
	{0xe0000000, 4},  // 224.0.0.0/4 multicast
	{0xf0000000, 4},  // 240.0.0.0/4 reserved, incl. broadcast
}
