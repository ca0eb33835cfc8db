// Package hostnet prepares the host for translation: a TUN link nobody reads
// that carries the host's IPv4 source address and routes the destination
// pools (so IPv4 packets to the pools reach the OUTPUT hook), a dedicated IPv6
// source address for translated traffic on the uplink, pool-conflict
// detection, and a watch for native IPv4 appearing (RFC 6535 §4.5). Linux
// code lives in _linux.go files; this file is the portable part.
package hostnet

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// Defaults (RFC 6535 §4.4).
const (
	DefaultLinkName = "bih0"
	// Translation adds 20 bytes (IPv6 header 40 - IPv4 header 20).
	headerGrowth = 20
	minIPv6MTU   = 1280
)

// DefaultSource4 is the host's IPv4 source address for applications.
var DefaultSource4 = netip.MustParsePrefix("172.21.112.1/32")

// Config is the host set-up's settings; the daemon maps its YAML onto it.
type Config struct {
	LinkName string         // TUN link (default bih0)
	Source4  netip.Prefix   // host IPv4 source address (default 172.21.112.1/32)
	Pools    []netip.Prefix // destination pools routed into the link
	Uplink   string         // IPv6 uplink; "" = the link of the IPv6 default route
	// Source6 is the IPv6 source for translated traffic; zero = derived from
	// the machine id inside the uplink's /64.
	Source6       netip.Addr
	MachineIDPath string // default /etc/machine-id
	// NoHost leaves out the host-mode addresses (router-only mode): no
	// Source4 on the link, no Source6 on the uplink.
	NoHost bool
	// Router, when set, prepares the router-mode side.
	Router *Router
}

// Router is the router-mode set-up: the LAN links, and the LAN hosts' IPv6
// addresses, routed into the TUN link so the kernel forwards packets for
// them to the forward hook (where they are queued).
type Router struct {
	LAN   []string
	Addrs []netip.Prefix
	// ProxyNDP answers Neighbor Solicitations on the uplink for the
	// addresses in Proxy: ProxyAuto does so when Addrs lie in an on-link
	// prefix of the uplink.
	ProxyNDP ProxyMode
	Proxy    []netip.Addr
}

// ProxyMode says when proxy NDP is set up.
type ProxyMode uint8

const (
	ProxyAuto ProxyMode = iota
	ProxyOn
	ProxyOff
)

// MaxProxy bounds the proxy NDP entries: a larger set of hosts wants its
// prefix routed to the router instead.
const MaxProxy = 4096

// WithDefaults fills the zero fields.
func (c Config) WithDefaults() Config {
	if c.LinkName == "" {
		c.LinkName = DefaultLinkName
	}
	if !c.Source4.IsValid() {
		c.Source4 = DefaultSource4
	}
	if c.MachineIDPath == "" {
		c.MachineIDPath = "/etc/machine-id"
	}
	return c
}

// Validate checks the settings; errors name the field.
func (c *Config) Validate() error {
	var errs []error
	if n := len(c.LinkName); n == 0 || n > 15 {
		errs = append(errs, fmt.Errorf("LinkName: %q is not a valid link name", c.LinkName))
	}
	if !c.NoHost && (!c.Source4.IsValid() || !c.Source4.Addr().Is4()) {
		errs = append(errs, fmt.Errorf("Source4: %v is not an IPv4 address", c.Source4))
	}
	if c.NoHost && c.Router == nil {
		errs = append(errs, errors.New("NoHost: neither host nor router set-up"))
	}
	if r := c.Router; r != nil {
		if len(r.LAN) == 0 {
			errs = append(errs, errors.New("Router.LAN: no LAN link"))
		}
		for _, p := range r.Addrs {
			if !p.IsValid() || !p.Addr().Is6() || p.Addr().Is4In6() || p.Masked() != p {
				errs = append(errs, fmt.Errorf("Router.Addrs: %v is not an IPv6 network prefix", p))
			}
		}
	}
	for _, p := range c.Pools {
		if !p.IsValid() || !p.Addr().Is4() || p.Masked() != p {
			errs = append(errs, fmt.Errorf("Pools: %v is not an IPv4 network prefix", p))
		} else if !c.NoHost && p.Contains(c.Source4.Addr()) {
			errs = append(errs, fmt.Errorf("Pools: %v contains Source4 %v", p, c.Source4.Addr()))
		}
	}
	if c.Source6.IsValid() && (!c.Source6.Is6() || c.Source6.Is4In6() || !c.Source6.IsGlobalUnicast()) {
		errs = append(errs, fmt.Errorf("Source6: %v is not a global IPv6 address", c.Source6))
	}
	return errors.Join(errs...)
}

// LinkMTU is the TUN link's MTU for an IPv6 path MTU: an IPv4 packet that
// fits it still fits once translated.
func LinkMTU(mtu6 int) int {
	return max(mtu6, minIPv6MTU) - headerGrowth
}

// DeriveSource6 is the host's stable translation source address inside
// prefix (a /64): the interface identifier is a hash of the machine id, so
// it survives restarts and differs between hosts. Identifiers reserved by
// RFC 5453 (all zero: subnet-router anycast; fdff:ffff:ffff:ff80-ffff:
// reserved anycast) are skipped by hashing again.
func DeriveSource6(prefix netip.Prefix, machineID []byte) (netip.Addr, error) {
	if !prefix.Addr().Is6() || prefix.Addr().Is4In6() || prefix.Bits() < 0 || prefix.Bits() > 64 {
		return netip.Addr{}, fmt.Errorf("derive IPv6 source: %v is not an IPv6 prefix of /64 or shorter", prefix)
	}
	if len(machineID) == 0 {
		return netip.Addr{}, errors.New("derive IPv6 source: empty machine id")
	}
	// A fixed label keeps this hash unrelated to other uses of the id.
	h := sha256.Sum256(append([]byte("bih-nfq translation source\x00"), machineID...))
	for {
		iid := binary.BigEndian.Uint64(h[:8])
		if iid != 0 && iid < 0xfdffffffffffff80 {
			a := prefix.Masked().Addr().As16()
			binary.BigEndian.PutUint64(a[8:], iid)
			return netip.AddrFrom16(a), nil
		}
		h = sha256.Sum256(h[:])
	}
}

// Conflict is a host IPv4 route or address overlapping a pool prefix.
type Conflict struct {
	Pool netip.Prefix
	With netip.Prefix // the overlapping route or address
	Link string       // its link
	What string       // "route" or "address"
}

func (c Conflict) String() string {
	return fmt.Sprintf("pool %v overlaps %s %v on %s", c.Pool, c.What, c.With, c.Link)
}

// ChoosePool returns the first candidate pool no conflict names (RFC 6535
// §4.4: the secondary pool when the primary is in use on the host).
func ChoosePool(candidates []netip.Prefix, conflicts []Conflict) (netip.Prefix, error) {
	for _, p := range candidates {
		free := true
		for _, c := range conflicts {
			if c.Pool == p {
				free = false
				break
			}
		}
		if free {
			return p, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("every destination pool overlaps the host's IPv4 networks: %v", conflicts)
}

// overlapping lists the conflicts of pools with one host prefix. A default
// route is native IPv4 connectivity, not a conflict.
func overlapping(pools []netip.Prefix, with netip.Prefix, link, what string) []Conflict {
	var cs []Conflict
	if with.Bits() == 0 {
		return nil
	}
	for _, p := range pools {
		if p.Overlaps(with) {
			cs = append(cs, Conflict{Pool: p, With: with, Link: link, What: what})
		}
	}
	return cs
}

// EventKind says what changed.
type EventKind uint8

const (
	LinkChanged EventKind = iota + 1
	AddrChanged
	RouteChanged
)

func (k EventKind) String() string {
	switch k {
	case LinkChanged:
		return "link"
	case AddrChanged:
		return "address"
	case RouteChanged:
		return "route"
	}
	return "unknown"
}

// Native4 is the host's own IPv4 connectivity, outside our link.
type Native4 struct {
	DefaultRoute bool           // an IPv4 default route exists
	Addrs        []netip.Prefix // global IPv4 addresses on other links
}

// Present reports native IPv4 connectivity (RFC 6535 §4.5).
func (n Native4) Present() bool { return n.DefaultRoute || len(n.Addrs) > 0 }

// Event is one change seen by Watch, with the state after it.
type Event struct {
	Kind    EventKind
	Native4 Native4
}
