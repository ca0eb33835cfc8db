package hostnet

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// LAN is what router mode reads of its LAN links.
type LAN struct {
	Prefixes []netip.Prefix // IPv4 networks of the links' addresses
	Addrs    []netip.Addr   // the router's own IPv4 addresses there
	MTU      int            // the smallest link MTU
}

// ReadLAN reads the LAN links' IPv4 networks and MTU; a missing link is an
// error naming it.
func ReadLAN(names []string, opt Options) (LAN, error) {
	var lan LAN
	nl, err := opt.handle()
	if err != nil {
		return lan, err
	}
	defer nl.Close()
	for _, name := range names {
		l, err := nl.LinkByName(name)
		if err != nil {
			return lan, fmt.Errorf("LAN link %s: %w", name, err)
		}
		if mtu := l.Attrs().MTU; lan.MTU == 0 || mtu < lan.MTU {
			lan.MTU = mtu
		}
		addrs, err := nl.AddrList(l, netlink.FAMILY_V4)
		if err != nil {
			return lan, fmt.Errorf("LAN link %s: addresses: %w", name, err)
		}
		for _, a := range addrs {
			if p, ok := prefixOf(a.IPNet); ok {
				lan.Addrs = append(lan.Addrs, p.Addr())
				lan.Prefixes = append(lan.Prefixes, p.Masked())
			}
		}
	}
	return lan, nil
}

// sysctl reads /proc/sys/net/... inside the namespace.
func (h *Host) sysctl(key string) (string, error) {
	var v string
	err := inNS(h.opt.NetNS, func() error {
		b, err := os.ReadFile(filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/")))
		v = strings.TrimSpace(string(b))
		return err
	})
	return v, err
}

func (h *Host) setSysctl(key, v string) error {
	return inNS(h.opt.NetNS, func() error {
		return os.WriteFile(filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/")), []byte(v), 0)
	})
}

// checkRouter refuses to start a router that does not forward: the kernel's
// forward path is where LAN packets are queued, and it is what decrements
// TTL and hop limit and sends Time Exceeded (RFC 7915 §4.1, §5.1 as a
// router).
func (h *Host) checkRouter() error {
	var errs []error
	for _, name := range h.cfg.Router.LAN {
		if _, err := h.nl.LinkByName(name); err != nil {
			errs = append(errs, fmt.Errorf("LAN link %s: %w", name, err))
		}
	}
	for _, c := range []struct{ key, what string }{
		{"net.ipv4.ip_forward", "IPv4 forwarding"},
		{"net.ipv6.conf." + h.Uplink() + ".forwarding", "IPv6 forwarding on the uplink"},
	} {
		v, err := h.sysctl(c.key)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("read %s: %w", c.key, err))
		case v != "1":
			errs = append(errs, fmt.Errorf("%s is off: router mode needs sysctl %s=1", c.what, c.key))
		}
	}
	return errors.Join(errs...)
}

// setupRouter routes the LAN hosts' IPv6 addresses into the TUN link and,
// where they are on-link on the uplink, answers Neighbor Discovery for them
// (proxy NDP).
func (h *Host) setupRouter(log *slog.Logger) error {
	r := h.cfg.Router
	for _, p := range r.Addrs {
		rt := h.lanRoute(p)
		if err := h.nl.RouteReplace(rt); err != nil {
			return fmt.Errorf("route %v via %s: %w", p, h.cfg.LinkName, err)
		}
		h.track(func() error {
			if err := h.nl.RouteDel(rt); err != nil {
				return fmt.Errorf("remove route %v: %w", p, err)
			}
			return nil
		})
	}
	onLink, err := h.onUplink(r.Addrs)
	if err != nil {
		return err
	}
	proxy := r.ProxyNDP == ProxyOn || r.ProxyNDP == ProxyAuto && onLink
	if proxy && len(r.Proxy) > MaxProxy {
		return fmt.Errorf("%d LAN host addresses for proxy NDP on %s, at most %d: route their prefix to the router instead",
			len(r.Proxy), h.Uplink(), MaxProxy)
	}
	var keep []netip.Addr
	if proxy {
		keep = r.Proxy
	}
	if err := h.pruneProxy(keep, log); err != nil {
		return err
	}
	if proxy && len(r.Proxy) > 0 {
		if err := h.setupProxy(log); err != nil {
			return err
		}
	}
	if h.uplinkAddr, err = h.globalAddr6(); err != nil {
		return err
	}
	log.Info("router set up", "lan", r.LAN, "addrs", r.Addrs, "uplink", h.Uplink(),
		"proxy_ndp", h.proxied, "on_link", onLink)
	return nil
}

// lanRoute carries the MTU of the uplink, locked: the kernel's forward path
// would otherwise take the TUN link's smaller MTU and send Packet Too Big
// for packets that fit once translated.
func (h *Host) lanRoute(p netip.Prefix) *netlink.Route {
	return &netlink.Route{
		LinkIndex: h.link.Attrs().Index,
		Dst:       ipNet(p),
		MTU:       h.mtu6,
		MTULock:   true,
	}
}

// onUplink reports whether any of addrs lies in a prefix the uplink has
// on-link (a route without gateway there).
func (h *Host) onUplink(addrs []netip.Prefix) (bool, error) {
	routes, err := h.nl.RouteList(h.uplink, netlink.FAMILY_V6)
	if err != nil {
		return false, fmt.Errorf("routes of %s: %w", h.Uplink(), err)
	}
	for _, rt := range routes {
		if rt.Dst == nil || rt.Gw != nil {
			continue
		}
		on, ok := prefixOf(rt.Dst)
		if !ok || on.Bits() == 0 || on.Addr().IsLinkLocalUnicast() || on.Addr().IsMulticast() {
			continue
		}
		for _, a := range addrs {
			if on.Overlaps(a) {
				return true, nil
			}
		}
	}
	return false, nil
}

func (h *Host) setupProxy(log *slog.Logger) error {
	key := "net.ipv6.conf." + h.Uplink() + ".proxy_ndp"
	old, err := h.sysctl(key)
	if err != nil {
		return fmt.Errorf("read %s: %w", key, err)
	}
	if old != "1" {
		if err := h.setSysctl(key, "1"); err != nil {
			return fmt.Errorf("set %s: %w", key, err)
		}
		h.track(func() error { return h.setSysctl(key, old) })
	}
	idx := h.uplink.Attrs().Index
	for _, a := range h.cfg.Router.Proxy {
		n := &netlink.Neigh{LinkIndex: idx, Family: netlink.FAMILY_V6, Flags: netlink.NTF_PROXY, IP: a.AsSlice()}
		if err := h.nl.NeighSet(n); err != nil {
			return fmt.Errorf("proxy NDP for %v on %s: %w", a, h.Uplink(), err)
		}
		h.track(func() error {
			if err := h.nl.NeighDel(n); err != nil && !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("remove proxy NDP for %v: %w", a, err)
			}
			return nil
		})
	}
	h.proxied = true
	log.Info("proxy NDP on the uplink", "uplink", h.Uplink(), "addresses", len(h.cfg.Router.Proxy))
	return nil
}

// pruneProxy removes the uplink's proxy NDP entries that an earlier run
// left (killed, it could not remove them) for LAN host addresses this one
// does not answer for. Entries outside the LAN hosts' addresses are not
// ours to judge and stay.
func (h *Host) pruneProxy(keep []netip.Addr, log *slog.Logger) error {
	neighs, err := h.nl.NeighProxyList(h.uplink.Attrs().Index, netlink.FAMILY_V6)
	if err != nil {
		return fmt.Errorf("proxy NDP entries of %s: %w", h.Uplink(), err)
	}
	for _, n := range neighs {
		a, ok := netip.AddrFromSlice(n.IP)
		if !ok || slices.Contains(keep, a.Unmap()) || !slices.ContainsFunc(h.cfg.Router.Addrs, func(p netip.Prefix) bool { return p.Contains(a.Unmap()) }) {
			continue
		}
		log.Warn("removing stale proxy NDP entry from an earlier run", "addr", a, "uplink", h.Uplink())
		if err := h.nl.NeighDel(&n); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("remove stale proxy NDP entry for %v: %w", a, err)
		}
	}
	return nil
}

// Proxied reports whether proxy NDP was set up.
func (h *Host) Proxied() bool { return h.proxied }

// globalAddr6 is the uplink's first global IPv6 address that is not the
// host-mode translation source.
func (h *Host) globalAddr6() (netip.Addr, error) {
	addrs, err := h.nl.AddrList(h.uplink, netlink.FAMILY_V6)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("addresses of %s: %w", h.Uplink(), err)
	}
	for _, a := range addrs {
		p, ok := prefixOf(a.IPNet)
		if ok && p.Addr().IsGlobalUnicast() && !p.Addr().IsPrivate() && p.Addr() != h.source6 {
			return p.Addr(), nil
		}
	}
	for _, a := range addrs {
		if p, ok := prefixOf(a.IPNet); ok && p.Addr().IsGlobalUnicast() && p.Addr() != h.source6 {
			return p.Addr(), nil
		}
	}
	return netip.Addr{}, fmt.Errorf("uplink %s has no global IPv6 address", h.Uplink())
}

// UplinkAddr is the router's own global IPv6 address on the uplink (router
// mode): the source of the ICMPv6 errors router translation generates.
func (h *Host) UplinkAddr() netip.Addr { return h.uplinkAddr }
