package enr

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// fakeMapper hands out pool addresses in order from its prefix, like pool/
// does for a fresh pool, and fails once limit mappings exist.
type fakeMapper struct {
	mu    sync.Mutex
	pool  netip.Prefix
	next  netip.Addr
	limit int
	byV6  map[netip.Addr]netip.Addr
	byV4  map[netip.Addr]netip.Addr
	ttls  []time.Duration
}

func newFakeMapper(limit int) *fakeMapper {
	p := netip.MustParsePrefix("10.170.160.0/20")
	return &fakeMapper{pool: p, next: p.Addr().Next(), limit: limit,
		byV6: map[netip.Addr]netip.Addr{}, byV4: map[netip.Addr]netip.Addr{}}
}

func (f *fakeMapper) MapIPv6(v6, requester netip.Addr, ttl time.Duration) (netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ttls = append(f.ttls, ttl)
	if v4, ok := f.byV6[v6]; ok {
		return v4, nil
	}
	if len(f.byV6) >= f.limit {
		return netip.Addr{}, errors.New("pool exhausted")
	}
	v4 := f.next
	f.next = f.next.Next()
	f.byV6[v6], f.byV4[v4] = v4, v6
	return v4, nil
}

func (f *fakeMapper) LookupIPv4(v4 netip.Addr) (netip.Addr, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v6, ok := f.byV4[v4]
	return v6, ok
}

func (f *fakeMapper) InPool(v4 netip.Addr) bool { return f.pool.Contains(v4) }

// fakeUpstream answers from a table keyed by "name TYPE" (lower case),
// optionally after a delay that honours ctx, and counts questions.
type fakeUpstream struct {
	mu      sync.Mutex
	answers map[string]func(q *dns.Msg) (*dns.Msg, error)
	delay   time.Duration
	asked   []string
	servers []netip.AddrPort
}

func newFakeUpstream() *fakeUpstream {
	return &fakeUpstream{answers: map[string]func(*dns.Msg) (*dns.Msg, error){}}
}

func key(name string, t uint16) string { return strings.ToLower(name) + " " + dns.TypeToString[t] }

// set answers name/type with rcode, the answer records and authority
// records given in presentation format.
func (u *fakeUpstream) set(name string, t uint16, rcode int, answer, ns []string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.answers[key(name, t)] = func(q *dns.Msg) (*dns.Msg, error) {
		r := new(dns.Msg)
		r.SetReply(q)
		r.RecursionAvailable = true
		r.Rcode = rcode
		r.Answer = rrs(answer...)
		r.Ns = rrs(ns...)
		return r, nil
	}
}

func (u *fakeUpstream) fail(name string, t uint16) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.answers[key(name, t)] = func(*dns.Msg) (*dns.Msg, error) { return nil, errors.New("timeout") }
}

func (u *fakeUpstream) Exchange(ctx context.Context, m *dns.Msg, server netip.AddrPort) (*dns.Msg, error) {
	u.mu.Lock()
	k := key(m.Question[0].Name, m.Question[0].Qtype)
	u.asked = append(u.asked, k)
	u.servers = append(u.servers, server)
	f := u.answers[k]
	d := u.delay
	u.mu.Unlock()
	if d > 0 {
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if f == nil {
		return nil, fmt.Errorf("fake upstream: no answer for %s", k)
	}
	return f(m)
}

func (u *fakeUpstream) questions() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.asked...)
}

func rrs(ss ...string) []dns.RR {
	var out []dns.RR
	for _, s := range ss {
		rr, err := dns.NewRR(s)
		if err != nil || rr == nil {
			panic(fmt.Sprintf("bad test record %q: %v", s, err)) // test data bug
		}
		out = append(out, rr)
	}
	return out
}

// query returns an A-style query for name/type with ID 0x1234 and RD.
func query(name string, t uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, t)
	m.Id = 0x1234
	return m
}

// reply builds an upstream response to q.
func reply(q *dns.Msg, rcode int, answer, ns []string) *dns.Msg {
	r := new(dns.Msg)
	r.SetReply(q)
	r.RecursionAvailable = true
	r.Rcode = rcode
	r.Answer = rrs(answer...)
	r.Ns = rrs(ns...)
	return r
}

func newTestENR(t testing.TB, cfg Config, m Mapper, up Upstream) *ENR {
	t.Helper()
	e, err := New(cfg, m, up, nil)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// sameMsg compares two messages by presentation form (header, sections,
// OPT) and the TC flag.
func sameMsg(t *testing.T, got, want *dns.Msg) {
	t.Helper()
	if (got == nil) != (want == nil) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
	if got == nil {
		return
	}
	if g, w := got.String(), want.String(); g != w {
		t.Fatalf("got:\n%s\nwant:\n%s", g, w)
	}
	// The message must also survive the wire.
	b, err := got.Pack()
	if err != nil {
		t.Fatalf("pack: %v", err)
	}
	var back dns.Msg
	if err := back.Unpack(b); err != nil {
		t.Fatalf("unpack: %v", err)
	}
}
