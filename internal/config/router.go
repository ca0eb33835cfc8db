package config

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/bih-nfq/bih-nfq/translate"
)

// Daemon modes (the top-level mode key).
const (
	// RunHost is RFC 6535 inside this machine: its own IPv4-only programs.
	RunHost = "host"
	// RunRouter is the bump for the IPv4-only hosts behind the LAN links.
	RunRouter = "router"
	// RunBoth is both at once, sharing the pool, the ENR and the DNS queue.
	RunBoth = "host+router"
)

// Proxy NDP settings.
const (
	ProxyNDPAuto = "auto"
	ProxyNDPOn   = "on"
	ProxyNDPOff  = "off"
)

// Router is the router: section, read in modes router and host+router.
type Router struct {
	// LAN names the links the IPv4-only hosts are on.
	LAN []string `yaml:"lan"`
	// Hosts are the IPv4 prefixes of the hosts translated; empty: the
	// prefixes of the LAN links' IPv4 addresses. Others are never translated.
	Hosts []string `yaml:"hosts"`
	// Prefix is the RFC 6052 prefix that gives each host its IPv6 address
	// (routed to this router, or on-link on the uplink with proxy NDP).
	Prefix string `yaml:"prefix"`
	// Map lists explicit "V4=V6" mappings of hosts (RFC 7757), tried
	// before Prefix.
	Map []string `yaml:"map"`
	// ProxyNDP answers Neighbor Solicitations for the hosts' IPv6 addresses
	// on the uplink: auto (when they are on-link there), on or off.
	ProxyNDP string `yaml:"proxy-ndp"`
}

func defaultRouter() Router { return Router{ProxyNDP: ProxyNDPAuto} }

// RouterPlan is the parsed router section.
type RouterPlan struct {
	LAN    []string
	Hosts  []netip.Prefix // empty: take them from the LAN links
	Prefix netip.Prefix   // invalid: none
	Map    []translate.EAMEntry
}

// HostMode reports whether the machine's own programs are translated.
func (c *Config) HostMode() bool { return c.Mode == RunHost || c.Mode == RunBoth }

// RouterMode reports whether the LAN hosts are translated.
func (c *Config) RouterMode() bool { return c.Mode == RunRouter || c.Mode == RunBoth }

// Plan parses the section.
func (r *Router) Plan() (RouterPlan, error) {
	var p RouterPlan
	if len(r.LAN) == 0 {
		return p, keyErr("router.lan", "at least one LAN link is needed in router mode")
	}
	for i, n := range r.LAN {
		if len(n) == 0 || len(n) > 15 || strings.ContainsAny(n, "/ \t\"") {
			return p, keyErr(fmt.Sprintf("router.lan[%d]", i), "%q is not a valid link name", n)
		}
	}
	p.LAN = r.LAN
	for i, s := range r.Hosts {
		pfx, err := parsePrefix4(s)
		if err != nil {
			return p, keyErr(fmt.Sprintf("router.hosts[%d]", i), "%v", err)
		}
		p.Hosts = append(p.Hosts, pfx)
	}
	if r.Prefix != "" {
		pfx, err := netip.ParsePrefix(r.Prefix)
		if err != nil {
			return p, keyErr("router.prefix", "%q is not an IPv6 prefix", r.Prefix)
		}
		// Checked as the translator will use it; the hosts do not matter yet.
		if _, err := translate.NewHostPrefix(pfx, []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}); err != nil {
			return p, keyErr("router.prefix", "%v", oneLine(err))
		}
		p.Prefix = pfx
	}
	for i, s := range r.Map {
		e, err := translate.ParseEAMEntry(s)
		if err != nil {
			return p, keyErr(fmt.Sprintf("router.map[%d]", i), "%v", oneLine(err))
		}
		p.Map = append(p.Map, e)
	}
	if len(p.Map) > 0 {
		if _, err := translate.NewEAMTable(p.Map); err != nil {
			return p, keyErr("router.map", "%v", oneLine(err))
		}
	}
	if !p.Prefix.IsValid() && len(p.Map) == 0 {
		return p, keyErr("router.prefix", "router mode needs a prefix or explicit mappings (router.map) for the hosts' IPv6 addresses")
	}
	return p, nil
}

func parsePrefix4(s string) (netip.Prefix, error) {
	pfx, err := netip.ParsePrefix(s)
	if err != nil || !pfx.Addr().Is4() {
		a, aerr := netip.ParseAddr(s)
		if aerr != nil || !a.Is4() {
			return netip.Prefix{}, fmt.Errorf("%q is not an IPv4 prefix", s)
		}
		return netip.PrefixFrom(a, 32), nil
	}
	if pfx.Masked() != pfx {
		return netip.Prefix{}, fmt.Errorf("%q has host bits set (did you mean %v?)", s, pfx.Masked())
	}
	return pfx, nil
}

func (c *Config) validateMode() error {
	switch c.Mode {
	case RunHost, RunRouter, RunBoth:
	default:
		return keyErr("mode", "%q: want %s, %s or %s", c.Mode, RunHost, RunRouter, RunBoth)
	}
	switch c.Router.ProxyNDP {
	case ProxyNDPAuto, ProxyNDPOn, ProxyNDPOff:
	default:
		return keyErr("router.proxy-ndp", "%q: want auto, on or off", c.Router.ProxyNDP)
	}
	if c.Queue.Router < 0 || c.Queue.Router > 65535 {
		return keyErr("queue.router", "%d is not a queue number", c.Queue.Router)
	}
	if !c.RouterMode() {
		return nil
	}
	if _, err := c.Router.Plan(); err != nil {
		return err
	}
	n := max(c.Queue.Count, 1)
	overlaps := func(a, an, b, bn int) bool { return a < b+bn && b < a+an }
	if overlaps(c.Queue.Router, n, c.Queue.DNS, 1) {
		return keyErr("queue.router", "%d: the router queues overlap queue.dns %d", c.Queue.Router, c.Queue.DNS)
	}
	if c.HostMode() && overlaps(c.Queue.Router, n, c.Queue.Translation, n) {
		return keyErr("queue.router", "%d: the router queues overlap the translation queues from %d", c.Queue.Router, c.Queue.Translation)
	}
	return nil
}
