package pool

import (
	"errors"
	"net/netip"
	"testing"
	"time"
)

func smallPools() []netip.Prefix {
	return []netip.Prefix{netip.MustParsePrefix("192.0.2.0/29"), netip.MustParsePrefix("198.51.100.0/29")}
}

// TestExhaustionAndReclamationOrder fills both pools, shows refusals while
// nothing may be reclaimed, then reclamation in LRU order among mappings past
// their DNS lifetime and idle, never touching one with recent traffic.
func TestExhaustionAndReclamationOrder(t *testing.T) {
	clk := newFakeClock()
	cfg := testConfig(clk)
	cfg.Pools = smallPools() // 6 + 6 usable
	cfg.Grace = time.Minute
	cfg.ReclaimIdle = 5 * time.Minute
	cfg.RequesterRate = -1
	p := mustNew(t, cfg)
	sub, _ := p.Subscribe(256)

	var v4s []netip.Addr
	for i := range 12 {
		v4 := mustMap(t, p, v6n(i), client1, 0)
		pool := cfg.Pools[0]
		if i >= 6 {
			pool = cfg.Pools[1] // primary full: the secondary follows
		}
		if !pool.Contains(v4) {
			t.Fatalf("mapping %d got %v, want from %v", i, v4, pool)
		}
		v4s = append(v4s, v4)
	}
	checkBijection(t, p) // includes: no network or broadcast address
	if _, err := p.MapIPv6(v6n(100), client1, 0); !errors.Is(err, ErrExhausted) {
		t.Fatalf("full pool, inside DNS lifetimes: %v", err)
	}
	// Lifetimes over (1 min grace) but idle for less than ReclaimIdle.
	advance(p, clk, 2*time.Minute)
	if _, err := p.MapIPv6(v6n(100), client1, 0); !errors.Is(err, ErrExhausted) {
		t.Fatalf("full pool, recently used: %v", err)
	}
	// Traffic in a known order: perm[0] least recently used. hot keeps
	// carrying traffic throughout.
	perm := []int{7, 2, 11, 0, 5, 9, 1, 4, 10, 3, 6}
	hot := 8
	for _, i := range perm {
		advance(p, clk, 10*time.Second)
		p.To6(v4s[i].As4())
	}
	advance(p, clk, 5*time.Minute)
	for len(sub.Events()) > 0 {
		<-sub.Events()
	}
	for n, i := range perm {
		p.To4(v6n(hot).As16())
		got := mustMap(t, p, v6n(200+n), client1, time.Hour)
		if got != v4s[i] {
			t.Fatalf("reclamation %d took %v, want %v (LRU)", n, got, v4s[i])
		}
		if _, ok := p.To4(v6n(i).As16()); ok {
			t.Fatalf("reclaimed mapping %d still resolves", i)
		}
		if ev := <-sub.Events(); ev.Kind != Removed || ev.Cause != Reclaimed || ev.Mapping.V4 != v4s[i] {
			t.Fatalf("event %+v, want reclaimed %v", ev, v4s[i])
		}
		if ev := <-sub.Events(); ev.Kind != Added || ev.Mapping.V4 != v4s[i] {
			t.Fatalf("event %+v, want added %v", ev, v4s[i])
		}
		advance(p, clk, 10*time.Second)
	}
	// Only the hot mapping and fresh ones are left: refused.
	if _, err := p.MapIPv6(v6n(300), client1, 0); !errors.Is(err, ErrExhausted) {
		t.Fatalf("after reclaiming all idle: %v", err)
	}
	if got, ok := p.To6(v4s[hot].As4()); !ok || got != v6n(hot).As16() {
		t.Fatal("the mapping with recent traffic was reclaimed")
	}
	st := p.Stats()
	if st.Reclamations != uint64(len(perm)) || st.Refused.Exhausted != 3 {
		t.Fatalf("reclamations %d (want %d), exhausted %d (want 3)", st.Reclamations, len(perm), st.Refused.Exhausted)
	}
	checkBijection(t, p)
}

// TestFillDefaultPools fills both default /20 pools completely.
func TestFillDefaultPools(t *testing.T) {
	clk := newFakeClock()
	cfg := testConfig(clk)
	cfg.RequesterRate = -1
	p := mustNew(t, cfg)
	const usable = 2 * (4096 - 2)
	for i := range usable {
		if _, err := p.MapIPv6(v6n(i), client1, time.Minute); err != nil {
			t.Fatalf("mapping %d: %v", i, err)
		}
	}
	if _, err := p.MapIPv6(v6n(usable), client1, time.Minute); !errors.Is(err, ErrExhausted) {
		t.Fatalf("pool of %d full: %v", usable, err)
	}
	if ms := checkBijection(t, p); len(ms) != usable {
		t.Fatalf("%d mappings", len(ms))
	}
	for _, a := range []string{"10.170.160.0", "10.170.175.255", "172.21.80.0", "172.21.95.255"} {
		if _, ok := p.LookupIPv4(netip.MustParseAddr(a)); ok {
			t.Fatalf("%s handed out", a)
		}
	}
	st := p.Stats()
	if st.Pools[0].Free != 0 || st.Pools[1].Free != 0 || st.Mappings != usable {
		t.Fatalf("stats %+v", st.Pools)
	}
	// Past lifetimes and idle: one reclamation (the scan over 8,188 slots).
	advance(p, clk, time.Hour)
	if _, err := p.MapIPv6(v6n(usable), client1, time.Minute); err != nil {
		t.Fatalf("after idle: %v", err)
	}
}

// TestRequesterLimits: RFC 6535 §6.3 per-requester rate and share stop a
// noisy client while another still gets mappings.
func TestRequesterLimits(t *testing.T) {
	t.Run("rate", func(t *testing.T) {
		clk := newFakeClock()
		cfg := testConfig(clk)
		cfg.RequesterRate = 1
		cfg.RequesterBurst = 5
		p := mustNew(t, cfg)
		noisy := netip.MustParseAddr("192.168.1.66")
		for i := range 5 {
			mustMap(t, p, v6n(i), noisy, time.Hour)
		}
		if _, err := p.MapIPv6(v6n(5), noisy, time.Hour); !errors.Is(err, ErrRateLimited) || DropReason(err).String() != "pool_rate_limited" {
			t.Fatalf("noisy sixth: %v", err)
		}
		// Refreshing existing mappings is not limited.
		mustMap(t, p, v6n(0), noisy, time.Hour)
		for i := 10; i < 13; i++ {
			mustMap(t, p, v6n(i), client2, time.Hour)
		}
		advance(p, clk, time.Second)
		mustMap(t, p, v6n(5), noisy, time.Hour)
		if _, err := p.MapIPv6(v6n(6), noisy, time.Hour); !errors.Is(err, ErrRateLimited) {
			t.Fatalf("noisy after one token: %v", err)
		}
		if st := p.Stats(); st.Refused.RateLimited != 2 {
			t.Fatalf("rate limited %d", st.Refused.RateLimited)
		}
	})
	t.Run("share", func(t *testing.T) {
		clk := newFakeClock()
		cfg := testConfig(clk)
		cfg.Pools = smallPools()
		cfg.RequesterRate = -1
		cfg.RequesterShare = 0.25 // 3 of 12
		cfg.IdleTimeout = time.Hour
		p := mustNew(t, cfg)
		noisy := netip.MustParseAddr("192.168.1.66")
		for i := range 3 {
			mustMap(t, p, v6n(i), noisy, time.Minute)
		}
		if _, err := p.MapIPv6(v6n(3), noisy, time.Minute); !errors.Is(err, ErrQuota) || DropReason(err).String() != "pool_quota" {
			t.Fatalf("noisy fourth: %v", err)
		}
		for i := 10; i < 13; i++ {
			mustMap(t, p, v6n(i), client2, time.Minute)
		}
		// The noisy client's mappings expire; it may map again.
		advance(p, clk, 2*time.Hour)
		p.Sweep()
		mustMap(t, p, v6n(3), noisy, time.Minute)
		if st := p.Stats(); st.Refused.Quota != 1 {
			t.Fatalf("quota refusals %d", st.Refused.Quota)
		}
	})
}
