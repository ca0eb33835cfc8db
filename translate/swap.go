package translate

import (
	"errors"
	"sync/atomic"
)

// SwapMapper is a Mapper whose current member can be replaced while
// translators use it, so a configuration reload changes the static mappings
// (RFC 7757 EAM entries, the RFC 6052 prefix) without rebuilding the
// translators or disturbing flows that other members (the dynamic pool) keep
// mapping. Lookups load one atomic pointer and call the current member: they
// are safe for concurrent use with Store and allocate nothing when the member
// does not. A packet translated during a Store sees either the old or the new
// member for each lookup, never a mix inside one call.
//
// The zero value maps nothing until Store is called.
type SwapMapper struct {
	cur atomic.Pointer[swapMember]
}

// swapMember boxes the current Mapper (an interface cannot be stored in an
// atomic.Pointer directly) with its ErrorSourceMapper side, resolved once.
type swapMember struct {
	m   Mapper
	err ErrorSourceMapper // nil when m does not implement it
}

// NewSwapMapper returns a SwapMapper currently delegating to m.
func NewSwapMapper(m Mapper) (*SwapMapper, error) {
	s := new(SwapMapper)
	if err := s.Store(m); err != nil {
		return nil, err
	}
	return s, nil
}

// Store makes m the mapper every later lookup uses. m must be non-nil.
func (s *SwapMapper) Store(m Mapper) error {
	if sm, ok := m.(*SwapMapper); chainNilMember(m) || (ok && sm == nil) {
		return errors.New("swap address mapper: mapper is nil")
	} else if ok && sm == s {
		// Lookups would recurse forever.
		return errors.New("swap address mapper: cannot delegate to itself")
	}
	e, _ := m.(ErrorSourceMapper) // optional interface
	s.cur.Store(&swapMember{m: m, err: e})
	return nil
}

// Load returns the current mapper, nil before the first Store.
func (s *SwapMapper) Load() Mapper {
	if c := s.cur.Load(); c != nil {
		return c.m
	}
	return nil
}

// To6 returns the current mapper's mapping of a.
func (s *SwapMapper) To6(a [4]byte) ([16]byte, bool) {
	c := s.cur.Load()
	if c == nil {
		return [16]byte{}, false
	}
	return c.m.To6(a)
}

// To4 returns the current mapper's mapping of a.
func (s *SwapMapper) To4(a [16]byte) ([4]byte, bool) {
	c := s.cur.Load()
	if c == nil {
		return [4]byte{}, false
	}
	return c.m.To4(a)
}

// ErrorSourceTo4 passes the request on to the current mapper when it
// implements ErrorSourceMapper (RFC 6535 §2.4 case 3); otherwise it reports
// false and the translator falls back to its RFC 6791 source.
func (s *SwapMapper) ErrorSourceTo4(a [16]byte) ([4]byte, bool) {
	c := s.cur.Load()
	if c == nil || c.err == nil {
		return [4]byte{}, false
	}
	return c.err.ErrorSourceTo4(a)
}

var (
	_ Mapper            = (*SwapMapper)(nil)
	_ ErrorSourceMapper = (*SwapMapper)(nil)
)
