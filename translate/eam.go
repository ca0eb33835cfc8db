package translate

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
)

// EAMEntry is one row of the Explicit Address Mapping Table (RFC 7757 §3.1):
// an IPv4 prefix and the IPv6 prefix it maps to.
type EAMEntry struct {
	V4 netip.Prefix
	V6 netip.Prefix
}

// String renders the entry as "V4PFX=V6PFX", the form ParseEAMEntry reads.
func (e EAMEntry) String() string { return e.V4.String() + "=" + e.V6.String() }

// ParseEAMEntry parses "V4PFX=V6PFX", e.g. "198.51.100.0/24=2001:db8:1::/120".
// A prefix length may be omitted; it is then 32 for IPv4 and 128 for IPv6
// (RFC 7757 §3.2). The entry is checked as NewEAMTable checks it.
func ParseEAMEntry(s string) (EAMEntry, error) {
	l, r, ok := strings.Cut(s, "=")
	if !ok {
		return EAMEntry{}, fmt.Errorf("explicit address mapping %q: want V4PFX=V6PFX", s)
	}
	v4, err := parsePrefixOrAddr(strings.TrimSpace(l))
	if err != nil {
		return EAMEntry{}, fmt.Errorf("explicit address mapping %q: IPv4 side: %w", s, err)
	}
	v6, err := parsePrefixOrAddr(strings.TrimSpace(r))
	if err != nil {
		return EAMEntry{}, fmt.Errorf("explicit address mapping %q: IPv6 side: %w", s, err)
	}
	e := EAMEntry{V4: v4, V6: v6}
	if err := e.check(); err != nil {
		return EAMEntry{}, err
	}
	return e, nil
}

// parsePrefixOrAddr reads a prefix, or an address as a full-length prefix
// (RFC 7757 §3.2).
func parsePrefixOrAddr(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		return netip.ParsePrefix(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// check validates one entry on its own (RFC 7757 §3.2).
func (e EAMEntry) check() error {
	switch {
	case !e.V4.IsValid() || !e.V4.Addr().Is4():
		return fmt.Errorf("explicit address mapping %s: %v is not an IPv4 prefix", e, e.V4)
	case !e.V6.IsValid() || !e.V6.Addr().Is6():
		return fmt.Errorf("explicit address mapping %s: %v is not an IPv6 prefix", e, e.V6)
	case e.V4.Addr().Zone() != "" || e.V6.Addr().Zone() != "":
		return fmt.Errorf("explicit address mapping %s: zones are not allowed", e)
	case e.V4.Masked() != e.V4:
		return fmt.Errorf("explicit address mapping %s: IPv4 prefix %v has host bits set (want %v)", e, e.V4, e.V4.Masked())
	case e.V6.Masked() != e.V6:
		return fmt.Errorf("explicit address mapping %s: IPv6 prefix %v has host bits set (want %v)", e, e.V6, e.V6.Masked())
	}
	// RFC 7757 §3.2: the IPv4 prefix must have an identical or smaller
	// number of suffix bits than the IPv6 prefix, or IPv4 addresses would
	// collapse onto one IPv6 address.
	if s4, s6 := 32-e.V4.Bits(), 128-e.V6.Bits(); s4 > s6 {
		return fmt.Errorf("explicit address mapping %s: suffix length mismatch: IPv4 side has %d suffix bits, IPv6 side only %d (RFC 7757 §3.2)", e, s4, s6)
	}
	return nil
}

// EAMTable is an Explicit Address Mapping Table (RFC 7757). It is immutable
// once built, so any number of goroutines may look up concurrently; a reload
// builds a new table and swaps it in. Lookups do not allocate.
//
// Entries may not overlap on either side: overlapping prefixes would make
// the mapping depend on the direction (an address mapped 4→6 by one entry
// could come back 6→4 through another), so the longest-prefix match of
// RFC 7757 §3.3 is the single entry covering the address.
type EAMTable struct {
	entries []EAMEntry
	by4     []eamRow // sorted by IPv4 prefix start
	by6     []eamRow // sorted by IPv6 prefix start
}

type eamRow struct {
	v4    uint32
	bits4 uint8
	v6    addr128
	bits6 uint8
}

// NewEAMTable checks entries and builds a table (RFC 7757 §3.1, §3.2). It
// rejects invalid prefixes, host bits set, an IPv4 suffix longer than the
// IPv6 suffix and entries whose IPv4 or IPv6 prefixes overlap.
func NewEAMTable(entries []EAMEntry) (*EAMTable, error) {
	t := &EAMTable{entries: append([]EAMEntry(nil), entries...)}
	var errs []error
	for _, e := range entries {
		if err := e.check(); err != nil {
			errs = append(errs, err)
			continue
		}
		a4 := e.V4.Addr().As4()
		r := eamRow{
			v4:    addr4Uint(a4),
			bits4: uint8(e.V4.Bits()),
			v6:    addr128From16(e.V6.Addr().As16()),
			bits6: uint8(e.V6.Bits()),
		}
		t.by4 = append(t.by4, r)
		t.by6 = append(t.by6, r)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	sort.Slice(t.by4, func(i, j int) bool {
		a, b := t.by4[i], t.by4[j]
		if a.v4 != b.v4 {
			return a.v4 < b.v4
		}
		return a.bits4 < b.bits4
	})
	sort.Slice(t.by6, func(i, j int) bool {
		a, b := t.by6[i], t.by6[j]
		if c := a.v6.cmp(b.v6); c != 0 {
			return c < 0
		}
		return a.bits6 < b.bits6
	})
	// Prefixes are nested or disjoint, so once sorted by start any overlap
	// shows between neighbours.
	for i := 1; i < len(t.by4); i++ {
		a, b := t.by4[i-1], t.by4[i]
		if b.v4&prefixMask4(a.bits4) == a.v4 {
			errs = append(errs, fmt.Errorf("explicit address mappings %s and %s: IPv4 prefixes overlap", a.entry(), b.entry()))
		}
	}
	for i := 1; i < len(t.by6); i++ {
		a, b := t.by6[i-1], t.by6[i]
		if b.v6.and(prefixMask6(a.bits6)) == a.v6 {
			errs = append(errs, fmt.Errorf("explicit address mappings %s and %s: IPv6 prefixes overlap", a.entry(), b.entry()))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return t, nil
}

// ParseEAMTable parses each "V4PFX=V6PFX" string and builds a table.
func ParseEAMTable(specs []string) (*EAMTable, error) {
	entries := make([]EAMEntry, 0, len(specs))
	for _, s := range specs {
		e, err := ParseEAMEntry(s)
		if err != nil {
			return nil, err
		}
		entries = append(entries, e)
	}
	return NewEAMTable(entries)
}

func (r eamRow) entry() EAMEntry {
	var a4 [4]byte
	a4[0], a4[1], a4[2], a4[3] = byte(r.v4>>24), byte(r.v4>>16), byte(r.v4>>8), byte(r.v4)
	return EAMEntry{
		V4: netip.PrefixFrom(netip.AddrFrom4(a4), int(r.bits4)),
		V6: netip.PrefixFrom(netip.AddrFrom16(r.v6.bytes()), int(r.bits6)),
	}
}

// Entries returns a copy of the table's entries in configuration order.
func (t *EAMTable) Entries() []EAMEntry { return append([]EAMEntry(nil), t.entries...) }

// Len returns the number of entries.
func (t *EAMTable) Len() int { return len(t.entries) }

// To6 translates an IPv4 address by RFC 7757 §3.3.1: the suffix bits after
// the matching IPv4 prefix follow the IPv6 prefix, padded with zeros.
func (t *EAMTable) To6(a [4]byte) ([16]byte, bool) {
	x := addr4Uint(a)
	// Last row whose start is <= x: the only one that can contain x.
	lo, hi := 0, len(t.by4)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if t.by4[m].v4 <= x {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == 0 {
		return [16]byte{}, false
	}
	r := &t.by4[lo-1]
	if x&prefixMask4(r.bits4) != r.v4 {
		return [16]byte{}, false
	}
	n := uint(32 - r.bits4) // suffix bits carried over
	if n == 0 {
		return r.v6.bytes(), true
	}
	suffix := addr128{lo: uint64(x & ^prefixMask4(r.bits4))}
	return r.v6.or(suffix.shl(128 - uint(r.bits6) - n)).bytes(), true
}

// To4 translates an IPv6 address by RFC 7757 §3.3.2: the bits after the
// matching IPv6 prefix follow the IPv4 prefix, and bits beyond 32 are
// discarded.
func (t *EAMTable) To4(a [16]byte) ([4]byte, bool) {
	x := addr128From16(a)
	lo, hi := 0, len(t.by6)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if t.by6[m].v6.cmp(x) <= 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == 0 {
		return [4]byte{}, false
	}
	r := &t.by6[lo-1]
	if x.and(prefixMask6(r.bits6)) != r.v6 {
		return [4]byte{}, false
	}
	v4 := r.v4
	if n := uint(32 - r.bits4); n > 0 {
		// The n bits right after the IPv6 prefix.
		v4 |= uint32(x.shl(uint(r.bits6)).shr(128 - n).lo)
	}
	return [4]byte{byte(v4 >> 24), byte(v4 >> 16), byte(v4 >> 8), byte(v4)}, true
}

func addr4Uint(a [4]byte) uint32 {
	return uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
}

// prefixMask4 returns a netmask of bits leading ones.
func prefixMask4(bits uint8) uint32 {
	if bits == 0 {
		return 0
	}
	return ^uint32(0) << (32 - bits)
}

// addr128 is a 128-bit unsigned integer, most significant half first, for
// prefix arithmetic on IPv6 addresses without allocation.
type addr128 struct{ hi, lo uint64 }

func addr128From16(b [16]byte) addr128 {
	var x addr128
	for i := 0; i < 8; i++ {
		x.hi = x.hi<<8 | uint64(b[i])
		x.lo = x.lo<<8 | uint64(b[8+i])
	}
	return x
}

func (x addr128) bytes() [16]byte {
	var b [16]byte
	for i := 0; i < 8; i++ {
		b[i] = byte(x.hi >> (56 - 8*i))
		b[8+i] = byte(x.lo >> (56 - 8*i))
	}
	return b
}

func (x addr128) and(y addr128) addr128 { return addr128{x.hi & y.hi, x.lo & y.lo} }
func (x addr128) or(y addr128) addr128  { return addr128{x.hi | y.hi, x.lo | y.lo} }

func (x addr128) cmp(y addr128) int {
	switch {
	case x.hi < y.hi:
		return -1
	case x.hi > y.hi:
		return 1
	case x.lo < y.lo:
		return -1
	case x.lo > y.lo:
		return 1
	}
	return 0
}

// shl shifts left by n (0..128) bits.
func (x addr128) shl(n uint) addr128 {
	switch {
	case n >= 128:
		return addr128{}
	case n >= 64:
		return addr128{hi: x.lo << (n - 64)}
	case n == 0:
		return x
	}
	return addr128{hi: x.hi<<n | x.lo>>(64-n), lo: x.lo << n}
}

// shr shifts right by n (0..128) bits.
func (x addr128) shr(n uint) addr128 {
	switch {
	case n >= 128:
		return addr128{}
	case n >= 64:
		return addr128{lo: x.hi >> (n - 64)}
	case n == 0:
		return x
	}
	return addr128{hi: x.hi >> n, lo: x.lo>>n | x.hi<<(64-n)}
}

// prefixMask6 returns a netmask of bits leading ones.
func prefixMask6(bits uint8) addr128 {
	return addr128{^uint64(0), ^uint64(0)}.shl(128 - uint(bits))
}
