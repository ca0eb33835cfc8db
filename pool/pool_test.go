package pool

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/bih-nfq/bih-nfq/internal/drop"
)

func TestMapIPv6StableAndEndpointIndependent(t *testing.T) {
	clk := newFakeClock()
	p := mustNew(t, testConfig(clk))
	a := v6n(1)
	v4 := mustMap(t, p, a, client1, time.Minute)
	if !DefaultPrimary.Contains(v4) {
		t.Fatalf("first mapping %v not from the primary pool %v", v4, DefaultPrimary)
	}
	// RFC 6535 §6.2: the same IPv6 address gets the same IPv4 address
	// whoever asks.
	if again := mustMap(t, p, a, client2, time.Minute); again != v4 {
		t.Fatalf("second request got %v, want %v", again, v4)
	}
	b4 := mustMap(t, p, v6n(2), client1, time.Minute)
	if b4 == v4 {
		t.Fatalf("two IPv6 addresses share %v", v4)
	}
	if got, ok := p.To6(v4.As4()); !ok || got != a.As16() {
		t.Fatalf("To6(%v) = %v,%v", v4, got, ok)
	}
	if got, ok := p.To4(a.As16()); !ok || got != v4.As4() {
		t.Fatalf("To4(%v) = %v,%v", a, got, ok)
	}
	if got, ok := p.LookupIPv4(v4); !ok || got != a {
		t.Fatalf("LookupIPv4 = %v,%v", got, ok)
	}
	if _, ok := p.To4(v6n(99).As16()); ok {
		t.Fatal("To4 of an unmapped address succeeded")
	}
	if _, ok := p.To6(netip.MustParseAddr("10.170.175.200").As4()); ok {
		t.Fatal("To6 of an unused pool address succeeded")
	}
	if !p.InPool(netip.MustParseAddr("10.170.175.255")) || !p.InPool(netip.MustParseAddr("172.21.80.0")) {
		t.Fatal("InPool false inside a pool")
	}
	if p.InPool(netip.MustParseAddr("10.170.176.0")) || p.InPool(v6n(1)) {
		t.Fatal("InPool true outside the pools")
	}
	if st := p.Stats(); st.Allocations != 2 || st.Mappings != 2 {
		t.Fatalf("stats: %+v", st)
	}
	checkBijection(t, p)
}

func TestMapIPv6RejectsUnmappable(t *testing.T) {
	p := mustNew(t, testConfig(newFakeClock()))
	for _, s := range []string{"192.0.2.1", "::", "::1", "ff02::1", "fe80::1", "::ffff:192.0.2.1"} {
		_, err := p.MapIPv6(netip.MustParseAddr(s), client1, time.Minute)
		if !errors.Is(err, ErrInvalidAddress) {
			t.Errorf("MapIPv6(%s) error = %v, want ErrInvalidAddress", s, err)
		}
	}
	if _, err := p.MapIPv6(netip.Addr{}, client1, time.Minute); !errors.Is(err, ErrInvalidAddress) {
		t.Errorf("zero Addr: %v", err)
	}
}

func TestConfigValidation(t *testing.T) {
	bad := []Config{
		{Pools: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
		{Pools: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/24")}},
		{Pools: []netip.Prefix{netip.MustParsePrefix("2001:db8::/120")}},
		{Pools: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24"), netip.MustParsePrefix("10.0.0.128/25")}},
		{Pools: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/31")}},
		{Grace: -time.Second},
		{ReclaimIdle: 3 * time.Hour, IdleTimeout: time.Hour},
		{ReclaimIdle: time.Second, ClockResolution: time.Second},
		{RequesterShare: 1.5},
		{Static: []StaticMapping{{V4: netip.MustParseAddr("10.170.160.0"), V6: v6n(1)}}},   // network address
		{Static: []StaticMapping{{V4: netip.MustParseAddr("10.170.175.255"), V6: v6n(1)}}}, // broadcast
		{Static: []StaticMapping{{V4: netip.MustParseAddr("192.0.2.1"), V6: v6n(1)}, {V4: netip.MustParseAddr("192.0.2.2"), V6: v6n(1)}}},
		{Static: []StaticMapping{{V4: netip.MustParseAddr("192.0.2.1"), V6: v6n(1)}, {V4: netip.MustParseAddr("192.0.2.1"), V6: v6n(2)}}},
		{Static: []StaticMapping{{V4: netip.MustParseAddr("192.0.2.1"), V6: netip.MustParseAddr("ff02::1")}}},
	}
	for i, c := range bad {
		c.Logger = discardLogger
		if p, err := New(c); err == nil {
			p.Close()
			t.Errorf("config %d accepted: %+v", i, c)
		}
	}
}

func TestStaticMappingsNeverExpireNorReclaimed(t *testing.T) {
	clk := newFakeClock()
	cfg := testConfig(clk)
	cfg.Pools = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/29")} // 6 usable
	in := StaticMapping{V4: netip.MustParseAddr("192.0.2.3"), V6: netip.MustParseAddr("2001:db8::53")}
	out := StaticMapping{V4: netip.MustParseAddr("198.51.100.7"), V6: netip.MustParseAddr("2001:db8::80")}
	cfg.Static = []StaticMapping{in, out}
	p := mustNew(t, cfg)
	for _, s := range cfg.Static {
		if got, ok := p.To6(s.V4.As4()); !ok || got != s.V6.As16() {
			t.Fatalf("static %v: To6 = %v,%v", s.V4, got, ok)
		}
		if got, ok := p.To4(s.V6.As16()); !ok || got != s.V4.As4() {
			t.Fatalf("static %v: To4 = %v,%v", s.V6, got, ok)
		}
		// Asking for a static IPv6 address returns the static mapping.
		if v4 := mustMap(t, p, s.V6, client1, time.Minute); v4 != s.V4 {
			t.Fatalf("MapIPv6(static %v) = %v", s.V6, v4)
		}
	}
	if p.InPool(out.V4) {
		t.Fatal("a static address outside the pools is reported InPool")
	}
	// Fill the 5 remaining addresses, let all lifetimes pass, then force
	// reclamation: the static address must never be picked.
	for i := range 5 {
		if v4 := mustMap(t, p, v6n(i), client1, time.Second); v4 == in.V4 {
			t.Fatalf("static address %v handed out", v4)
		}
	}
	advance(p, clk, 24*time.Hour)
	for i := 5; i < 20; i++ {
		if v4 := mustMap(t, p, v6n(i), client1, time.Second); v4 == in.V4 {
			t.Fatalf("static address %v reclaimed", v4)
		}
		advance(p, clk, time.Hour)
	}
	advance(p, clk, 1000*time.Hour)
	p.Sweep()
	for _, s := range cfg.Static {
		if got, ok := p.LookupIPv4(s.V4); !ok || got != s.V6 {
			t.Fatalf("static %v gone after sweep", s.V4)
		}
	}
	p.Flush()
	for _, s := range cfg.Static {
		if got, ok := p.To4(s.V6.As16()); !ok || got != s.V4.As4() {
			t.Fatalf("static %v gone after flush", s.V4)
		}
	}
	if n := len(checkBijection(t, p)); n != 2 {
		t.Fatalf("after flush %d mappings, want the 2 static", n)
	}
}

func TestLifetimeTTLGraceIdle(t *testing.T) {
	clk := newFakeClock()
	cfg := testConfig(clk)
	cfg.Grace = 10 * time.Minute
	cfg.IdleTimeout = time.Hour
	p := mustNew(t, cfg)
	sub, _ := p.Subscribe(16)
	a, b := v6n(1), v6n(2)
	mustMap(t, p, a, client1, 5*time.Minute)
	b4 := mustMap(t, p, b, client1, 5*time.Minute)
	// Within TTL + grace nothing expires even when idle for longer than the
	// idle timeout would allow after it.
	advance(p, clk, 14*time.Minute)
	if n := p.Sweep(); n != 0 {
		t.Fatalf("swept %d mappings inside their DNS lifetime", n)
	}
	// b carries traffic; a stays idle.
	for range 10 {
		advance(p, clk, 10*time.Minute)
		p.To6(b4.As4())
		p.Sweep()
	}
	if _, ok := p.To4(a.As16()); ok {
		t.Fatal("idle mapping past lifetime + idle timeout not removed")
	}
	if _, ok := p.To4(b.As16()); !ok {
		t.Fatal("mapping with traffic removed")
	}
	if st := p.Stats(); st.Expirations != 1 {
		t.Fatalf("expirations = %d", st.Expirations)
	}
	var removed *Event
	for len(sub.Events()) > 0 {
		ev := <-sub.Events()
		if ev.Kind == Removed {
			removed = &ev
		}
	}
	if removed == nil || removed.Mapping.V6 != a || removed.Cause != Expired {
		t.Fatalf("removed event = %+v", removed)
	}
}

func TestRefreshExtendsLifetime(t *testing.T) {
	clk := newFakeClock()
	cfg := testConfig(clk)
	cfg.IdleTimeout = 10 * time.Minute
	p := mustNew(t, cfg)
	sub, cur := p.Subscribe(16)
	if len(cur) != 0 {
		t.Fatalf("initial snapshot %v", cur)
	}
	a := v6n(1)
	mustMap(t, p, a, client1, time.Minute)
	advance(p, clk, 5*time.Minute)
	mustMap(t, p, a, client1, 30*time.Minute)
	// At 40m the old lifetime (1m+10m grace) plus idle (10m) has passed; the
	// refreshed one (5m+30m+10m grace) has not.
	advance(p, clk, 35*time.Minute)
	p.Sweep()
	if _, ok := p.To4(a.As16()); !ok {
		t.Fatal("refreshed mapping expired early")
	}
	var kinds []EventKind
	for len(sub.Events()) > 0 {
		kinds = append(kinds, (<-sub.Events()).Kind)
	}
	if len(kinds) != 2 || kinds[0] != Added || kinds[1] != Refreshed {
		t.Fatalf("events %v, want [added refreshed]", kinds)
	}
	// TTL is capped at MaxTTL.
	mustMap(t, p, a, client1, 1000*time.Hour)
	before := p.Snapshot()[0].Expires
	if want := clk.Now().Add(DefaultMaxTTL + DefaultGrace); !before.Equal(want) {
		t.Fatalf("expiry %v, want %v (MaxTTL+grace)", before, want)
	}
	// A shorter TTL never shortens the lifetime.
	mustMap(t, p, a, client1, 0)
	if after := p.Snapshot()[0].Expires; !after.Equal(before) {
		t.Fatalf("expiry moved from %v to %v", before, after)
	}
}

// Each answer for a name moves its expiry on a little. Subscribers (the nft
// set, a netlink transaction per event) hear of it once per refreshSlack,
// with Expires rounded up so that the set keeps the address long enough.
func TestRefreshAnnouncedOncePerSlack(t *testing.T) {
	clk := newFakeClock()
	p := mustNew(t, testConfig(clk))
	sub, _ := p.Subscribe(64)
	a := v6n(1)
	drain := func() []Event {
		var evs []Event
		for len(sub.Events()) > 0 {
			evs = append(evs, <-sub.Events())
		}
		return evs
	}
	mustMap(t, p, a, client1, time.Hour)
	evs := drain()
	if len(evs) != 1 || evs[0].Kind != Added {
		t.Fatalf("events %v, want one added", evs)
	}
	want := clk.Now().Add(time.Hour + DefaultGrace + refreshSlack)
	if !evs[0].Mapping.Expires.Equal(want) {
		t.Fatalf("added: expires %v, want %v (rounded up by the slack)", evs[0].Mapping.Expires, want)
	}
	for range 100 {
		advance(p, clk, time.Second)
		mustMap(t, p, a, client1, time.Hour)
	}
	if evs := drain(); len(evs) != 0 {
		t.Fatalf("%d events for refreshes within the slack, want none", len(evs))
	}
	if got, want := p.Snapshot()[0].Expires, clk.Now().Add(time.Hour+DefaultGrace); !got.Equal(want) {
		t.Fatalf("expiry %v, want %v: refreshes must still extend it", got, want)
	}
	advance(p, clk, refreshSlack)
	mustMap(t, p, a, client1, time.Hour)
	evs = drain()
	if len(evs) != 1 || evs[0].Kind != Refreshed {
		t.Fatalf("events %v after the slack, want one refreshed", evs)
	}
	if want := clk.Now().Add(time.Hour + DefaultGrace + refreshSlack); !evs[0].Mapping.Expires.Equal(want) {
		t.Fatalf("refreshed: expires %v, want %v", evs[0].Mapping.Expires, want)
	}
}

func TestFlush(t *testing.T) {
	clk := newFakeClock()
	cfg := testConfig(clk)
	cfg.StateDir = t.TempDir()
	cfg.Static = []StaticMapping{{V4: netip.MustParseAddr("10.170.160.9"), V6: netip.MustParseAddr("2001:db8::9")}}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sub, _ := p.Subscribe(16)
	for i := range 10 {
		mustMap(t, p, v6n(i), client1, time.Hour)
	}
	for len(sub.Events()) > 0 {
		<-sub.Events()
	}
	p.Flush()
	if ev := <-sub.Events(); ev.Kind != Flushed {
		t.Fatalf("event %v, want flushed", ev.Kind)
	}
	if ms := checkBijection(t, p); len(ms) != 1 || ms[0].Kind != Static {
		t.Fatalf("after flush: %v", ms)
	}
	v4 := mustMap(t, p, v6n(100), client1, time.Hour)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-sub.Events(); ok {
		// drain: events after the flush are fine, the channel must close
		for range sub.Events() {
		}
	}
	p2 := mustNew(t, cfg)
	ms := checkBijection(t, p2)
	if len(ms) != 2 {
		t.Fatalf("after restart: %v; want the static and one mapping", ms)
	}
	if got, ok := p2.To4(v6n(100).As16()); !ok || got != v4.As4() {
		t.Fatalf("mapping after flush not restored: %v %v", got, ok)
	}
}

func TestSetHostOverlap(t *testing.T) {
	clk := newFakeClock()
	p := mustNew(t, testConfig(clk))
	first := mustMap(t, p, v6n(1), client1, time.Hour)
	p.SetHostOverlap([]netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("10.170.0.0/16")})
	v4 := mustMap(t, p, v6n(2), client1, time.Hour)
	if !DefaultSecondary.Contains(v4) {
		t.Fatalf("with the primary overlapping, got %v", v4)
	}
	if got, ok := p.To4(v6n(1).As16()); !ok || got != first.As4() {
		t.Fatal("existing primary mapping lost on overlap")
	}
	st := p.Stats()
	if !st.Pools[0].Avoided || st.Pools[1].Avoided {
		t.Fatalf("avoided flags %+v", st.Pools)
	}
	// Every pool overlaps: use them in order anyway.
	p.SetHostOverlap([]netip.Prefix{netip.MustParsePrefix("10.170.161.5/32"), netip.MustParsePrefix("172.16.0.0/12")})
	if v4 := mustMap(t, p, v6n(3), client1, time.Hour); !DefaultPrimary.Contains(v4) {
		t.Fatalf("all overlapping: got %v", v4)
	}
	p.SetHostOverlap(nil)
	if v4 := mustMap(t, p, v6n(4), client1, time.Hour); !DefaultPrimary.Contains(v4) {
		t.Fatalf("no overlap: got %v", v4)
	}
	checkBijection(t, p)
}

func TestErrorSourceTo4(t *testing.T) {
	clk := newFakeClock()
	cfg := testConfig(clk)
	cfg.ErrorSourceMax = 3
	cfg.ErrorSourceBurst = 2
	cfg.ErrorSourceRate = 1
	cfg.StateDir = t.TempDir()
	cfg.noSync = true
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hop := netip.MustParseAddr("2001:db8:ffff::1")
	v4, ok := p.ErrorSourceTo4(hop.As16())
	if !ok || !p.InPool(netip.AddrFrom4(v4)) {
		t.Fatalf("ErrorSourceTo4 = %v,%v", v4, ok)
	}
	if again, ok := p.ErrorSourceTo4(hop.As16()); !ok || again != v4 {
		t.Fatal("second call gave a different address")
	}
	if got, ok := p.LookupIPv4(netip.AddrFrom4(v4)); !ok || got != hop {
		t.Fatal("PTR lookup of an error-source mapping failed")
	}
	// Rate: burst 2 used by hop and hop2; the third is refused until a
	// token returns.
	if _, ok := p.ErrorSourceTo4(netip.MustParseAddr("2001:db8:ffff::2").As16()); !ok {
		t.Fatal("second hop refused inside burst")
	}
	if _, ok := p.ErrorSourceTo4(netip.MustParseAddr("2001:db8:ffff::3").As16()); ok {
		t.Fatal("rate limit not applied")
	}
	advance(p, clk, 2*time.Second)
	if _, ok := p.ErrorSourceTo4(netip.MustParseAddr("2001:db8:ffff::3").As16()); !ok {
		t.Fatal("refused after the bucket refilled")
	}
	advance(p, clk, 10*time.Second)
	if _, ok := p.ErrorSourceTo4(netip.MustParseAddr("2001:db8:ffff::4").As16()); ok {
		t.Fatal("ErrorSourceMax not applied")
	}
	if st := p.Stats(); st.Refused.ErrorSourceLimited != 2 || st.ErrorSourceMappings != 3 {
		t.Fatalf("stats %+v", st.Refused)
	}
	for _, s := range []string{"::1", "ff02::1", "::"} {
		if _, ok := p.ErrorSourceTo4(netip.MustParseAddr(s).As16()); ok {
			t.Fatalf("mapped %s", s)
		}
	}
	// A DNS answer naming the hop turns it into an ordinary mapping.
	if got := mustMap(t, p, hop, client1, time.Hour); got.As4() != v4 {
		t.Fatalf("promotion changed the address: %v", got)
	}
	// Not persisted: after a restart only the promoted one remains.
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	p2 := mustNew(t, cfg)
	ms := checkBijection(t, p2)
	if len(ms) != 1 || ms[0].V6 != hop || ms[0].Kind != Dynamic {
		t.Fatalf("restored %v", ms)
	}
	// Error-source mappings expire after their lifetime plus ReclaimIdle.
	h5 := netip.MustParseAddr("2001:db8:ffff::5")
	if _, ok := p2.ErrorSourceTo4(h5.As16()); !ok {
		t.Fatal("refused on a fresh pool")
	}
	advance(p2, clk, DefaultErrorSourceLifetime+DefaultReclaimIdle)
	p2.Sweep()
	if _, ok := p2.To4(h5.As16()); ok {
		t.Fatal("error-source mapping did not expire")
	}
}

func TestSubscriptionOverflow(t *testing.T) {
	p := mustNew(t, testConfig(newFakeClock()))
	sub, _ := p.Subscribe(2)
	for i := range 5 {
		mustMap(t, p, v6n(i), client1, time.Hour) // never blocks on a full channel
	}
	if got := sub.Dropped(); got != 3 {
		t.Fatalf("dropped %d, want 3", got)
	}
	<-sub.Events()
	<-sub.Events()
	mustMap(t, p, v6n(10), client1, time.Hour)
	if ev := <-sub.Events(); ev.Kind != Overflow {
		t.Fatalf("after a drop got %v, want overflow", ev.Kind)
	}
	if ev := <-sub.Events(); ev.Kind != Added || ev.Mapping.V6 != v6n(10) {
		t.Fatalf("got %+v", ev)
	}
	mustMap(t, p, v6n(11), client1, time.Hour)
	if ev := <-sub.Events(); ev.Kind != Added || ev.Mapping.V6 != v6n(11) {
		t.Fatalf("got %+v", ev)
	}
	sub.Close()
	if _, ok := <-sub.Events(); ok {
		t.Fatal("channel open after Close")
	}
	mustMap(t, p, v6n(12), client1, time.Hour) // no send on a closed channel
}

func TestDropReason(t *testing.T) {
	for err, want := range map[error]drop.Reason{
		ErrExhausted:   drop.PoolExhausted,
		ErrRateLimited: drop.PoolRateLimited,
		ErrQuota:       drop.PoolQuota,
		nil:            drop.None,
	} {
		if err != nil {
			err = errors.Join(errors.New("ctx"), err)
		}
		if got := DropReason(err); got != want {
			t.Errorf("DropReason(%v) = %v, want %v", err, got, want)
		}
	}
}

func TestClosedPool(t *testing.T) {
	p, err := New(testConfig(newFakeClock()))
	if err != nil {
		t.Fatal(err)
	}
	mustMap(t, p, v6n(1), client1, time.Hour)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	if _, err := p.MapIPv6(v6n(2), client1, time.Hour); !errors.Is(err, ErrClosed) || !strings.Contains(err.Error(), "2001:db8") {
		t.Fatalf("MapIPv6 after Close: %v", err)
	}
	if _, ok := p.To4(v6n(1).As16()); !ok {
		t.Fatal("data path stopped answering after Close")
	}
}

// TestDataPathAllocs: the per-packet lookups never allocate (STYLE: an
// allocation test on every hot path).
func TestDataPathAllocs(t *testing.T) {
	clk := newFakeClock()
	p := mustNew(t, testConfig(clk))
	v4 := mustMap(t, p, v6n(1), client1, time.Hour).As4()
	v6 := v6n(1).As16()
	miss6 := v6n(2).As16()
	for name, f := range map[string]func(){
		"To6":                func() { p.To6(v4) },
		"To4":                func() { p.To4(v6) },
		"To4 miss":           func() { p.To4(miss6) },
		"To6 miss":           func() { p.To6([4]byte{192, 0, 2, 1}) },
		"ErrorSourceTo4 hit": func() { p.ErrorSourceTo4(v6) },
		"touch":              func() { advance(p, clk, time.Second); p.To6(v4) },
	} {
		if n := testing.AllocsPerRun(1000, f); n != 0 {
			t.Errorf("%s: %v allocs per run", name, n)
		}
	}
}
