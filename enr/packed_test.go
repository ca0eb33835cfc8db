package enr

import (
	"bytes"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// requesterMapper is a fakeMapper that remembers who asked last and can
// give an address another pool address, as reclaiming would.
type requesterMapper struct {
	*fakeMapper
	mu    sync.Mutex
	calls int
	last  netip.Addr
}

func (r *requesterMapper) MapIPv6(v6, requester netip.Addr, ttl time.Duration) (netip.Addr, error) {
	r.mu.Lock()
	r.calls++
	r.last = requester
	r.mu.Unlock()
	return r.fakeMapper.MapIPv6(v6, requester, ttl)
}

func (r *requesterMapper) seen() (int, netip.Addr) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls, r.last
}

func (r *requesterMapper) remap(v6 netip.Addr) {
	f := r.fakeMapper
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.byV4, f.byV6[v6])
	v4 := f.next
	f.next = f.next.Next()
	f.byV6[v6], f.byV4[v4] = v4, v6
}

// askFrom sends q from local address from to the stub and returns the raw
// reply.
func askFrom(t *testing.T, from string, to netip.AddrPort, q *dns.Msg) []byte {
	t.Helper()
	c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(from)}, net.UDPAddrFromAddrPort(to))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b, err := q.Pack()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 65535)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no answer from %v to %s: %v", to, from, err)
	}
	return buf[:n]
}

func firstA(t *testing.T, b []byte) (id uint16, a netip.Addr, ttl uint32) {
	t.Helper()
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		t.Fatal(err)
	}
	for _, rr := range m.Answer {
		if r, ok := rr.(*dns.A); ok {
			a, _ := netip.AddrFromSlice(r.A.To4())
			return m.Id, a, r.Hdr.Ttl
		}
	}
	return m.Id, netip.Addr{}, 0
}

// TestStubPackedAnswers: a synthesized answer repeated within a second is
// the stored one with the new ID, still refreshing its mapping for the
// client that asked; a changed mapping, a second's age, Flush and the
// pass-through switch each make the stub build the answer again.
func TestStubPackedAnswers(t *testing.T) {
	up := newFakeUpstream()
	// Negative TTL 600: the AAAA record's 300 s sets the answer's TTL.
	up.set("v6only.bih.test.", dns.TypeA, dns.RcodeSuccess, nil,
		[]string{"bih.test. 600 IN SOA ns.bih.test. host.bih.test. 1 3600 600 86400 600"})
	up.set("v6only.bih.test.", dns.TypeAAAA, dns.RcodeSuccess, []string{"v6only.bih.test. 300 IN AAAA 2001:db8::1"}, nil)
	m := &requesterMapper{fakeMapper: newFakeMapper(100)}
	clk := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	cfg := DefaultConfig()
	cfg.Now = clk.Now
	e := newTestENR(t, cfg, m, up)
	s := startStub(t, e, StubConfig{})
	q := func(id uint16) *dns.Msg {
		m := query("v6only.bih.test.", dns.TypeA)
		m.Id = id
		return m
	}
	asked := func() int { up.mu.Lock(); defer up.mu.Unlock(); return len(up.asked) }

	askFrom(t, "127.0.0.1", s.Addr(), q(1)) // upstream: fills the cache
	first := askFrom(t, "127.0.0.1", s.Addr(), q(2))
	_, a1, ttl1 := firstA(t, first)
	if !a1.IsValid() {
		t.Fatal("no synthesized A")
	}
	clk.Add(500 * time.Millisecond)
	calls, _ := m.seen()
	n := asked()
	// Without the upstream answers cached, a repeat is still answered: the
	// stored answer with the new ID.
	e.cache.flush()
	again := askFrom(t, "127.0.0.1", s.Addr(), q(3))
	if id, _, _ := firstA(t, again); id != 3 {
		t.Fatalf("repeat answered with ID %d, want 3", id)
	}
	if !bytes.Equal(again[2:], first[2:]) || asked() != n {
		t.Fatal("repeat within the second was not the stored answer")
	}
	if c, last := m.seen(); c != calls+1 || last != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("repeat: %d mapper calls (want 1), last for %v: the mapping must be refreshed for the asker", c-calls, last)
	}
	askFrom(t, "127.0.0.1", s.Addr(), q(1)) // fills the cache again

	// Another client: its own entry, its own refreshes.
	askFrom(t, "127.0.0.2", s.Addr(), q(3))
	askFrom(t, "127.0.0.2", s.Addr(), q(4))
	if _, last := m.seen(); last != netip.MustParseAddr("127.0.0.2") {
		t.Fatalf("second client's repeat refreshed for %v", last)
	}

	// The address went to another mapping: never the stored answer.
	m.remap(netip.MustParseAddr("2001:db8::1"))
	_, a2, _ := firstA(t, askFrom(t, "127.0.0.1", s.Addr(), q(5)))
	if a2 == a1 || !a2.IsValid() {
		t.Fatalf("after the remap the answer says %v, want the new address (old %v)", a2, a1)
	}

	// Two seconds on, the TTL is aged again.
	clk.Add(2 * time.Second)
	if _, _, ttl := firstA(t, askFrom(t, "127.0.0.1", s.Addr(), q(6))); ttl >= ttl1 {
		t.Fatalf("TTL %d two seconds later, first %d: a stored answer outlived its second", ttl, ttl1)
	}

	n = asked()
	e.Flush()
	askFrom(t, "127.0.0.1", s.Addr(), q(7))
	if asked() == n {
		t.Fatal("after Flush the answer came without asking upstream")
	}

	askFrom(t, "127.0.0.1", s.Addr(), q(8)) // stored
	e.SetPassThrough(true)
	if _, a, _ := firstA(t, askFrom(t, "127.0.0.1", s.Addr(), q(9))); a.IsValid() {
		t.Fatalf("pass-through on, still synthesized %v", a)
	}
}
