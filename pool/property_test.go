package pool

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

// modelMapping is what the test knows about a mapping it created.
type modelMapping struct {
	v4        netip.Addr
	expiry    time.Time // end of the DNS lifetime as the pool computes it
	journaled time.Time // expiry as persisted (restored after a restart)
	lastUse   time.Time
	errSrc    bool
}

// TestPropertyRandomOperations drives random sequences of allocate, touch,
// clock advance (expire), sweep, reclaim (by pressure), flush, host overlap
// changes and restart against a model, checking after every step that the
// table is a bijection matching the model and that a mapping only ever
// disappears when it was past its DNS lifetime and idle for ReclaimIdle
// (never with recent traffic), or on flush.
func TestPropertyRandomOperations(t *testing.T) {
	seeds := 40
	if testing.Short() {
		seeds = 8
	}
	var total propertyCounts
	for seed := range seeds {
		c := runProperty(t, uint64(seed), 300)
		total.vanished += c.vanished
		total.restarts += c.restarts
		total.exhausted += c.exhausted
		total.flushes += c.flushes
	}
	// The sequences must actually exercise reclamation/expiry, refusals,
	// flushes and restarts, or the invariants prove little.
	if total.vanished == 0 || total.restarts == 0 || total.exhausted == 0 || total.flushes == 0 {
		t.Fatalf("random sequences too tame: %+v", total)
	}
	t.Logf("%+v", total)
}

type propertyCounts struct{ vanished, restarts, exhausted, flushes int }

func runProperty(t *testing.T, seed uint64, steps int) (c propertyCounts) {
	rng := rand.New(rand.NewPCG(seed, 0x6535))
	clk := newFakeClock()
	cfg := testConfig(clk)
	cfg.Pools = smallPools()
	cfg.Grace = time.Minute
	cfg.MaxTTL = 10 * time.Minute
	cfg.ReclaimIdle = 2 * time.Minute
	cfg.IdleTimeout = 10 * time.Minute
	cfg.RequesterRate = -1
	cfg.ErrorSourceRate = -1
	cfg.ErrorSourceLifetime = time.Minute
	cfg.StateDir = t.TempDir()
	cfg.noSync = true
	cfg.compactAfter = 16
	static := StaticMapping{V4: netip.MustParseAddr("192.0.2.4"), V6: netip.MustParseAddr("2001:db8::4")}
	cfg.Static = []StaticMapping{static}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { p.Close() }()

	model := map[netip.Addr]*modelMapping{}
	var overlap []netip.Prefix
	slack := refreshSlack
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d: "+format, append([]any{seed}, args...)...)
	}
	eligible := func(v4 netip.Addr) bool {
		for _, h := range overlap {
			if h.Overlaps(netip.PrefixFrom(v4, 32)) {
				return len(overlap) == 2 // both avoided: all used
			}
		}
		return true
	}
	reclaimable := func(m *modelMapping, now time.Time) bool {
		return !now.Before(m.expiry) && now.Sub(m.lastUse) >= cfg.ReclaimIdle
	}
	universe := 30
	for step := range steps {
		now := clk.Now()
		op := rng.IntN(100)
		switch {
		case op < 40: // allocate or refresh
			v6 := v6n(rng.IntN(universe))
			ttl := time.Duration(rng.IntN(15)) * time.Minute
			req := netip.AddrFrom4([4]byte{192, 168, 0, byte(rng.IntN(3))})
			v4, err := p.MapIPv6(v6, req, ttl)
			m := model[v6]
			switch {
			case err == nil:
				if m != nil && m.v4 != v4 {
					fail("step %d: %v moved from %v to %v while alive", step, v6, m.v4, v4)
				}
				if m == nil {
					m = &modelMapping{v4: v4, lastUse: now}
					model[v6] = m
				}
				m.errSrc = false
				if exp := now.Add(min(ttl, cfg.MaxTTL) + cfg.Grace); exp.After(m.expiry) {
					m.expiry = exp
				}
				if m.expiry.After(m.journaled) {
					m.journaled = m.expiry.Add(slack)
				}
			case errors.Is(err, ErrExhausted):
				c.exhausted++
				if m != nil {
					fail("step %d: refused a mapping that exists", step)
				}
				free, canReclaim := 0, false
				in := 0
				for _, pf := range cfg.Pools {
					if eligible(pf.Addr()) {
						free += 6
					}
				}
				for _, mm := range model {
					if p.InPool(mm.v4) && eligible(mm.v4) {
						in++
						canReclaim = canReclaim || reclaimable(mm, now)
					}
				}
				if eligible(static.V4) {
					in++
				}
				if in < free || canReclaim {
					fail("step %d: ErrExhausted with %d of %d used, reclaimable=%v", step, in, free, canReclaim)
				}
			default:
				fail("step %d: MapIPv6: %v", step, err)
			}
		case op < 60: // traffic through one mapping, either direction
			for v6, m := range model {
				if rng.IntN(2) == 0 {
					if got, ok := p.To4(v6.As16()); !ok || netip.AddrFrom4(got) != m.v4 {
						fail("step %d: To4(%v) = %v,%v want %v", step, v6, got, ok, m.v4)
					}
				} else if got, ok := p.To6(m.v4.As4()); !ok || got != v6.As16() {
					fail("step %d: To6(%v) = %v,%v", step, m.v4, got, ok)
				}
				m.lastUse = now
				break
			}
		case op < 65: // an ICMPv6 error from an unmapped router
			v6 := v6n(1000 + rng.IntN(5))
			if _, ok := model[v6]; ok {
				break
			}
			if v4, ok := p.ErrorSourceTo4(v6.As16()); ok {
				model[v6] = &modelMapping{v4: netip.AddrFrom4(v4), lastUse: now, expiry: now.Add(cfg.ErrorSourceLifetime), errSrc: true}
			}
		case op < 83:
			advance(p, clk, time.Duration(rng.IntN(240))*time.Second)
		case op < 90:
			p.Sweep()
		case op < 92:
			p.Flush()
			clear(model)
			c.flushes++
		case op < 95:
			switch rng.IntN(3) {
			case 0:
				overlap = nil
			case 1:
				overlap = cfg.Pools[:1]
			case 2:
				overlap = cfg.Pools
			}
			p.SetHostOverlap(overlap)
		default: // restart
			c.restarts++
			if err := p.Close(); err != nil {
				fail("step %d: Close: %v", step, err)
			}
			if p, err = New(cfg); err != nil {
				fail("step %d: New: %v", step, err)
			}
			p.SetHostOverlap(overlap)
			for v6, m := range model {
				if m.errSrc {
					delete(model, v6) // not persisted
					continue
				}
				m.expiry = m.journaled
			}
		}
		// Invariants.
		ms := checkBijection(t, p)
		got := map[netip.Addr]netip.Addr{}
		for _, m := range ms {
			got[m.V6] = m.V4
		}
		if got[static.V6] != static.V4 {
			fail("step %d: static mapping lost", step)
		}
		now = clk.Now()
		for v6, m := range model {
			v4, ok := got[v6]
			if ok && v4 == m.v4 {
				continue
			}
			if !reclaimable(m, now) {
				fail("step %d: %v→%v vanished with recent traffic or inside its DNS lifetime (last use %v ago, expiry in %v)",
					step, v6, m.v4, now.Sub(m.lastUse), m.expiry.Sub(now))
			}
			delete(model, v6)
			c.vanished++
		}
		for v6 := range got {
			if _, ok := model[v6]; !ok && v6 != static.V6 {
				fail("step %d: unknown mapping for %v", step, v6)
			}
		}
	}
	return c
}
