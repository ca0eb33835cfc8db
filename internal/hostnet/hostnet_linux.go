package hostnet

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Options are the run-time settings that are not host configuration.
type Options struct {
	// NetNS is an open network namespace fd to work in; 0 means the
	// current one.
	NetNS  int
	Logger *slog.Logger
	// IgnoreLinks are not native IPv4 connectivity (a router's LAN links).
	IgnoreLinks []string
}

func (o *Options) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.Default()
	}
	return o.Logger
}

func (o *Options) handle() (*netlink.Handle, error) {
	var h *netlink.Handle
	var err error
	if o.NetNS != 0 {
		h, err = netlink.NewHandleAt(netns.NsHandle(o.NetNS))
	} else {
		h, err = netlink.NewHandle()
	}
	if err != nil {
		return nil, fmt.Errorf("open rtnetlink: %w", err)
	}
	return h, nil
}

// Host is the set-up in place. Everything it added is listed in undo and
// removed by Teardown.
type Host struct {
	cfg     Config
	opt     Options
	nl      *netlink.Handle
	link    netlink.Link // our TUN
	uplink  netlink.Link
	source6 netip.Addr
	mtu     int // TUN link and pool route MTU
	mtu6    int // the uplink's IPv6 MTU
	proxied bool
	// uplinkAddr is the router's own address on the uplink (router mode).
	uplinkAddr netip.Addr

	mu     sync.Mutex
	undo   []func() error
	closed bool
}

// LinkName is the TUN link's name.
func (h *Host) LinkName() string { return h.cfg.LinkName }

// Uplink is the IPv6 uplink's name.
func (h *Host) Uplink() string { return h.uplink.Attrs().Name }

// Source6 is the translation source address in use.
func (h *Host) Source6() netip.Addr { return h.source6 }

// Source4 is the host IPv4 source address on the TUN link.
func (h *Host) Source4() netip.Addr { return h.cfg.Source4.Addr() }

// MTU is the TUN link's (and the pool routes') MTU.
func (h *Host) MTU() int { return h.mtu }

// Setup creates (or adopts, after a crash) the TUN link with its address
// and pool routes, and adds the translation source address on the uplink.
// On error whatever it did is undone.
func Setup(cfg Config, opt Options) (_ *Host, err error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("host set-up: %w", err)
	}
	nl, err := opt.handle()
	if err != nil {
		return nil, fmt.Errorf("host set-up: %w", err)
	}
	h := &Host{cfg: cfg, opt: opt, nl: nl}
	defer func() {
		if err != nil {
			if terr := h.Teardown(); terr != nil {
				err = errors.Join(err, terr)
			}
		}
	}()
	log := opt.logger()

	uplink, mtu6, prefix, err := findUplink(nl, cfg.Uplink, cfg.Source6)
	if err != nil {
		return nil, fmt.Errorf("host set-up: %w", err)
	}
	h.uplink, h.mtu, h.mtu6 = uplink, LinkMTU(mtu6), mtu6
	if !cfg.NoHost {
		if h.source6, err = source6(&cfg, prefix, uplink); err != nil {
			return nil, fmt.Errorf("host set-up: %w", err)
		}
	}
	if cfg.Router != nil {
		// Checked before anything changes.
		if err := h.checkRouter(); err != nil {
			return nil, fmt.Errorf("router set-up: %w", err)
		}
	}
	if err := h.setupLink(log); err != nil {
		return nil, fmt.Errorf("host set-up: link %s: %w", cfg.LinkName, err)
	}
	for _, p := range cfg.Pools {
		if err := h.RoutePool(p); err != nil {
			return nil, fmt.Errorf("host set-up: %w", err)
		}
	}
	if err := h.pruneLink(log); err != nil {
		return nil, fmt.Errorf("host set-up: link %s: %w", cfg.LinkName, err)
	}
	if !cfg.NoHost {
		if err := h.setupSource6(log); err != nil {
			return nil, fmt.Errorf("host set-up: %w", err)
		}
		log.Info("host set up", "link", cfg.LinkName, "mtu", h.mtu, "source4", cfg.Source4.Addr(),
			"pools", cfg.Pools, "uplink", h.Uplink(), "source6", h.source6)
	}
	if cfg.Router != nil {
		if err := h.setupRouter(log); err != nil {
			return nil, fmt.Errorf("router set-up: %w", err)
		}
	}
	return h, nil
}

// source6 is the configured translation source, or the one derived from
// the machine id in the uplink's /64.
func source6(cfg *Config, prefix netip.Prefix, uplink netlink.Link) (netip.Addr, error) {
	if cfg.Source6.IsValid() {
		return cfg.Source6, nil
	}
	if !prefix.IsValid() {
		return netip.Addr{}, fmt.Errorf("uplink %s has no global IPv6 address to derive the IPv6 source from: configure one",
			uplink.Attrs().Name)
	}
	id, err := os.ReadFile(cfg.MachineIDPath)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("IPv6 source: %w", err)
	}
	return DeriveSource6(prefix, []byte(strings.TrimSpace(string(id))))
}

// PlanSource6 returns the uplink and translation source address Setup
// would use, changing nothing.
func PlanSource6(cfg Config, opt Options) (uplink string, addr netip.Addr, err error) {
	cfg = cfg.WithDefaults()
	nl, err := opt.handle()
	if err != nil {
		return "", netip.Addr{}, err
	}
	defer nl.Close()
	link, _, prefix, err := findUplink(nl, cfg.Uplink, cfg.Source6)
	if err != nil {
		return "", netip.Addr{}, err
	}
	addr, err = source6(&cfg, prefix, link)
	return link.Attrs().Name, addr, err
}

func (h *Host) track(f func() error) {
	h.mu.Lock()
	h.undo = append(h.undo, f)
	h.mu.Unlock()
}

// Teardown removes everything Setup added, newest first (what is already
// gone is no error). Later calls do nothing.
func (h *Host) Teardown() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil
	}
	var errs []error
	for i := len(h.undo) - 1; i >= 0; i-- {
		if err := h.undo[i](); err != nil && !gone(err) {
			errs = append(errs, err)
		}
	}
	h.undo, h.closed = nil, true
	h.nl.Close()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("host teardown: %w", err)
	}
	return nil
}

// gone reports the errors meaning "already removed".
func gone(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENOENT) ||
		errors.Is(err, unix.ESRCH) || errors.Is(err, unix.EADDRNOTAVAIL)
}

// findUplink returns the uplink (named, or that of the IPv6 default route),
// its IPv6 MTU, and its first global /64 (not addr: that is ours).
func findUplink(nl *netlink.Handle, name string, ours netip.Addr) (netlink.Link, int, netip.Prefix, error) {
	var link netlink.Link
	routeMTU := 0
	if name != "" {
		l, err := nl.LinkByName(name)
		if err != nil {
			return nil, 0, netip.Prefix{}, fmt.Errorf("uplink %s: %w", name, err)
		}
		link = l
	} else {
		routes, err := nl.RouteList(nil, netlink.FAMILY_V6)
		if err != nil {
			return nil, 0, netip.Prefix{}, fmt.Errorf("list IPv6 routes: %w", err)
		}
		for _, r := range routes {
			if !isDefault(r.Dst) {
				continue
			}
			idx := r.LinkIndex
			if idx == 0 && len(r.MultiPath) > 0 {
				idx = r.MultiPath[0].LinkIndex
			}
			l, err := nl.LinkByIndex(idx)
			if err != nil {
				return nil, 0, netip.Prefix{}, fmt.Errorf("uplink of the IPv6 default route: %w", err)
			}
			link, routeMTU = l, r.MTU
			break
		}
		if link == nil {
			return nil, 0, netip.Prefix{}, errors.New("no IPv6 default route: configure the uplink")
		}
	}
	mtu := link.Attrs().MTU
	if routeMTU > 0 && routeMTU < mtu {
		mtu = routeMTU
	}
	addrs, err := nl.AddrList(link, netlink.FAMILY_V6)
	if err != nil {
		return nil, 0, netip.Prefix{}, fmt.Errorf("addresses of %s: %w", link.Attrs().Name, err)
	}
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok || a.Scope != unix.RT_SCOPE_UNIVERSE || !ip.IsGlobalUnicast() || ip == ours ||
			a.Flags&(unix.IFA_F_TEMPORARY|unix.IFA_F_DEPRECATED|unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) != 0 {
			continue
		}
		return link, mtu, netip.PrefixFrom(ip, 64).Masked(), nil
	}
	return link, mtu, netip.Prefix{}, nil
}

func isDefault(dst *net.IPNet) bool {
	if dst == nil {
		return true
	}
	ones, _ := dst.Mask.Size()
	return ones == 0
}

// setupLink creates the TUN link, or adopts one of ours left by a crash.
func (h *Host) setupLink(log *slog.Logger) error {
	name := h.cfg.LinkName
	l, err := h.nl.LinkByName(name)
	var nf netlink.LinkNotFoundError
	switch {
	case err == nil:
		if l.Type() != "tuntap" {
			return fmt.Errorf("exists and is a %s link, not our TUN", l.Type())
		}
		log.Warn("adopting TUN link left by an earlier run", "link", name)
	case errors.As(err, &nf):
		if err := h.createTUN(name); err != nil {
			return err
		}
		if l, err = h.nl.LinkByName(name); err != nil {
			return fmt.Errorf("find after creation: %w", err)
		}
	default:
		return err
	}
	h.link = l
	h.track(func() error {
		if err := h.nl.LinkDel(l); err != nil {
			return fmt.Errorf("delete link %s: %w", name, err)
		}
		return nil
	})
	if err := h.nl.LinkSetMTU(l, h.mtu); err != nil {
		return fmt.Errorf("set MTU %d: %w", h.mtu, err)
	}
	if err := h.nl.LinkSetUp(l); err != nil {
		return fmt.Errorf("set up: %w", err)
	}
	if h.cfg.NoHost {
		return nil
	}
	a := &netlink.Addr{IPNet: ipNet(h.cfg.Source4)}
	if err := h.nl.AddrReplace(l, a); err != nil {
		return fmt.Errorf("address %v: %w", h.cfg.Source4, err)
	}
	return nil
}

// pruneLink removes what an adopted link carries beyond this
// configuration: an earlier run's other pools or IPv4 address, and the
// routes of LAN hosts' IPv6 addresses that router mode no longer has.
func (h *Host) pruneLink(log *slog.Logger) error {
	var lanAddrs []netip.Prefix
	if h.cfg.Router != nil {
		lanAddrs = h.cfg.Router.Addrs
	}
	routes6, err := h.nl.RouteList(h.link, netlink.FAMILY_V6)
	if err != nil {
		return fmt.Errorf("list IPv6 routes: %w", err)
	}
	for _, r := range routes6 {
		if r.Dst == nil || r.Protocol == unix.RTPROT_KERNEL {
			continue
		}
		p, ok := prefixOf(r.Dst)
		if !ok || slices.Contains(lanAddrs, p) {
			continue
		}
		log.Warn("removing stale route from an earlier run", "route", p, "link", h.cfg.LinkName)
		if err := h.nl.RouteDel(&r); err != nil && !gone(err) {
			return fmt.Errorf("remove stale route %v: %w", p, err)
		}
	}
	routes, err := h.nl.RouteList(h.link, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("list routes: %w", err)
	}
	for _, r := range routes {
		if r.Dst == nil || r.Protocol == unix.RTPROT_KERNEL { // the address's own prefix route
			continue
		}
		p, ok := prefixOf(r.Dst)
		if !ok || slices.Contains(h.cfg.Pools, p) {
			continue
		}
		log.Warn("removing stale route from an earlier run", "route", p, "link", h.cfg.LinkName)
		if err := h.nl.RouteDel(&r); err != nil && !gone(err) {
			return fmt.Errorf("remove stale route %v: %w", p, err)
		}
	}
	addrs, err := h.nl.AddrList(h.link, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("list addresses: %w", err)
	}
	for _, a := range addrs {
		if p, ok := prefixOf(a.IPNet); ok && (h.cfg.NoHost || p != h.cfg.Source4) {
			log.Warn("removing stale address from an earlier run", "addr", p, "link", h.cfg.LinkName)
			if err := h.nl.AddrDel(h.link, &a); err != nil && !gone(err) {
				return fmt.Errorf("remove stale address %v: %w", p, err)
			}
		}
	}
	return nil
}

// createTUN makes a persistent TUN link: it stays after its fd is closed,
// and nobody reads it; packets routed into it have passed the OUTPUT hook.
func (h *Host) createTUN(name string) error {
	return inNS(h.opt.NetNS, func() error {
		fd, err := attachTUN(name, unix.IFF_TUN_EXCL)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.IoctlSetInt(fd, unix.TUNSETPERSIST, 1); err != nil {
			return fmt.Errorf("TUNSETPERSIST: %w", err)
		}
		return nil
	})
}

// attachTUN opens /dev/net/tun and attaches it to TUN link name (creating
// it if missing) with IFF_TUN|IFF_NO_PI and extra flags.
func attachTUN(name string, extra uint16) (int, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI | extra)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("TUNSETIFF %s: %w", name, err)
	}
	return fd, nil
}

// inNS runs f on an OS thread inside namespace fd (0: here). The thread is
// discarded if it cannot be switched back.
func inNS(fd int, f func() error) error {
	if fd == 0 {
		return f()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("current netns: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(netns.NsHandle(fd)); err != nil {
			errc <- fmt.Errorf("enter netns: %w", err)
			return
		}
		ferr := f()
		if err := netns.Set(orig); err != nil {
			errc <- fmt.Errorf("leave netns: %w", err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// RoutePool routes pool p into the TUN link, from Source4, with the link's
// MTU (TCP takes its MSS from it). Removed with the link.
func (h *Host) RoutePool(p netip.Prefix) error {
	if err := h.nl.RouteReplace(h.poolRoute(p)); err != nil {
		return fmt.Errorf("route %v via %s: %w", p, h.cfg.LinkName, err)
	}
	return nil
}

// UnroutePool removes pool p's route.
func (h *Host) UnroutePool(p netip.Prefix) error {
	if err := h.nl.RouteDel(h.poolRoute(p)); err != nil && !gone(err) {
		return fmt.Errorf("remove route %v: %w", p, err)
	}
	return nil
}

func (h *Host) poolRoute(p netip.Prefix) *netlink.Route {
	r := &netlink.Route{
		LinkIndex: h.link.Attrs().Index,
		Dst:       ipNet(p.Masked()),
		Scope:     netlink.SCOPE_LINK,
		MTU:       h.mtu,
	}
	if !h.cfg.NoHost {
		r.Src = h.cfg.Source4.Addr().AsSlice()
	}
	return r
}

// setupSource6 adds the translation source on the uplink: nodad (the kernel
// still answers Neighbor Discovery for it) and preferred lifetime 0, so the
// kernel never picks it as a source for native sockets (RFC 6724 rule 3).
func (h *Host) setupSource6(log *slog.Logger) error {
	a := &netlink.Addr{
		IPNet:       ipNet(netip.PrefixFrom(h.source6, 128)),
		Flags:       unix.IFA_F_NODAD,
		PreferedLft: 0,
		ValidLft:    0xffffffff, // forever
	}
	existing, err := h.nl.AddrList(h.uplink, netlink.FAMILY_V6)
	if err != nil {
		return fmt.Errorf("addresses of %s: %w", h.Uplink(), err)
	}
	for _, e := range existing {
		if ip, _ := netip.AddrFromSlice(e.IP); ip == h.source6 {
			log.Warn("adopting IPv6 source address left by an earlier run", "addr", h.source6, "link", h.Uplink())
		}
	}
	if err := h.nl.AddrReplace(h.uplink, a); err != nil {
		return fmt.Errorf("IPv6 source %v on %s: %w", h.source6, h.Uplink(), err)
	}
	h.track(func() error {
		if err := h.nl.AddrDel(h.uplink, a); err != nil {
			return fmt.Errorf("delete %v from %s: %w", h.source6, h.Uplink(), err)
		}
		return nil
	})
	return nil
}

// Conflicts lists host IPv4 routes and addresses overlapping the pools,
// ignoring our own link (linkName).
func Conflicts(pools []netip.Prefix, linkName string, opt Options) ([]Conflict, error) {
	nl, err := opt.handle()
	if err != nil {
		return nil, fmt.Errorf("pool conflicts: %w", err)
	}
	defer nl.Close()
	names, err := linkNames(nl)
	if err != nil {
		return nil, fmt.Errorf("pool conflicts: %w", err)
	}
	routes, err := nl.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("pool conflicts: list routes: %w", err)
	}
	var cs []Conflict
	for _, r := range routes {
		if r.Dst == nil || names[r.LinkIndex] == linkName {
			continue
		}
		if p, ok := prefixOf(r.Dst); ok {
			cs = append(cs, overlapping(pools, p, names[r.LinkIndex], "route")...)
		}
	}
	addrs, err := nl.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("pool conflicts: list addresses: %w", err)
	}
	for _, a := range addrs {
		if names[a.LinkIndex] == linkName {
			continue
		}
		if p, ok := prefixOf(a.IPNet); ok {
			cs = append(cs, overlapping(pools, p, names[a.LinkIndex], "address")...)
		}
	}
	return cs, nil
}

func linkNames(nl *netlink.Handle) (map[int]string, error) {
	links, err := nl.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	m := make(map[int]string, len(links))
	for _, l := range links {
		m[l.Attrs().Index] = l.Attrs().Name
	}
	return m, nil
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones), true
}

// native4 reads the host's native IPv4 state, ignoring linkName and the
// links in ignore.
func native4(nl *netlink.Handle, linkName string, ignore []string) (Native4, error) {
	var n Native4
	names, err := linkNames(nl)
	if err != nil {
		return n, err
	}
	for i, name := range names {
		if slices.Contains(ignore, name) {
			names[i] = linkName
		}
	}
	routes, err := nl.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return n, fmt.Errorf("list routes: %w", err)
	}
	for _, r := range routes {
		idx := r.LinkIndex
		if idx == 0 && len(r.MultiPath) > 0 {
			idx = r.MultiPath[0].LinkIndex
		}
		if isDefault(r.Dst) && names[idx] != linkName {
			n.DefaultRoute = true
		}
	}
	addrs, err := nl.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return n, fmt.Errorf("list addresses: %w", err)
	}
	for _, a := range addrs {
		if a.Scope != unix.RT_SCOPE_UNIVERSE || names[a.LinkIndex] == linkName {
			continue
		}
		if p, ok := prefixOf(a.IPNet); ok && !p.Addr().IsLoopback() {
			n.Addrs = append(n.Addrs, p)
		}
	}
	return n, nil
}
