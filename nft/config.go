// Package nft owns bih-nfq's nftables ruleset: it builds it, installs and
// removes it atomically (one netlink batch), renders it as nft text, keeps the
// dynamic sets in step with the address pool, and probes whether the kernel
// has the native queue expression or only the xtables NFQUEUE target.
package nft

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
)

// Defaults (RFC 6535 §4.4 for the pools).
const (
	DefaultTable   = "bih_nfq"
	DefaultMark    = 0x62696800 // "bih\0": SO_MARK of the daemon's own sockets
	DefaultXlatNum = 0
	DefaultDNSNum  = 32
	// DefaultRouterNum is the first router-mode translation queue.
	DefaultRouterNum = 16
	// DefaultUDPGSONum is the queue that gets UDP super-packets handed on
	// by the translation queues (a verdict, no rule), cut by the kernel.
	DefaultUDPGSONum = 33

	// Set names the daemon needs, in rules: internal and external mode alike.
	SetPool4   = "pool4"   // ip table: interval set of destination pool prefixes
	SetMapped6 = "mapped6" // ip6 table: mapped IPv6 addresses, element timeouts

	// Tag prefixes every rule's comment (UserData): it is how a table left
	// behind by a crash is recognised as ours.
	Tag = "bih-nfq:"
)

// Chain names inside each table.
const (
	chainPrerouting = "prerouting"
	chainOutput     = "output"
	chainInput      = "input"
	chainForward    = "forward"
	chainForwardDNS = "forward-dns"

	// Router-mode set names.
	SetLAN4 = "lan4" // ip table: IPv4 prefixes of the LAN hosts translated
	SetLAN6 = "lan6" // ip6 table: the LAN hosts' IPv6 addresses (RFC 6052 prefix, explicit maps)
)

// Queue is one NFQUEUE target: Count queues from Num, spread by CPU when
// CPUFanout is set and by flow hash otherwise; Bypass accepts packets while
// no program listens (fail-open).
type Queue struct {
	Num       uint16
	Count     uint16 // 0 means 1
	Bypass    bool
	CPUFanout bool
}

func (q Queue) count() uint16 {
	if q.Count == 0 {
		return 1
	}
	return q.Count
}

// last is the highest queue number used.
func (q Queue) last() uint32 { return uint32(q.Num) + uint32(q.count()) - 1 }

// Config is the ruleset's settings; the daemon maps its YAML onto it.
type Config struct {
	Table4 string // name of the ip table (default bih_nfq)
	Table6 string // name of the ip6 table (default bih_nfq)
	// Mark is the SO_MARK of the daemon's sockets; packets carrying it are
	// accepted before any queue rule.
	Mark uint32
	// Pools are the IPv4 destination pool prefixes initially in set pool4.
	Pools []netip.Prefix
	// Source6 is the IPv6 source address of translated traffic; what arrives
	// for it (except Neighbor Discovery) goes to the translation queue.
	Source6 netip.Addr
	Xlat    Queue // translation queue (both directions)
	DNS     Queue // DNS queue (queries out, responses in)
	// NoHost leaves out the host-mode rules (router-only mode): the
	// machine's own traffic passes untouched, and Source6 and Xlat are
	// not used.
	NoHost bool
	// NoHostDNS leaves out the host-mode DNS rules: the machine's programs
	// ask the ENR's stub resolver instead of being intercepted.
	NoHostDNS bool
	// Router, when set, adds the router-mode rules for the hosts behind
	// the LAN links.
	Router *Router
}

// Router is the router-mode part of the ruleset: IPv4 packets forwarded from
// LAN hosts to the pools, IPv6 packets forwarded to the LAN hosts' IPv6
// addresses, and the LAN hosts' DNS (to the router's own resolver or through
// it).
type Router struct {
	LAN   []string       // LAN link names
	Hosts []netip.Prefix // IPv4 prefixes of the hosts translated (set lan4)
	Addrs []netip.Prefix // their IPv6 addresses (set lan6)
	Xlat  Queue          // router translation queues (both directions)
}

// DefaultConfig returns the defaults: primary pool, one translation queue
// (fail-closed), one DNS queue (fail-open). Source6 has no default here: the
// host set-up derives it.
func DefaultConfig() Config {
	return Config{
		Table4: DefaultTable,
		Table6: DefaultTable,
		Mark:   DefaultMark,
		Pools:  []netip.Prefix{netip.MustParsePrefix("10.170.160.0/20")},
		Xlat:   Queue{Num: DefaultXlatNum, Count: 1},
		DNS:    Queue{Num: DefaultDNSNum, Count: 1, Bypass: true},
	}
}

var nameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,31}$`)

// Validate checks the settings; errors name the field.
func (c *Config) Validate() error {
	var errs []error
	for _, n := range []struct{ field, v string }{{"Table4", c.Table4}, {"Table6", c.Table6}} {
		if !nameRE.MatchString(n.v) {
			errs = append(errs, fmt.Errorf("%s: %q is not a valid table name", n.field, n.v))
		}
	}
	if c.Mark == 0 {
		errs = append(errs, errors.New("Mark: must not be 0 (unmarked packets would be accepted)"))
	}
	if len(c.Pools) == 0 {
		errs = append(errs, errors.New("Pools: at least one prefix is needed"))
	}
	for _, p := range c.Pools {
		if !p.IsValid() || !p.Addr().Is4() || p.Masked() != p {
			errs = append(errs, fmt.Errorf("Pools: %v is not an IPv4 network prefix", p))
		}
	}
	if c.NoHost && c.Router == nil {
		errs = append(errs, errors.New("NoHost: neither host nor router rules"))
	}
	if !c.NoHost && (!c.Source6.IsValid() || !c.Source6.Is6() || c.Source6.Is4In6() || c.Source6.IsUnspecified()) {
		errs = append(errs, fmt.Errorf("Source6: %v is not an IPv6 address", c.Source6))
	}
	type named struct {
		field string
		q     Queue
	}
	queues := []named{{"DNS", c.DNS}}
	if !c.NoHost {
		queues = append(queues, named{"Xlat", c.Xlat})
	}
	if r := c.Router; r != nil {
		queues = append(queues, named{"Router.Xlat", r.Xlat})
		if len(r.LAN) == 0 {
			errs = append(errs, errors.New("Router.LAN: at least one LAN link is needed"))
		}
		for _, n := range r.LAN {
			if len(n) == 0 || len(n) > 15 || strings.ContainsAny(n, "/ \t\"") {
				errs = append(errs, fmt.Errorf("Router.LAN: %q is not a link name", n))
			}
		}
		if len(r.Hosts) == 0 {
			errs = append(errs, errors.New("Router.Hosts: at least one IPv4 prefix is needed"))
		}
		for _, p := range r.Hosts {
			if !p.IsValid() || !p.Addr().Is4() || p.Masked() != p {
				errs = append(errs, fmt.Errorf("Router.Hosts: %v is not an IPv4 network prefix", p))
			}
		}
		if len(r.Addrs) == 0 {
			errs = append(errs, errors.New("Router.Addrs: at least one IPv6 prefix is needed"))
		}
		for _, p := range r.Addrs {
			if !p.IsValid() || !p.Addr().Is6() || p.Addr().Is4In6() || p.Masked() != p {
				errs = append(errs, fmt.Errorf("Router.Addrs: %v is not an IPv6 network prefix", p))
			}
		}
	}
	for i, a := range queues {
		if a.q.last() > 0xffff {
			errs = append(errs, fmt.Errorf("%s: queues %d+%d exceed 65535", a.field, a.q.Num, a.q.count()))
			continue
		}
		for _, b := range queues[:i] {
			if b.q.last() <= 0xffff && uint32(a.q.Num) <= b.q.last() && uint32(b.q.Num) <= a.q.last() {
				errs = append(errs, fmt.Errorf("%s, %s: queue ranges overlap", b.field, a.field))
			}
		}
	}
	return errors.Join(errs...)
}
