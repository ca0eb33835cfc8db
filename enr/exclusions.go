package enr

import (
	"fmt"
	"net/netip"
	"slices"
)

// exclusions are the exclusion sets of RFC 6535 §2.3.1. A published value
// is never modified: SetExclusions replaces it whole, so a decision that
// loaded it sees one consistent pair of sets.
type exclusions struct {
	a    []netip.Prefix // real IPv4 ranges treated as absent from A answers
	aaaa []netip.Prefix // IPv6 ranges never mapped (RFC 6147 §5.1.4 analogue)
}

// checkExclusions checks that every prefix is of the family its set is for.
func checkExclusions(a, aaaa []netip.Prefix) error {
	for _, p := range a {
		if !p.IsValid() || !p.Addr().Is4() {
			return fmt.Errorf("exclude A %v: not an IPv4 prefix", p)
		}
	}
	for _, p := range aaaa {
		if !p.IsValid() || !p.Addr().Is6() {
			return fmt.Errorf("exclude AAAA %v: not an IPv6 prefix", p)
		}
	}
	return nil
}

// SetExclusions replaces the exclusion sets (Config.ExcludeA and
// Config.ExcludeAAAA; RFC 6535 §2.3.1) while the ENR runs, as a
// configuration reload does. Answers built after it returns use the new
// sets; one built meanwhile may apply either. Pool addresses stay excluded from A
// answers whatever a holds. On error nothing changes. The slices are copied.
//
// Cached AAAA/PTR lookups stay valid: they are upstream data, and the sets
// are applied when an answer is built.
func (e *ENR) SetExclusions(a, aaaa []netip.Prefix) error {
	if err := checkExclusions(a, aaaa); err != nil {
		return fmt.Errorf("set exclusions: %w", err)
	}
	e.rules.excl.Store(&exclusions{a: slices.Clone(a), aaaa: slices.Clone(aaaa)})
	e.packed.flush()
	return nil
}

// Exclusions returns copies of the exclusion sets in use.
func (e *ENR) Exclusions() (a, aaaa []netip.Prefix) {
	x := e.rules.excl.Load()
	return slices.Clone(x.a), slices.Clone(x.aaaa)
}
