package enr

import (
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"
)

// dualStack returns an A query for dual.bih.test., its upstream A response
// (a real 192.0.2.80) and its AAAA response.
func dualStack() (q, a, aaaa *dns.Msg) {
	q = query("dual.bih.test.", dns.TypeA)
	a = reply(q, dns.RcodeSuccess, []string{"dual.bih.test. 300 IN A 192.0.2.80"}, nil)
	aq := query("dual.bih.test.", dns.TypeAAAA)
	aaaa = reply(aq, dns.RcodeSuccess, []string{"dual.bih.test. 300 IN AAAA 2001:db8:2::2"}, nil)
	return q, a, aaaa
}

func TestSetExclusions(t *testing.T) {
	e := newTestENR(t, DefaultConfig(), newFakeMapper(16), newFakeUpstream())
	q, a, aaaa := dualStack()
	plan := e.Plan(q)
	// RFC 6535 §2.3: a real, non-excluded A answer is never replaced.
	if out := e.Answer(q, plan, a, aaaa, netip.Addr{}, 512); out != nil {
		t.Fatalf("real A replaced before the exclusion was set:\n%v", out)
	}

	excludeA := append(slices.Clone(DefaultExcludeA), netip.MustParsePrefix("192.0.2.0/24"))
	if err := e.SetExclusions(excludeA, DefaultExcludeAAAA); err != nil {
		t.Fatal(err)
	}
	excludeA[0] = netip.MustParsePrefix("203.0.113.0/24") // the ENR keeps its own copy
	gotA, gotAAAA := e.Exclusions()
	if !slices.Contains(gotA, netip.MustParsePrefix("192.0.2.0/24")) || slices.Contains(gotA, excludeA[0]) ||
		!slices.Equal(gotAAAA, DefaultExcludeAAAA) {
		t.Fatalf("Exclusions() = %v, %v", gotA, gotAAAA)
	}
	// §2.3.1: every real A is now excluded, so the A answer is synthesized.
	want := expect(q, dns.RcodeSuccess, "dual.bih.test. 300 IN A 10.170.160.1")
	sameMsg(t, e.Answer(q, plan, a, aaaa, netip.Addr{}, 512), want)

	// Excluding the AAAA leaves nothing to map: the real answer passes.
	if err := e.SetExclusions(excludeA, []netip.Prefix{netip.MustParsePrefix("2001:db8:2::/64")}); err != nil {
		t.Fatal(err)
	}
	if out := e.Answer(q, plan, a, aaaa, netip.Addr{}, 512); out != nil && len(out.Answer) > 0 {
		t.Fatalf("excluded AAAA mapped:\n%v", out)
	}

	// Back to the defaults: the real A answer is kept again.
	if err := e.SetExclusions(DefaultExcludeA, DefaultExcludeAAAA); err != nil {
		t.Fatal(err)
	}
	if out := e.Answer(q, plan, a, aaaa, netip.Addr{}, 512); out != nil {
		t.Fatalf("real A replaced after the exclusion was removed:\n%v", out)
	}
}

func TestSetExclusionsRejects(t *testing.T) {
	e := newTestENR(t, DefaultConfig(), newFakeMapper(16), newFakeUpstream())
	v4 := netip.MustParsePrefix("192.0.2.0/24")
	v6 := netip.MustParsePrefix("2001:db8::/32")
	for _, tc := range []struct {
		name    string
		a, aaaa []netip.Prefix
		want    string
	}{
		{"IPv6 in A set", []netip.Prefix{v6}, nil, "exclude A 2001:db8::/32"},
		{"IPv4 in AAAA set", nil, []netip.Prefix{v4}, "exclude AAAA 192.0.2.0/24"},
		{"zero prefix", []netip.Prefix{{}}, nil, "not an IPv4 prefix"},
	} {
		err := e.SetExclusions(tc.a, tc.aaaa)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "set exclusions: ") {
			t.Errorf("%s: error = %v, want one containing %q", tc.name, err, tc.want)
		}
	}
	// A refused change leaves the sets as they were.
	a, aaaa := e.Exclusions()
	if !slices.Equal(a, DefaultExcludeA) || !slices.Equal(aaaa, DefaultExcludeAAAA) {
		t.Errorf("sets changed by refused calls: %v, %v", a, aaaa)
	}
	// Empty sets are allowed: pool addresses stay excluded regardless.
	if err := e.SetExclusions(nil, nil); err != nil {
		t.Fatal(err)
	}
	q := query("p.bih.test.", dns.TypeA)
	ra := reply(q, dns.RcodeSuccess, []string{"p.bih.test. 300 IN A 10.170.163.3"}, nil)
	raaaa := reply(query("p.bih.test.", dns.TypeAAAA), dns.RcodeSuccess, []string{"p.bih.test. 300 IN AAAA 2001:db8::9"}, nil)
	out := e.Answer(q, e.Plan(q), ra, raaaa, netip.Addr{}, 512)
	if onlyA(out) != "10.170.160.1" {
		t.Errorf("pool address in a real A answer not treated as excluded: %v", out)
	}
}

// TestSetExclusionsConcurrent changes the sets while answers are built
// (meant for -race). Each answer matches one of the two configurations:
// untouched (192.0.2.0/24 not excluded) or synthesized (excluded).
func TestSetExclusionsConcurrent(t *testing.T) {
	e := newTestENR(t, DefaultConfig(), newFakeMapper(16), newFakeUpstream())
	with := append(slices.Clone(DefaultExcludeA), netip.MustParsePrefix("192.0.2.0/24"))
	var (
		wg                     sync.WaitGroup
		stop                   atomic.Bool
		kept, synthesized, bad atomic.Int64
	)
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				q, a, aaaa := dualStack()
				out := e.Answer(q, e.Plan(q), a, aaaa, netip.Addr{}, 512)
				switch {
				case out == nil:
					kept.Add(1)
				case onlyA(out) == "10.170.160.1":
					synthesized.Add(1)
				default:
					bad.Add(1)
				}
			}
		})
	}
	for i := 0; i < 1000 || kept.Load() == 0 || synthesized.Load() == 0; i++ {
		set := DefaultExcludeA
		if i%2 == 0 {
			set = with
		}
		if err := e.SetExclusions(set, DefaultExcludeAAAA); err != nil {
			t.Error(err)
			break
		}
		if i > 1_000_000 {
			break // the readers never saw both settings; reported below
		}
	}
	stop.Store(true)
	wg.Wait()
	if bad.Load() != 0 || kept.Load() == 0 || synthesized.Load() == 0 {
		t.Errorf("answers: %d kept, %d synthesized, %d wrong; want both kinds and none wrong",
			kept.Load(), synthesized.Load(), bad.Load())
	}
}

// onlyA returns the address of out's single A record, or "".
func onlyA(out *dns.Msg) string {
	if out == nil || len(out.Answer) != 1 {
		return ""
	}
	if a, ok := out.Answer[0].(*dns.A); ok {
		return a.A.String()
	}
	return ""
}
