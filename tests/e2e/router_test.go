package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// routerConfig is the router on the LAB_LAN topology: the LAN hosts get
// IPv6 addresses from an RFC 6052 /96 inside the uplink's /64 (so proxy NDP
// is needed), and srv's resolver is reachable from the LAN at 172.21.95.253
// (RFC 7757). Each LAN host may hold 1% of the pool (81 mappings).
const routerConfig = `mode: router
router:
  lan: [lan1, lan2]
  prefix: 2001:db8:1:0:0:64::/96
translation:
  map: ["172.21.95.253=2001:db8:2::35"]
pool:
  requester-share: 0.01
  requester-rate: -1
daemon:
  metrics: "off"
`

const (
	routerResolver4   = "192.168.1.1" // unbound on the router, lan1's resolver
	upstreamResolver4 = "172.21.95.253"
	lan1IPv6          = "2001:db8:1::64:c0a8:10a"
	lan2IPv6          = "2001:db8:1::64:c0a8:20a"
)

var pool4 = netip.MustParsePrefix("10.170.160.0/20")

// digA returns the A records dig prints for name at server, from which.
func (l *Lab) digA(which, server, name string) []netip.Addr {
	l.t.Helper()
	out := l.Must(which, 15*time.Second, "dig", "+short", "+time=3", "+tries=2", "@"+server, name, "A")
	var as []netip.Addr
	for _, f := range strings.Fields(out) {
		if a, err := netip.ParseAddr(f); err == nil {
			as = append(as, a)
		}
	}
	return as
}

// fetchedFrom lists the client addresses the web server logged for path.
func (l *Lab) fetchedFrom(path string) map[string]bool {
	l.t.Helper()
	b, err := os.ReadFile(filepath.Join(l.State, "labserver.log"))
	if err != nil {
		l.t.Fatal(err)
	}
	re := regexp.MustCompile(`GET ` + regexp.QuoteMeta(path) + ` from \[([0-9a-f:]+)\]:\d+`)
	from := map[string]bool{}
	for _, m := range re.FindAllStringSubmatch(string(b), -1) {
		from[m[1]] = true
	}
	return from
}

// TestRouterMode is the router bump: two IPv4-only LAN hosts behind the
// daemon's router reach the IPv6-only server by name, each with its own
// IPv6 address; the router's own traffic is untouched.
func TestRouterMode(t *testing.T) {
	l := NewRouterLab(t)
	d := l.StartDaemon(routerConfig)

	var web netip.Addr
	t.Run("resolve and download", func(t *testing.T) {
		// Both hosts, through the router's resolver and directly to the
		// upstream resolver's address.
		for _, which := range []string{"lan1", "lan2"} {
			for _, server := range []string{routerResolver4, upstreamResolver4} {
				as := l.digA(which, server, "web.test")
				if len(as) != 1 || !pool4.Contains(as[0]) {
					t.Fatalf("%s: web.test A @%s = %v, want one pool address\n%s", which, server, as, d.Log)
				}
				if web.IsValid() && as[0] != web {
					t.Fatalf("%s: web.test A @%s = %v, earlier %v: one IPv6 address, one mapping", which, server, as[0], web)
				}
				web = as[0]
			}
		}
		const size = 10_000_000
		want := l.expectedSHA(size)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, which := range []string{"lan1", "lan2"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				out, err := l.Run(which, 90*time.Second, "sh", "-c",
					fmt.Sprintf("curl -sS -f -m 80 http://web.test/bytes/%d | sha256sum", size))
				switch f := strings.Fields(out); {
				case err != nil || len(f) == 0:
					errs[i] = fmt.Errorf("%s: %v: %s", which, err, out)
				case f[0] != want:
					errs[i] = fmt.Errorf("%s: sha256 %s, want %s", which, f[0], want)
				}
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatalf("concurrent 10 MB downloads: %v\n%s", err, d.Log)
			}
		}
		from := l.fetchedFrom(fmt.Sprintf("/bytes/%d", size))
		if !from[lan1IPv6] || !from[lan2IPv6] || len(from) != 2 {
			t.Fatalf("server saw the downloads from %v, want %s and %s", from, lan1IPv6, lan2IPv6)
		}
	})
	if !web.IsValid() {
		t.FailNow()
	}

	t.Run("traceroute and ping", func(t *testing.T) {
		out := l.Must("lan1", 60*time.Second, "traceroute", "-4", "-n", "-q", "1", "-w", "2", "-m", "8", web.String())
		var hops []netip.Addr
		for _, line := range strings.Split(out, "\n")[1:] {
			if f := strings.Fields(line); len(f) >= 2 {
				if a, err := netip.ParseAddr(f[1]); err == nil {
					hops = append(hops, a)
				}
			}
		}
		// The router, the IPv6 router (an ICMPv6 error source mapped into
		// the pool, RFC 6535 §2.4), the server.
		if len(hops) != 3 || hops[0] != netip.MustParseAddr("192.168.1.1") || !pool4.Contains(hops[1]) ||
			hops[1] == web || hops[2] != web {
			t.Fatalf("traceroute -4: hops %v, want [192.168.1.1, <pool address>, %v]\n%s", hops, web, out)
		}
		out = l.Must("lan2", 20*time.Second, "ping", "-4", "-c", "3", "-i", "0.2", "-W", "2", "web.test")
		if !strings.Contains(out, " 0% packet loss") {
			t.Fatalf("ping -4 web.test:\n%s", out)
		}
	})

	t.Run("PTR for the pool address", func(t *testing.T) {
		for _, c := range []struct{ which, server string }{{"lan1", routerResolver4}, {"lan2", upstreamResolver4}} {
			out := l.Must(c.which, 15*time.Second, "dig", "+short", "+time=3", "+tries=2", "@"+c.server, "-x", web.String())
			if strings.TrimSpace(out) != "web.test." {
				t.Errorf("%s: PTR of %v @%s = %q, want web.test.", c.which, web, c.server, out)
			}
		}
	})

	t.Run("router's own traffic untouched", func(t *testing.T) {
		before, err := d.Status()
		if err != nil {
			t.Fatal(err)
		}
		out := l.Must("host", 20*time.Second, "curl", "-6", "-sS", "-m", "15", "http://[2001:db8:2::2]/bytes/1000")
		if len(out) != 1000 {
			t.Fatalf("curl -6 from the router: %d bytes", len(out))
		}
		l.Must("host", 20*time.Second, "ping", "-6", "-c", "2", "-W", "2", "2001:db8:2::2")
		after, err := d.Status()
		if err != nil {
			t.Fatal(err)
		}
		if !l.fetchedFrom("/bytes/1000")["2001:db8:1::2"] {
			t.Error("the server did not see the router's own address")
		}
		tb, ta := before["translated"].(map[string]any), after["translated"].(map[string]any)
		for _, k := range []string{"4to6_packets", "6to4_packets"} {
			if tb[k] != ta[k] {
				t.Errorf("the router's own IPv6 traffic was translated: %s %v → %v", k, tb[k], ta[k])
			}
		}
	})

	t.Run("per-host pool limit", func(t *testing.T) {
		// lan1 asks for 120 AAAA-only names; it may hold 81 mappings.
		out := l.Must("lan1", 120*time.Second, "sh", "-c",
			`for i in $(seq 1 120); do dig +short +time=2 +tries=1 @`+routerResolver4+` f$i.test A | head -1; echo .; done`)
		got, refused, mapped := 0, 0, false
		for _, line := range strings.Split(out, "\n") {
			line = strings.TrimSpace(line)
			if line == "." { // one lookup ends
				if mapped {
					got++
				} else {
					refused++
				}
				mapped = false
			} else if a, err := netip.ParseAddr(line); err == nil && pool4.Contains(a) {
				mapped = true
			}
		}
		limit := 0
		st, err := d.Status()
		if err != nil {
			t.Fatal(err)
		}
		hosts, _ := st["lan_hosts"].([]any)
		held := map[string]int{}
		for _, h := range hosts {
			m := h.(map[string]any)
			held[m["ipv4"].(string)] = int(m["mappings"].(float64))
			if v, ok := m["limit"].(float64); ok {
				limit = int(v)
			}
		}
		if limit == 0 || got == 0 || refused == 0 || held["192.168.1.10"] != limit {
			t.Fatalf("lan1 flood: %d answered, %d refused; status lan_hosts %v (limit %d)\n%s", got, refused, hosts, limit, out)
		}
		// The other host still gets new mappings.
		for i := 121; i <= 125; i++ {
			as := l.digA("lan2", upstreamResolver4, fmt.Sprintf("f%d.test", i))
			if len(as) != 1 || !pool4.Contains(as[0]) {
				t.Fatalf("lan2 after lan1's flood: f%d.test A = %v", i, as)
			}
		}
		t.Logf("lan1: %d names mapped, %d refused at its limit of %d", got, refused, limit)
	})

	t.Run("restart mid-download", func(t *testing.T) {
		const size = 20_000_000
		want := l.expectedSHA(size)
		dls := []*Download{
			l.StartDownloadFrom("lan1", size, "2M", 90*time.Second),
			l.StartDownloadFrom("lan2", size, "2M", 90*time.Second),
		}
		time.Sleep(2 * time.Second)
		if err := d.Stop(); err != nil {
			t.Fatalf("stop: %v\n%s", err, d.Log)
		}
		if out := l.Must("host", 5*time.Second, "ip", "-6", "neigh", "show", "proxy"); strings.TrimSpace(out) != "" {
			t.Errorf("proxy NDP entries left after stop:\n%s", out)
		}
		if left := l.hostClean(); len(left) > 0 {
			t.Errorf("left after stop: %v", left)
		}
		for i, dl := range dls {
			if dl.Finished() {
				sha, err := dl.Wait()
				t.Fatalf("lan%d's download ended before the restart (%q, %v); the test proves nothing", i+1, sha, err)
			}
		}
		d = l.StartDaemon(routerConfig)
		for i, dl := range dls {
			if sha, err := dl.Wait(); err != nil || sha != want {
				t.Fatalf("lan%d download across the restart: %q (err %v), want %q\n%s", i+1, sha, err, want, d.Log)
			}
		}
	})
}

// TestHostAndRouter runs both modes at once: the router's own IPv4-only
// programs and its LAN hosts share the pool, the ENR and the DNS queue,
// with separate translation queues.
func TestHostAndRouter(t *testing.T) {
	l := NewRouterLab(t)
	d := l.StartDaemon(strings.Replace(routerConfig, "mode: router", "mode: host+router", 1))
	for _, which := range []string{"host", "lan1", "lan2"} {
		out, err := l.Run(which, 30*time.Second, "curl", "-4", "-sS", "-f", "-m", "20", "http://web.test/bytes/5000")
		if err != nil || len(out) != 5000 {
			t.Fatalf("%s: curl -4 web.test: %v (%d bytes)\n%s", which, err, len(out), d.Log)
		}
	}
	st, err := d.Status()
	if err != nil {
		t.Fatal(err)
	}
	by, _ := st["translated_by_mode"].(map[string]any)
	for _, mode := range []string{"host", "router"} {
		m, _ := by[mode].(map[string]any)
		if n, _ := m["4to6_packets"].(float64); n == 0 {
			t.Errorf("no %s-mode translations counted: %v", mode, by)
		}
	}
	if st["mode"] != "host+router" {
		t.Errorf("status mode %v", st["mode"])
	}
}

// TestRouterOnlyListedHosts: hosts outside router.hosts are neither
// translated nor given synthesized answers.
func TestRouterOnlyListedHosts(t *testing.T) {
	l := NewRouterLab(t)
	d := l.StartDaemon(strings.Replace(routerConfig, "  lan: [lan1, lan2]\n", "  lan: [lan1, lan2]\n  hosts: [192.168.1.0/24]\n", 1))
	as := l.digA("lan1", routerResolver4, "web.test")
	if len(as) != 1 || !pool4.Contains(as[0]) {
		t.Fatalf("lan1: web.test A = %v\n%s", as, d.Log)
	}
	if got := l.digA("lan2", "192.168.2.1", "web.test"); len(got) != 0 {
		t.Fatalf("lan2, not a listed host, got a synthesized answer: %v", got)
	}
	if out, err := l.Run("lan2", 10*time.Second, "curl", "-sS", "-m", "4", "http://"+as[0].String()+"/"); err == nil {
		t.Fatalf("lan2, not a listed host, reached the server through %v: %s", as[0], out)
	}
	l.Must("lan1", 10*time.Second, "curl", "-sS", "-f", "-m", "8", "http://"+as[0].String()+"/")
	st, err := d.Status()
	if err != nil {
		t.Fatal(err)
	}
	if hosts, _ := st["lan_hosts"].([]any); len(hosts) != 1 {
		t.Fatalf("lan_hosts %v, want lan1 only", hosts)
	}
}

// TestRouterModeRefusals: a router that cannot do the job says why, in one
// line, and leaves nothing behind.
func TestRouterModeRefusals(t *testing.T) {
	l := NewRouterLab(t)
	for _, c := range []struct {
		name, config, want string
		setup, undo        []string
	}{
		{"missing LAN link", strings.Replace(routerConfig, "[lan1, lan2]", "[lan1, lan9]", 1), "lan9", nil, nil},
		{"no prefix", strings.Replace(routerConfig, "  prefix: 2001:db8:1:0:0:64::/96\n", "", 1), "router.prefix", nil, nil},
		{"well-known prefix", strings.Replace(routerConfig, "2001:db8:1:0:0:64::/96", "64:ff9b::/96", 1), "RFC 6052", nil, nil},
		{"forwarding off", routerConfig, "net.ipv4.ip_forward=1",
			[]string{"sysctl", "-qw", "net.ipv4.ip_forward=0"}, []string{"sysctl", "-qw", "net.ipv4.ip_forward=1"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.setup != nil {
				l.Must("host", 5*time.Second, c.setup...)
				defer l.Must("host", 5*time.Second, c.undo...)
			}
			out, err := l.RunDaemonOnce(c.config, 20*time.Second)
			if err == nil || !strings.Contains(out, c.want) {
				t.Fatalf("daemon: err %v, output lacks %q:\n%s", err, c.want, out)
			}
			if left := l.hostClean(); len(left) > 0 {
				t.Fatalf("left after a refused start: %v", left)
			}
		})
	}
}
