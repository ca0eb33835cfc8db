package enr

import (
	"context"
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

// Side results are cached per resolver: a router's LAN hosts may use
// resolvers with different views, and one's answer (or NXDOMAIN) must not
// stand for another's.
func TestSideCachePerResolver(t *testing.T) {
	up := newFakeUpstream()
	up.set("web.test.", dns.TypeAAAA, dns.RcodeSuccess, []string{"web.test. 300 IN AAAA 2001:db8::1"}, nil)
	e := newTestENR(t, DefaultConfig(), newFakeMapper(0), up)
	plan := QueryPlan{Kind: QueryA, Name: "web.test.", Type: dns.TypeAAAA}
	a, b := netip.MustParseAddrPort("192.0.2.1:53"), netip.MustParseAddrPort("[2001:db8::53]:53")
	for _, s := range []netip.AddrPort{a, a, b, b} {
		if _, err := e.Lookup(context.Background(), plan, s); err != nil {
			t.Fatal(err)
		}
	}
	up.mu.Lock()
	servers := append([]netip.AddrPort(nil), up.servers...)
	up.mu.Unlock()
	if len(servers) != 2 || servers[0] != a || servers[1] != b {
		t.Fatalf("upstream asked at %v, want once at each of %v and %v", servers, a, b)
	}
}
