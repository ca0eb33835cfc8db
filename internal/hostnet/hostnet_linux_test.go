package hostnet

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bih-nfq/bih-nfq/internal/hostnet/nstest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

var (
	primary   = netip.MustParsePrefix("10.170.160.0/20")
	secondary = netip.MustParsePrefix("172.21.80.0/20")
	uplinkNet = netip.MustParsePrefix("2001:db8:1::/64")
)

// lab is a namespace with an IPv6-only uplink veth0 (MTU 1400, a default
// route) and its peer veth1.
func lab(t *testing.T, defaultRoute bool) *nstest.NS {
	t.Helper()
	ns := nstest.New(t)
	ns.Run(t, "ip", "link", "add", "veth0", "mtu", "1400", "type", "veth", "peer", "name", "veth1")
	for _, l := range []string{"veth0", "veth1"} {
		// No link-local addresses: nothing changes after the lab settles.
		ns.Run(t, "ip", "link", "set", l, "addrgenmode", "none")
		ns.Run(t, "ip", "link", "set", l, "up")
	}
	ns.Run(t, "ip", "addr", "add", "2001:db8:1::10/64", "dev", "veth0", "nodad")
	if defaultRoute {
		ns.Run(t, "ip", "-6", "route", "add", "default", "via", "2001:db8:1::1", "dev", "veth0")
	}
	// Carrier comes up asynchronously; wait until snapshots stop changing.
	deadline := time.Now().Add(5 * time.Second)
	for prev := ""; ; {
		s := snapshot(t, ns)
		if s == prev && !strings.Contains(s, "LOWERLAYERDOWN") && !strings.Contains(s, "linkdown") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lab did not settle:\n%s", s)
		}
		prev = s
		time.Sleep(100 * time.Millisecond)
	}
	return ns
}

func machineID(t *testing.T, id string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "machine-id")
	if err := os.WriteFile(p, []byte(id+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// snapshot is the namespace's links, addresses and routes.
func snapshot(t *testing.T, ns *nstest.NS) string {
	t.Helper()
	var b strings.Builder
	for _, args := range [][]string{
		{"-br", "link"}, {"-br", "addr"},
		{"-4", "route", "show", "table", "all"}, {"-6", "route", "show", "table", "all"},
	} {
		b.WriteString(ns.Run(t, "ip", args...))
	}
	return b.String()
}

func TestSetupTeardown(t *testing.T) {
	ns := lab(t, true)
	before := snapshot(t, ns)
	cfg := Config{Pools: []netip.Prefix{primary}, MachineIDPath: machineID(t, "3f9a0c1d2e4b5a6978877665544332211")}
	h, err := Setup(cfg, Options{NetNS: ns.Fd(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	want6, _ := DeriveSource6(uplinkNet, []byte("3f9a0c1d2e4b5a6978877665544332211"))
	if h.Source6() != want6 || h.Uplink() != "veth0" || h.MTU() != 1380 || h.LinkName() != "bih0" {
		t.Fatalf("source6 %v (want %v), uplink %s, mtu %d, link %s", h.Source6(), want6, h.Uplink(), h.MTU(), h.LinkName())
	}
	link := ns.Run(t, "ip", "-d", "link", "show", "bih0")
	for _, want := range []string{"mtu 1380", ",UP", "tun type tun", "persist on"} {
		if !strings.Contains(link, want) {
			t.Errorf("bih0 lacks %q:\n%s", want, link)
		}
	}
	if out := ns.Run(t, "ip", "-4", "addr", "show", "dev", "bih0"); !strings.Contains(out, "inet 172.21.112.1/32") {
		t.Errorf("bih0 address:\n%s", out)
	}
	if out := ns.Run(t, "ip", "route", "show", "dev", "bih0"); !strings.Contains(out, "10.170.160.0/20 scope link src 172.21.112.1") ||
		!strings.Contains(out, "mtu 1380") {
		t.Errorf("pool route:\n%s", out)
	}
	// Nobody reads the TUN link, yet the pool routes through it.
	if out := ns.Run(t, "ip", "route", "get", "10.170.171.9"); !strings.Contains(out, "dev bih0 src 172.21.112.1") {
		t.Errorf("route get:\n%s", out)
	}
	addr6 := ns.Run(t, "ip", "-6", "addr", "show", "dev", "veth0")
	line := ""
	for _, l := range strings.Split(addr6, "inet6 ")[1:] {
		if strings.HasPrefix(l, want6.String()+"/128") {
			line = l
		}
	}
	for _, want := range []string{"nodad", "deprecated", "preferred_lft 0sec", "valid_lft forever"} {
		if !strings.Contains(line, want) {
			t.Errorf("IPv6 source lacks %q: %q\n%s", want, line, addr6)
		}
	}
	// Native IPv6 sockets keep the host's own source.
	if out := ns.Run(t, "ip", "-6", "route", "get", "2001:db8:99::1"); !strings.Contains(out, "src 2001:db8:1::10 ") {
		t.Errorf("native source selection picked the translation address:\n%s", out)
	}

	if err := h.Teardown(); err != nil {
		t.Fatal(err)
	}
	if after := snapshot(t, ns); after != before {
		t.Fatalf("Teardown left changes:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if err := h.Teardown(); err != nil {
		t.Fatalf("second Teardown: %v", err)
	}
}

func TestLeftoverAdoption(t *testing.T) {
	ns := lab(t, true)
	before := snapshot(t, ns)
	cfg := Config{Pools: []netip.Prefix{primary, secondary}, MachineIDPath: machineID(t, "abc")}
	opt := Options{NetNS: ns.Fd(), Logger: quiet}
	if _, err := Setup(cfg, opt); err != nil { // then "crash": no Teardown
		t.Fatal(err)
	}
	crashed := snapshot(t, ns)
	if _, err := Setup(cfg, opt); err != nil {
		t.Fatalf("set-up over leftovers: %v", err)
	}
	if again := snapshot(t, ns); again != crashed {
		t.Fatalf("adoption changed the set-up:\n%s\nvs\n%s", crashed, again)
	}
	// Adopting with another configuration drops the earlier pool and address.
	h, err := Setup(Config{Source4: netip.MustParsePrefix("172.21.112.2/32"), Pools: []netip.Prefix{primary},
		MachineIDPath: cfg.MachineIDPath}, opt)
	if err != nil {
		t.Fatal(err)
	}
	if out := ns.Run(t, "ip", "route", "show", "dev", "bih0"); strings.Contains(out, "172.21.80.0") || !strings.Contains(out, "10.170.160.0/20") {
		t.Fatalf("stale pool route kept:\n%s", out)
	}
	if out := ns.Run(t, "ip", "-4", "addr", "show", "dev", "bih0"); strings.Contains(out, "172.21.112.1/") || !strings.Contains(out, "172.21.112.2/32") {
		t.Fatalf("stale address kept:\n%s", out)
	}
	if err := h.Teardown(); err != nil {
		t.Fatal(err)
	}
	if after := snapshot(t, ns); after != before {
		t.Fatalf("leftovers not removed:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	// A link of that name that is not a TUN is not ours: refuse, touch nothing.
	ns.Run(t, "ip", "link", "add", "bih0", "type", "veth", "peer", "name", "other0")
	before = snapshot(t, ns)
	if _, err := Setup(cfg, opt); err == nil || !strings.Contains(err.Error(), "not our TUN") {
		t.Fatalf("foreign bih0: %v", err)
	}
	if after := snapshot(t, ns); after != before {
		t.Fatalf("failed set-up changed the host:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

func TestSetupConfigured(t *testing.T) {
	ns := lab(t, false)
	opt := Options{NetNS: ns.Fd(), Logger: quiet}
	if _, err := Setup(Config{Pools: []netip.Prefix{primary}, MachineIDPath: machineID(t, "x")}, opt); err == nil ||
		!strings.Contains(err.Error(), "no IPv6 default route") {
		t.Fatalf("without default route: %v", err)
	}
	if out := ns.Run(t, "ip", "-br", "link"); strings.Contains(out, "bih0") {
		t.Fatalf("failed set-up left a link:\n%s", out)
	}
	src := netip.MustParseAddr("2001:db8:1::bead")
	h, err := Setup(Config{LinkName: "xl0", Source4: netip.MustParsePrefix("172.21.112.9/32"),
		Pools: []netip.Prefix{secondary}, Uplink: "veth0", Source6: src}, opt)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Teardown()
	if h.Source6() != src {
		t.Fatalf("source6 %v", h.Source6())
	}
	if out := ns.Run(t, "ip", "route", "get", "172.21.85.1"); !strings.Contains(out, "dev xl0 src 172.21.112.9") {
		t.Fatalf("route get:\n%s", out)
	}
	if out := ns.Run(t, "ip", "-6", "addr", "show", "dev", "veth0"); !strings.Contains(out, "2001:db8:1::bead/128") {
		t.Fatalf("configured source missing:\n%s", out)
	}
}

func TestConflicts(t *testing.T) {
	ns := lab(t, true)
	opt := Options{NetNS: ns.Fd(), Logger: quiet}
	pools := []netip.Prefix{primary, secondary}
	h, err := Setup(Config{Pools: pools, MachineIDPath: machineID(t, "x")}, opt)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Teardown()
	cs, err := Conflicts(pools, "bih0", opt)
	if err != nil || len(cs) != 0 {
		t.Fatalf("our own routes reported: %v %v", cs, err)
	}
	ns.Run(t, "ip", "addr", "add", "10.170.161.1/24", "dev", "veth1")
	cs, err = Conflicts(pools, "bih0", opt)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := ChoosePool(pools, cs); err != nil || p != secondary {
		t.Fatalf("conflicts %v: chose %v, %v", cs, p, err)
	}
	found := false
	for _, c := range cs {
		found = found || (c.Pool == primary && c.Link == "veth1" && c.What == "address")
	}
	if !found {
		t.Fatalf("address conflict not reported: %v", cs)
	}
	ns.Run(t, "ip", "route", "add", "172.21.64.0/18", "dev", "veth1")
	if cs, err = Conflicts(pools, "bih0", opt); err != nil {
		t.Fatal(err)
	}
	if _, err := ChoosePool(pools, cs); err == nil {
		t.Fatalf("both pools in use, chose one: %v", cs)
	}
}

func TestWatchNative4(t *testing.T) {
	ns := lab(t, true)
	opt := Options{NetNS: ns.Fd(), Logger: quiet}
	h, err := Setup(Config{Pools: []netip.Prefix{primary}, MachineIDPath: machineID(t, "x")}, opt)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Teardown()
	if n, err := CurrentNative4("bih0", opt); err != nil || n.Present() {
		t.Fatalf("IPv6-only host shows native IPv4: %+v %v", n, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	events, err := Watch(ctx, "bih0", opt)
	if err != nil {
		t.Fatal(err)
	}
	wait := func(what string, ok func(Event) bool) {
		t.Helper()
		for {
			select {
			case ev, open := <-events:
				if !open {
					t.Fatalf("watch closed before %s", what)
				}
				if ok(ev) {
					return
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("no event for %s", what)
			}
		}
	}
	// Changes on our own link do not count as native IPv4.
	if err := h.RoutePool(secondary); err != nil {
		t.Fatal(err)
	}
	wait("our route", func(ev Event) bool {
		if ev.Native4.Present() {
			t.Fatalf("our own route counted as native IPv4: %+v", ev)
		}
		return ev.Kind == RouteChanged
	})
	ns.Run(t, "ip", "addr", "add", "192.0.2.10/24", "dev", "veth1")
	wait("address", func(ev Event) bool {
		return ev.Kind == AddrChanged && len(ev.Native4.Addrs) == 1 && ev.Native4.Addrs[0] == netip.MustParsePrefix("192.0.2.10/24")
	})
	ns.Run(t, "ip", "route", "add", "default", "via", "192.0.2.1", "dev", "veth1")
	wait("default route", func(ev Event) bool { return ev.Kind == RouteChanged && ev.Native4.DefaultRoute })
	cancel()
	for range events { // closes after cancel
	}
}
