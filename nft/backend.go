package nft

import (
	"net/netip"
	"time"
)

// Backend is how queue rules reach NFQUEUE.
type Backend uint8

const (
	BackendUnknown Backend = iota
	// BackendNative is nft's own queue expression (nft_queue).
	BackendNative
	// BackendCompat is the xtables NFQUEUE target, revision 3, through
	// nft_compat: for kernels built without nft_queue.
	BackendCompat
)

func (b Backend) String() string {
	switch b {
	case BackendNative:
		return "native"
	case BackendCompat:
		return "compat"
	}
	return "unknown"
}

// Sets is what the address pool's change events drive: the kernel sets of
// pool prefixes and of mapped IPv6 addresses. *Ruleset implements it.
type Sets interface {
	// AddPrefix puts a pool prefix into set pool4.
	AddPrefix(p netip.Prefix) error
	// RemovePrefix takes a pool prefix out of set pool4.
	RemovePrefix(p netip.Prefix) error
	// AddMapped puts a mapped IPv6 address into set mapped6, expiring after
	// ttl (0: never).
	AddMapped(a netip.Addr, ttl time.Duration) error
	// RefreshMapped restarts the element's timeout (adding it if it expired).
	RefreshMapped(a netip.Addr, ttl time.Duration) error
	// RemoveMapped takes the address out of set mapped6; absent is no error.
	RemoveMapped(a netip.Addr) error
}
