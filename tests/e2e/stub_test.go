package e2e

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/bih-nfq/bih-nfq/internal/testenv"
)

// TestStubMode: with dns.mode stub the daemon is a resolver on 127.0.0.35
// (RFC 6535 Appendix A style) forwarding to the host's resolv.conf
// nameservers; programs asking it get synthesized answers and reach the
// server, and the host's other DNS traffic is no longer intercepted.
func TestStubMode(t *testing.T) {
	testenv.RequireCommand(t, "dig")
	l := NewLab(t)
	d := l.StartDaemon("dns:\n  mode: stub\n")
	out := l.Must("host", 15*time.Second, "dig", "+short", "+time=3", "+tries=2", "@127.0.0.35", "web.test", "A")
	a, err := netip.ParseAddr(strings.TrimSpace(out))
	if err != nil || !defaultPool.Contains(a) {
		t.Fatalf("stub: web.test A = %q, want a pool address\n%s", out, d.Log)
	}
	if got := l.Must("host", 20*time.Second, "curl", "-4", "-sS", "-f", "-m", "15", "http://"+a.String()+"/bytes/3000"); len(got) != 3000 {
		t.Fatalf("curl through the stub's answer: %d bytes", len(got))
	}
	if out := l.Must("host", 15*time.Second, "dig", "+short", "+time=3", "+tries=2", "@127.0.0.35", "dual.test", "A"); strings.TrimSpace(out) != "192.0.2.80" {
		t.Fatalf("stub: dual.test A = %q, want its real A record", out)
	}
	// Asked directly, the resolver's NODATA passes untouched: no rule
	// queues the host's DNS in stub mode.
	if out := l.Must("host", 15*time.Second, "dig", "+short", "+time=3", "+tries=2", "@2001:db8:2::2", "web.test", "A"); strings.TrimSpace(out) != "" {
		t.Fatalf("direct query answered %q: intercepted in stub mode", out)
	}
	st, err := d.Status()
	if err != nil {
		t.Fatal(err)
	}
	if dns, _ := st["dns"].(map[string]any); dns["queries"] != float64(0) {
		t.Fatalf("DNS queue saw queries in stub mode: %v", dns)
	}
}
