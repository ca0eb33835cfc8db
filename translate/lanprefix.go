package translate

import (
	"errors"
	"fmt"
	"net/netip"
)

// HostPrefix gives the IPv4 hosts behind a router IPv6 addresses of their
// own: an RFC 6052 prefix (§2.2) routed to the router embeds each host's
// address, and only hosts inside Hosts are mapped, either way. It is
// immutable, safe for concurrent use and does not allocate.
type HostPrefix struct {
	p     *RFC6052Prefix
	hosts []hostRange
}

type hostRange struct{ base, mask uint32 }

// NewHostPrefix returns the mapper of the hosts inside hosts (IPv4 prefixes)
// into prefix. The Well-Known Prefix is refused: RFC 6052 §3.1 forbids it for
// the private addresses LAN hosts have.
func NewHostPrefix(prefix netip.Prefix, hosts []netip.Prefix) (*HostPrefix, error) {
	if prefix == RFC6052WellKnownPrefix {
		return nil, fmt.Errorf("host prefix %v: the Well-Known Prefix cannot carry LAN hosts' addresses (RFC 6052 §3.1)", prefix)
	}
	p, err := NewRFC6052Prefix(prefix)
	if err != nil {
		return nil, err
	}
	if len(hosts) == 0 {
		return nil, errors.New("host prefix: no IPv4 host prefixes")
	}
	h := &HostPrefix{p: p}
	for _, hp := range hosts {
		if !hp.IsValid() || !hp.Addr().Is4() || hp.Masked() != hp {
			return nil, fmt.Errorf("host prefix: %v is not an IPv4 network prefix", hp)
		}
		a := hp.Addr().As4()
		h.hosts = append(h.hosts, hostRange{base: addr4Uint(a), mask: prefixMask4(uint8(hp.Bits()))})
	}
	return h, nil
}

// Prefix returns the RFC 6052 prefix.
func (h *HostPrefix) Prefix() netip.Prefix { return h.p.Prefix() }

// Embed builds the IPv6 address of a under the prefix (RFC 6052 §2.3),
// host or not.
func (h *HostPrefix) Embed(a [4]byte) [16]byte { return h.p.Embed(a) }

// Covers reports whether a is one of the hosts.
func (h *HostPrefix) Covers(a [4]byte) bool {
	v := addr4Uint(a)
	for _, r := range h.hosts {
		if v&r.mask == r.base {
			return true
		}
	}
	return false
}

// To6 embeds a host's address (RFC 6052 §2.3).
func (h *HostPrefix) To6(a [4]byte) ([16]byte, bool) {
	if !h.Covers(a) {
		return [16]byte{}, false
	}
	return h.p.Embed(a), true
}

// To4 extracts a host's address; addresses of non-hosts do not map.
func (h *HostPrefix) To4(a [16]byte) ([4]byte, bool) {
	v4, ok := h.p.Extract(a)
	if !ok || !h.Covers(v4) {
		return [4]byte{}, false
	}
	return v4, true
}
