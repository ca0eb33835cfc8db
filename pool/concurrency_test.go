package pool

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestConcurrentDataPath runs the lock-free lookups against allocation,
// reclamation, expiry, flush and table rebuilds (small pools make the hash
// table rebuild often) so the race detector sees every interleaving class.
// A lookup that succeeds must return a pool address or an IPv6 address the
// writer used.
func TestConcurrentDataPath(t *testing.T) {
	clk := newFakeClock()
	cfg := testConfig(clk)
	cfg.Pools = smallPools()
	cfg.RequesterRate = -1
	cfg.Grace = time.Second
	cfg.MaxTTL = time.Second
	cfg.ReclaimIdle = 2 * time.Second
	cfg.IdleTimeout = 4 * time.Second
	cfg.ClockResolution = time.Millisecond
	cfg.StateDir = t.TempDir()
	cfg.noSync = true
	cfg.compactAfter = 32
	p := mustNew(t, cfg)
	sub, _ := p.Subscribe(8)

	const universe = 64
	var stop atomic.Bool
	var wg sync.WaitGroup
	var hits atomic.Int64
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			i := w
			for !stop.Load() {
				i++
				v6 := v6n(i % universe).As16()
				if v4, ok := p.To4(v6); ok {
					hits.Add(1)
					if !p.InPool(netip.AddrFrom4(v4)) {
						t.Errorf("To4 returned %v outside the pools", netip.AddrFrom4(v4))
						return
					}
				}
				a := netip.AddrFrom4([4]byte{192, 0, 2, byte(i % 8)}).As4()
				if got, ok := p.To6(a); ok && got[0] != 0x20 {
					t.Errorf("To6 returned %x", got)
					return
				}
				p.ErrorSourceTo4(v6n(500 + i%4).As16())
			}
		}()
	}
	wg.Add(1)
	go func() { // a subscriber that is slow on purpose
		defer wg.Done()
		for range sub.Events() {
			time.Sleep(10 * time.Microsecond)
		}
	}()
	deadline := time.Now().Add(time.Second)
	for n := 0; time.Now().Before(deadline); n++ {
		_, _ = p.MapIPv6(v6n(n%universe), client1, time.Second) // ErrExhausted is expected under pressure
		switch n % 50 {
		case 10:
			advance(p, clk, 3*time.Second)
		case 20:
			p.Sweep()
		case 30:
			p.Stats()
			p.Snapshot()
		case 49:
			if n%500 == 49 {
				p.Flush()
			}
		}
	}
	stop.Store(true)
	sub.Close()
	wg.Wait()
	if hits.Load() == 0 {
		t.Fatal("readers never hit a mapping")
	}
	checkBijection(t, p)
}
