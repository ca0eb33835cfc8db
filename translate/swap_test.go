package translate

import (
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// swapChains returns two chains sharing one dynamic member (standing for the
// daemon's pool, which maps srv4⇄srv6) with different EAM tables in front,
// as a reload builds them.
func swapChains(tb testing.TB) (dyn *fakeMapper, before, after *Chain) {
	tb.Helper()
	dyn = newMapper()
	var err error
	if before, err = NewChain(mustEAMTable(tb, "198.51.100.7=2001:db8:e::7"), dyn); err != nil {
		tb.Fatal(err)
	}
	if after, err = NewChain(mustEAMTable(tb, "198.51.100.8=2001:db8:e::8"), dyn); err != nil {
		tb.Fatal(err)
	}
	return dyn, before, after
}

func TestSwapMapperStore(t *testing.T) {
	_, before, after := swapChains(t)
	s, err := NewSwapMapper(before)
	if err != nil {
		t.Fatal(err)
	}
	if s.Load() != Mapper(before) {
		t.Fatal("Load does not return the mapper given to NewSwapMapper")
	}
	check := func(v4, v6 string, want bool) {
		t.Helper()
		got6, ok := s.To6(a4(v4))
		if ok != want || (ok && got6 != a16(v6)) {
			t.Errorf("To6(%s) = %v, %v; want %s, %v", v4, netip.AddrFrom16(got6), ok, v6, want)
		}
		got4, ok := s.To4(a16(v6))
		if ok != want || (ok && got4 != a4(v4)) {
			t.Errorf("To4(%s) = %v, %v; want %s, %v", v6, netip.AddrFrom4(got4), ok, v4, want)
		}
	}
	check("198.51.100.7", "2001:db8:e::7", true)
	check("198.51.100.8", "2001:db8:e::8", false)
	check("10.170.160.5", "2001:db8:bbbb::5", true)

	if err := s.Store(after); err != nil {
		t.Fatal(err)
	}
	check("198.51.100.7", "2001:db8:e::7", false)
	check("198.51.100.8", "2001:db8:e::8", true)
	// The dynamic member's mappings (existing flows) are untouched.
	check("10.170.160.5", "2001:db8:bbbb::5", true)
}

func TestSwapMapperRejects(t *testing.T) {
	s, err := NewSwapMapper(mustRFC6052(t, "64:ff9b::/96"))
	if err != nil {
		t.Fatal(err)
	}
	for name, m := range map[string]Mapper{
		"nil":        nil,
		"nil EAM":    (*EAMTable)(nil),
		"nil Chain":  (*Chain)(nil),
		"nil Swap":   (*SwapMapper)(nil),
		"itself":     s,
		"nil prefix": (*RFC6052Prefix)(nil),
	} {
		if err := s.Store(m); err == nil || !strings.Contains(err.Error(), "swap address mapper") {
			t.Errorf("Store(%s) error = %v", name, err)
		}
	}
	// A refused Store leaves the current mapper in place.
	if _, ok := s.To6([4]byte{8, 8, 8, 8}); !ok {
		t.Error("a refused Store replaced the mapper")
	}
	if _, err := NewSwapMapper(nil); err == nil {
		t.Error("NewSwapMapper(nil) succeeded")
	}
}

func TestSwapMapperZeroValue(t *testing.T) {
	var s SwapMapper
	if _, ok := s.To6(srv4); ok {
		t.Error("zero SwapMapper mapped To6")
	}
	if _, ok := s.To4(srv6); ok {
		t.Error("zero SwapMapper mapped To4")
	}
	if _, ok := s.ErrorSourceTo4(srv6); ok {
		t.Error("zero SwapMapper mapped ErrorSourceTo4")
	}
	if s.Load() != nil {
		t.Error("zero SwapMapper has a mapper")
	}
}

func TestSwapMapperErrorSource(t *testing.T) {
	p := mustRFC6052(t, "64:ff9b::/96")
	s, err := NewSwapMapper(chainFakeErrorSource{p})
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := s.ErrorSourceTo4([16]byte{15: 7}); !ok || got != [4]byte{192, 0, 2, 7} {
		t.Errorf("ErrorSourceTo4 = %v, %v; want the member's 192.0.2.7", got, ok)
	}
	if err := s.Store(p); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.ErrorSourceTo4([16]byte{15: 7}); ok {
		t.Error("ErrorSourceTo4 mapped after the ErrorSourceMapper was replaced")
	}
}

// TestSwapMapperTranslator swaps the mapper under a running translator: the
// next packet uses the new mapping, the translator is not rebuilt.
func TestSwapMapperTranslator(t *testing.T) {
	_, before, after := swapChains(t)
	s, err := NewSwapMapper(before)
	if err != nil {
		t.Fatal(err)
	}
	tr := newTranslator(t, func(c *Config) { c.Mapper = s })
	dst := a4("198.51.100.8")
	buf, off := udp4(t, app4, dst, 32)
	if r := tr.Translate4to6(buf, off); r.Action == Translated {
		t.Fatalf("translated to 198.51.100.8 before it was mapped")
	}
	if err := s.Store(after); err != nil {
		t.Fatal(err)
	}
	buf, off = udp4(t, app4, dst, 32)
	out := mustOne(t, tr.Translate4to6(buf, off), Translated)
	if got := [16]byte(out[24:40]); got != a16("2001:db8:e::8") {
		t.Errorf("destination %v, want 2001:db8:e::8", netip.AddrFrom16(got))
	}
	// Flows through the dynamic member carry on.
	buf, off = udp4(t, app4, srv4, 32)
	out = mustOne(t, tr.Translate4to6(buf, off), Translated)
	if got := [16]byte(out[24:40]); got != srv6 {
		t.Errorf("pool flow destination %v, want %v", netip.AddrFrom16(got), netip.AddrFrom16(srv6))
	}
}

func TestSwapMapperNoAllocs(t *testing.T) {
	_, before, _ := swapChains(t)
	s, err := NewSwapMapper(before)
	if err != nil {
		t.Fatal(err)
	}
	v4 := a4("198.51.100.7")
	v6 := a16("2001:db8:e::7")
	if n := testing.AllocsPerRun(1000, func() {
		s.To6(v4)
		s.To4(v6)
		s.To4(srv6)
		s.ErrorSourceTo4(unm6)
	}); n != 0 {
		t.Errorf("SwapMapper lookups allocate %v times, want 0", n)
	}
}

// TestSwapMapperConcurrent runs lookups while the mapper is replaced over
// and over (meant for -race): every answer comes from the old or the new
// member, and the shared dynamic member answers throughout.
func TestSwapMapperConcurrent(t *testing.T) {
	_, before, after := swapChains(t)
	s, err := NewSwapMapper(before)
	if err != nil {
		t.Fatal(err)
	}
	var (
		stop  atomic.Bool
		wg    sync.WaitGroup
		fails atomic.Int64
		loops atomic.Int64
	)
	e7, e8 := a4("198.51.100.7"), a4("198.51.100.8")
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				if got, ok := s.To6(srv4); !ok || got != srv6 {
					fails.Add(1)
				}
				if got, ok := s.To4(srv6); !ok || got != srv4 {
					fails.Add(1)
				}
				// One loaded member holds exactly one of the EAM entries.
				m := s.Load()
				_, ok7 := m.To6(e7)
				_, ok8 := m.To6(e8)
				if ok7 == ok8 {
					fails.Add(1)
				}
				if got, ok := s.To6(e7); ok && got != a16("2001:db8:e::7") {
					fails.Add(1)
				}
				loops.Add(1)
			}
		})
	}
	// Keep swapping until the readers have overlapped many swaps.
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; i < 2000 || (loops.Load() < 20000 && time.Now().Before(deadline)); i++ {
		m := before
		if i%2 == 0 {
			m = after
		}
		if err := s.Store(m); err != nil {
			t.Error(err)
			break
		}
	}
	stop.Store(true)
	wg.Wait()
	if loops.Load() == 0 {
		t.Fatal("no lookup ran during the swaps")
	}
	if n := fails.Load(); n != 0 {
		t.Errorf("%d lookups gave a wrong answer during swaps", n)
	}
}
