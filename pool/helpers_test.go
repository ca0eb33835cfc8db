package pool

import (
	"bytes"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock safe for concurrent use.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// logBuffer collects log output from several goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) Contains(s string) bool { return strings.Contains(l.String(), s) }

var discardLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

// testConfig returns a config on a fake clock with background sweeps
// effectively off, so tests decide when things expire.
func testConfig(clk *fakeClock) Config {
	return Config{
		Clock:         clk.Now,
		Logger:        discardLogger,
		SweepInterval: 1000 * time.Hour,
	}
}

func mustNew(t testing.TB, cfg Config) *Pool {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

// advance moves the fake clock and the pool's coarse clock, as the ticker
// would.
func advance(p *Pool, clk *fakeClock, d time.Duration) {
	clk.Add(d)
	p.tick()
}

// v6n returns a distinct global IPv6 address for n.
func v6n(n int) netip.Addr {
	var b [16]byte
	b[0], b[1], b[2], b[3] = 0x20, 0x01, 0x0d, 0xb8
	b[12], b[13], b[14], b[15] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	b[11] = 1
	return netip.AddrFrom16(b)
}

func mustMap(t testing.TB, p *Pool, v6, req netip.Addr, ttl time.Duration) netip.Addr {
	t.Helper()
	v4, err := p.MapIPv6(v6, req, ttl)
	if err != nil {
		t.Fatalf("MapIPv6(%v): %v", v6, err)
	}
	return v4
}

var (
	client1 = netip.MustParseAddr("172.21.112.1")
	client2 = netip.MustParseAddr("172.21.112.2")
)

// checkBijection verifies that the table, the slots and the lookups agree
// and that no network or broadcast address is in use.
func checkBijection(t testing.TB, p *Pool) []Mapping {
	t.Helper()
	ms := p.Snapshot()
	seen4 := map[netip.Addr]bool{}
	seen6 := map[netip.Addr]bool{}
	for _, m := range ms {
		if seen4[m.V4] || seen6[m.V6] {
			t.Fatalf("duplicate in snapshot: %v→%v", m.V4, m.V6)
		}
		seen4[m.V4], seen6[m.V6] = true, true
		if got, ok := p.LookupIPv4(m.V4); !ok || got != m.V6 {
			t.Fatalf("LookupIPv4(%v) = %v,%v; want %v", m.V4, got, ok, m.V6)
		}
		if got, ok := p.tab.Load().find(ptr16(m.V6)), true; !ok || got == nil || got.v4 != m.V4.As4() {
			t.Fatalf("table lookup of %v disagrees with snapshot (%v)", m.V6, m.V4)
		}
		for _, pf := range p.cfg.Pools {
			if pf.Contains(m.V4) && (m.V4 == pf.Addr() || m.V4 == lastAddr(pf)) {
				t.Fatalf("network or broadcast address %v handed out (%v)", m.V4, pf)
			}
		}
	}
	if live := p.tab.Load().live; live != len(ms) {
		t.Fatalf("table holds %d entries, snapshot %d", live, len(ms))
	}
	return ms
}

func ptr16(a netip.Addr) *[16]byte {
	b := a.As16()
	return &b
}

func lastAddr(pf netip.Prefix) netip.Addr {
	b := pf.Addr().As4()
	u := be32(b) | (1<<(32-pf.Bits()) - 1)
	return netip.AddrFrom4([4]byte{byte(u >> 24), byte(u >> 16), byte(u >> 8), byte(u)})
}
