package hostnet

import (
	"net/netip"
	"strings"
	"testing"
)

// TestRouterSetup: the LAN hosts' IPv6 prefix is routed into the TUN link
// with the uplink's MTU locked, proxy NDP answers for the hosts when the
// prefix is on-link, and teardown restores everything, the proxy_ndp
// sysctl included.
func TestRouterSetup(t *testing.T) {
	ns := lab(t, true)
	ns.Run(t, "ip", "link", "add", "lan0", "type", "veth", "peer", "name", "lan0p")
	ns.Run(t, "ip", "addr", "add", "192.168.7.1/24", "dev", "lan0")
	ns.Run(t, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	before := snapshot(t, ns)
	proxyBefore := ns.Run(t, "sysctl", "-n", "net.ipv6.conf.veth0.proxy_ndp")

	lan, err := ReadLAN([]string{"lan0"}, Options{NetNS: ns.Fd(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if len(lan.Prefixes) != 1 || lan.Prefixes[0] != netip.MustParsePrefix("192.168.7.0/24") || lan.MTU != 1500 {
		t.Fatalf("ReadLAN: %+v", lan)
	}
	if _, err := ReadLAN([]string{"lan9"}, Options{NetNS: ns.Fd(), Logger: quiet}); err == nil || !strings.Contains(err.Error(), "lan9") {
		t.Fatalf("ReadLAN of a missing link: %v", err)
	}

	onLink := netip.MustParsePrefix("2001:db8:1::64:c0a8:700/120") // inside veth0's /64
	hosts := []netip.Addr{netip.MustParseAddr("2001:db8:1::64:c0a8:70a"), netip.MustParseAddr("2001:db8:1::64:c0a8:70b")}
	cfg := Config{Pools: []netip.Prefix{primary}, NoHost: true,
		Router: &Router{LAN: []string{"lan0"}, Addrs: []netip.Prefix{onLink}, Proxy: hosts}}
	h, err := Setup(cfg, Options{NetNS: ns.Fd(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	route := ns.Run(t, "ip", "-6", "route", "show", onLink.String())
	if !strings.Contains(route, "dev bih0") || !strings.Contains(route, "mtu lock 1400") {
		t.Errorf("route of the hosts' prefix: %q, want dev bih0 mtu lock 1400", route)
	}
	if !h.Proxied() {
		t.Error("on-link prefix without proxy NDP")
	}
	proxy := ns.Run(t, "ip", "-6", "neigh", "show", "proxy")
	for _, a := range hosts {
		if !strings.Contains(proxy, a.String()+" dev veth0") {
			t.Errorf("no proxy entry for %v:\n%s", a, proxy)
		}
	}
	if v := ns.Run(t, "sysctl", "-n", "net.ipv6.conf.veth0.proxy_ndp"); strings.TrimSpace(v) != "1" {
		t.Errorf("proxy_ndp = %q", v)
	}
	if h.UplinkAddr() != netip.MustParseAddr("2001:db8:1::10") {
		t.Errorf("UplinkAddr = %v", h.UplinkAddr())
	}
	// Router-only: no host addresses.
	if a := ns.Run(t, "ip", "-br", "addr", "show", "dev", "bih0"); strings.Contains(a, "172.21.112.1") {
		t.Errorf("router-only set-up added the host source: %s", a)
	}
	if err := h.Teardown(); err != nil {
		t.Fatal(err)
	}
	if after := snapshot(t, ns); after != before {
		t.Errorf("teardown left changes:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if p := ns.Run(t, "ip", "-6", "neigh", "show", "proxy"); strings.TrimSpace(p) != "" {
		t.Errorf("proxy entries left: %s", p)
	}
	if v := ns.Run(t, "sysctl", "-n", "net.ipv6.conf.veth0.proxy_ndp"); v != proxyBefore {
		t.Errorf("proxy_ndp %q after teardown, was %q", v, proxyBefore)
	}

	// Killed (no teardown), then started with one host fewer and another
	// prefix besides: the stale proxy entry goes, the kept one and a proxy
	// entry that is not the daemon's stay; the route stays as configured.
	foreign := netip.MustParseAddr("2001:db8:1::77")
	ns.Run(t, "ip", "-6", "neigh", "add", "proxy", foreign.String(), "dev", "veth0")
	if _, err := Setup(cfg, Options{NetNS: ns.Fd(), Logger: quiet}); err != nil {
		t.Fatal(err)
	}
	extra := netip.MustParsePrefix("2001:db8:99::c0a8:800/120")
	cfg.Router.Addrs = []netip.Prefix{onLink, extra}
	cfg.Router.Proxy = hosts[:1]
	if _, err := Setup(cfg, Options{NetNS: ns.Fd(), Logger: quiet}); err != nil {
		t.Fatalf("set-up over leftovers: %v", err)
	}
	proxy = ns.Run(t, "ip", "-6", "neigh", "show", "proxy")
	if strings.Contains(proxy, hosts[1].String()+" ") || !strings.Contains(proxy, hosts[0].String()+" ") ||
		!strings.Contains(proxy, foreign.String()+" ") {
		t.Errorf("proxy entries after adoption, want %v and %v only:\n%s", hosts[0], foreign, proxy)
	}
	// Started again without the extra prefix: its route goes.
	cfg.Router.Addrs = []netip.Prefix{onLink}
	h, err = Setup(cfg, Options{NetNS: ns.Fd(), Logger: quiet})
	if err != nil {
		t.Fatalf("set-up over leftovers: %v", err)
	}
	if r := ns.Run(t, "ip", "-6", "route", "show", "dev", "bih0"); strings.Contains(r, extra.Addr().String()) || !strings.Contains(r, onLink.String()) {
		t.Errorf("routes on bih0 after adoption, want %v only:\n%s", onLink, r)
	}
	if err := h.Teardown(); err != nil {
		t.Fatal(err)
	}
	ns.Run(t, "ip", "-6", "neigh", "del", "proxy", foreign.String(), "dev", "veth0")
	cfg.Router.Proxy = hosts
	if after := snapshot(t, ns); after != before {
		t.Errorf("leftovers not removed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if p := ns.Run(t, "ip", "-6", "neigh", "show", "proxy"); strings.TrimSpace(p) != "" {
		t.Errorf("proxy entries left: %s", p)
	}

	// A routed prefix needs no proxy NDP.
	cfg.Router.Addrs = []netip.Prefix{netip.MustParsePrefix("2001:db8:99::c0a8:700/120")}
	h, err = Setup(cfg, Options{NetNS: ns.Fd(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if h.Proxied() {
		t.Error("proxy NDP for a routed prefix")
	}
	if err := h.Teardown(); err != nil {
		t.Fatal(err)
	}

	// No forwarding: refused before anything changes.
	ns.Run(t, "sysctl", "-qw", "net.ipv4.ip_forward=0")
	if _, err := Setup(cfg, Options{NetNS: ns.Fd(), Logger: quiet}); err == nil || !strings.Contains(err.Error(), "net.ipv4.ip_forward=1") {
		t.Fatalf("Setup without IPv4 forwarding: %v", err)
	}
	if after := snapshot(t, ns); after != before {
		t.Errorf("a refused set-up changed the namespace:\n%s", after)
	}
}
