package translate

import (
	"errors"
	"fmt"
)

// Chain is a Mapper that asks its members in order and uses the first that
// maps the address. NewChain(eamTable, rfc6052Prefix) gives the order of
// RFC 7757 §3.3: the EAM table first, the RFC 6052 prefix for addresses no
// entry covers. A Chain is immutable; it is safe for concurrent use and
// allocation-free when its members are.
type Chain struct {
	members []Mapper
	errSrc  []ErrorSourceMapper
}

// NewChain returns a Chain of the given mappers, tried in order. Every member
// must be non-nil.
func NewChain(members ...Mapper) (*Chain, error) {
	if len(members) == 0 {
		return nil, errors.New("address mapper chain: no mappers")
	}
	c := &Chain{members: append([]Mapper(nil), members...)}
	for i, m := range members {
		if chainNilMember(m) {
			return nil, fmt.Errorf("address mapper chain: member %d is nil", i)
		}
		if e, ok := m.(ErrorSourceMapper); ok {
			c.errSrc = append(c.errSrc, e)
		}
	}
	return c, nil
}

// chainNilMember catches nil interfaces and the typed nils of this package's
// mappers, which would panic on first use.
func chainNilMember(m Mapper) bool {
	switch v := m.(type) {
	case nil:
		return true
	case *EAMTable:
		return v == nil
	case *RFC6052Prefix:
		return v == nil
	case *HostPrefix:
		return v == nil
	case *Chain:
		return v == nil
	}
	return false
}

// To6 returns the first member's mapping of a.
func (c *Chain) To6(a [4]byte) ([16]byte, bool) {
	for _, m := range c.members {
		if b, ok := m.To6(a); ok {
			return b, true
		}
	}
	return [16]byte{}, false
}

// To4 returns the first member's mapping of a.
func (c *Chain) To4(a [16]byte) ([4]byte, bool) {
	for _, m := range c.members {
		if b, ok := m.To4(a); ok {
			return b, true
		}
	}
	return [4]byte{}, false
}

// ErrorSourceTo4 passes the request on to the members that implement
// ErrorSourceMapper, in order (RFC 6535 §2.4 case 3). With none it reports
// false, and the translator falls back to its RFC 6791 source.
func (c *Chain) ErrorSourceTo4(a [16]byte) ([4]byte, bool) {
	for _, m := range c.errSrc {
		if b, ok := m.ErrorSourceTo4(a); ok {
			return b, true
		}
	}
	return [4]byte{}, false
}

var (
	_ Mapper            = (*Chain)(nil)
	_ ErrorSourceMapper = (*Chain)(nil)
	_ Mapper            = (*EAMTable)(nil)
	_ Mapper            = (*RFC6052Prefix)(nil)
)
