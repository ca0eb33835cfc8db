package main

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"

	"github.com/miekg/dns"

	"github.com/bih-nfq/bih-nfq/enr"
	"github.com/bih-nfq/bih-nfq/internal/config"
	"github.com/bih-nfq/bih-nfq/internal/hostnet"
	"github.com/bih-nfq/bih-nfq/nft"
	"github.com/bih-nfq/bih-nfq/translate"
)

// routerSide is router mode's plan: which hosts behind which LAN links are
// translated, and the IPv6 address each gets.
type routerSide struct {
	plan  config.RouterPlan
	lan   hostnet.LAN
	hosts []netip.Prefix        // IPv4 prefixes of the hosts translated
	addrs []netip.Prefix        // their IPv6 addresses (the lan6 set, the routes)
	proxy []netip.Addr          // candidates for proxy NDP
	eam   *translate.EAMTable   // router.map, or nil
	pfx   *translate.HostPrefix // router.prefix, or nil
	mode  hostnet.ProxyMode
}

// planRouter reads the router section and the LAN links; every refusal
// names its key.
func planRouter(cfg config.Config, pools []netip.Prefix, log *slog.Logger) (*routerSide, error) {
	plan, err := cfg.Router.Plan()
	if err != nil {
		return nil, err
	}
	r := &routerSide{plan: plan}
	if r.lan, err = hostnet.ReadLAN(plan.LAN, hostnet.Options{Logger: log}); err != nil {
		return nil, fmt.Errorf("router.lan: %w", err)
	}
	r.hosts = plan.Hosts
	if len(r.hosts) == 0 {
		r.hosts = r.lan.Prefixes
		if len(r.hosts) == 0 {
			return nil, fmt.Errorf("router.hosts: the LAN links %v have no IPv4 address to take the hosts' prefixes from; list them", plan.LAN)
		}
	}
	for _, h := range r.hosts {
		for _, p := range pools {
			if h.Overlaps(p) {
				return nil, fmt.Errorf("router.hosts: %v overlaps destination pool %v", h, p)
			}
		}
	}
	if len(plan.Map) > 0 {
		if r.eam, err = translate.NewEAMTable(plan.Map); err != nil {
			return nil, fmt.Errorf("router.map: %w", err)
		}
		for _, e := range plan.Map {
			if !coveredBy(e.V4, r.hosts) {
				return nil, fmt.Errorf("router.map: %v lies outside the LAN hosts %v", e, r.hosts)
			}
			r.addrs = append(r.addrs, e.V6)
		}
	}
	if plan.Prefix.IsValid() {
		if r.pfx, err = translate.NewHostPrefix(plan.Prefix, r.hosts); err != nil {
			return nil, fmt.Errorf("router.prefix: %w", err)
		}
		if plan.Prefix.Bits() == 96 {
			// Only the hosts' slice of the prefix is routed here.
			for _, h := range r.hosts {
				a := r.pfx.Embed(h.Addr().As4())
				r.addrs = append(r.addrs, netip.PrefixFrom(netip.AddrFrom16(a), 96+h.Bits()))
			}
		} else {
			r.addrs = append(r.addrs, plan.Prefix)
		}
	}
	r.proxy = r.proxyCandidates(hostnet.MaxProxy + 1)
	switch cfg.Router.ProxyNDP {
	case config.ProxyNDPOn:
		r.mode = hostnet.ProxyOn
	case config.ProxyNDPOff:
		r.mode = hostnet.ProxyOff
	}
	return r, nil
}

func coveredBy(p netip.Prefix, by []netip.Prefix) bool {
	for _, b := range by {
		if b.Bits() <= p.Bits() && b.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

// proxyCandidates lists the hosts' IPv6 addresses, up to limit: every host
// address of the LAN prefixes (network and broadcast addresses left out) and
// the explicit single-address mappings.
func (r *routerSide) proxyCandidates(limit int) []netip.Addr {
	var out []netip.Addr
	if r.eam != nil {
		for _, e := range r.plan.Map {
			if e.V6.IsSingleIP() {
				out = append(out, e.V6.Addr())
			}
		}
	}
	if r.pfx == nil {
		return out
	}
	for _, h := range r.hosts {
		for a := h.Addr(); h.Contains(a); a = a.Next() {
			if h.Bits() < 31 && (a == h.Addr() || !h.Contains(a.Next())) {
				continue // the network and broadcast addresses
			}
			if len(out) >= limit {
				return out
			}
			if r.eam != nil {
				if _, ok := r.eam.To6(a.As4()); ok {
					continue // mapped explicitly
				}
			}
			out = append(out, netip.AddrFrom16(r.pfx.Embed(a.As4())))
		}
	}
	return out
}

func (r *routerSide) hostnet() *hostnet.Router {
	return &hostnet.Router{LAN: r.plan.LAN, Addrs: r.addrs, ProxyNDP: r.mode, Proxy: r.proxy}
}

func (r *routerSide) rules(q nft.Queue) *nft.Router {
	return &nft.Router{LAN: r.plan.LAN, Hosts: r.hosts, Addrs: r.addrs, Xlat: q}
}

// translateConfig is the router translators' configuration: the LAN hosts'
// mappings (explicit first, RFC 7757 §3.3), then the destinations' (the
// shared chain, so a SIGHUP reaches both modes); the LAN's MTU on the IPv4
// side.
func (r *routerSide) translateConfig(x translate.Config, dest translate.Mapper, h *hostnet.Host) (translate.Config, error) {
	var ms []translate.Mapper
	if r.eam != nil {
		ms = append(ms, r.eam)
	}
	if r.pfx != nil {
		ms = append(ms, r.pfx)
	}
	chain, err := translate.NewChain(append(ms, dest)...)
	if err != nil {
		return x, err
	}
	x.Mapper = chain
	x.IPv4MTU = r.lan.MTU
	if !x.ICMPSource6.IsValid() {
		x.ICMPSource6 = h.UplinkAddr()
	}
	return x, nil
}

// host6 is the IPv6 address of LAN host a, if it is one.
func (r *routerSide) host6(a netip.Addr) (netip.Addr, bool) {
	if !a.Is4() || !coveredBy(netip.PrefixFrom(a, 32), r.hosts) {
		return netip.Addr{}, false
	}
	if r.eam != nil {
		if b, ok := r.eam.To6(a.As4()); ok {
			return netip.AddrFrom16(b), true
		}
	}
	if r.pfx != nil {
		if b, ok := r.pfx.To6(a.As4()); ok {
			return netip.AddrFrom16(b), true
		}
	}
	return netip.Addr{}, false
}

// viaMapper sends the ENR's own lookups for a resolver the applications
// reach through translation (an IPv4 address that maps to IPv6) to that
// resolver's IPv6 address.
type viaMapper struct {
	up enr.Upstream
	m  translate.Mapper
}

func (v viaMapper) Exchange(ctx context.Context, q *dns.Msg, server netip.AddrPort) (*dns.Msg, error) {
	if a := server.Addr(); a.Is4() {
		if b, ok := v.m.To6(a.As4()); ok {
			server = netip.AddrPortFrom(netip.AddrFrom16(b), server.Port())
		}
	}
	return v.up.Exchange(ctx, q, server)
}

// answerMark is the mark of translated DNS answers: not the daemon's own,
// so the DNS rules see them.
func answerMark(mark uint32) uint32 {
	if mark == ^uint32(0) {
		return mark - 1
	}
	return mark + 1
}

// lanHosts counts the pool's mappings per LAN host (the requester of the
// lookup that made each).
func (d *daemon) lanHosts() []LANHostStatus {
	count := map[netip.Addr]int{}
	for _, m := range d.pool.Snapshot() {
		if _, ok := d.router.host6(m.Requester); ok {
			count[m.Requester]++
		}
	}
	limit := d.pool.RequesterLimit()
	out := make([]LANHostStatus, 0, len(count))
	for _, a := range slices.SortedFunc(maps.Keys(count), netip.Addr.Compare) {
		v6, _ := d.router.host6(a)
		out = append(out, LANHostStatus{IPv4: a.String(), IPv6: v6.String(), Mappings: count[a], Limit: limit})
	}
	return out
}
