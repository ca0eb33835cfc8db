package enr

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/bih-nfq/bih-nfq/internal/drop"
)

var (
	app4      = netip.MustParseAddrPort("127.0.0.1:40000")
	resolver4 = netip.MustParseAddrPort("127.0.0.53:53")
	app6      = netip.MustParseAddrPort("[::1]:40001")
	resolver6 = netip.MustParseAddrPort("[::1]:53")
)

func packMsg(t testing.TB, m *dns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func udp(src, dst netip.AddrPort, payload []byte) []byte {
	return buildUDP(nil, src.Addr().Is6(), src, dst, payload)
}

// checkUDP verifies lengths and checksums of a datagram independently of
// the code under test and returns its endpoints and DNS message.
func checkUDP(t *testing.T, pkt []byte) (src, dst netip.AddrPort, m *dns.Msg) {
	t.Helper()
	var pseudo []byte
	var l4 []byte
	switch pkt[0] >> 4 {
	case 4:
		ihl := int(pkt[0]&0xf) * 4
		if int(binary.BigEndian.Uint16(pkt[2:])) != len(pkt) {
			t.Fatalf("IPv4 total length %d, packet %d", binary.BigEndian.Uint16(pkt[2:]), len(pkt))
		}
		if ones(pkt[:ihl]) != 0xffff {
			t.Fatal("bad IPv4 header checksum")
		}
		l4 = pkt[ihl:]
		pseudo = append(append([]byte(nil), pkt[12:20]...), 0, 17, byte(len(l4)>>8), byte(len(l4)))
		src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(pkt[12:16])), binary.BigEndian.Uint16(l4[0:]))
		dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(pkt[16:20])), binary.BigEndian.Uint16(l4[2:]))
	case 6:
		if int(binary.BigEndian.Uint16(pkt[4:]))+40 != len(pkt) {
			t.Fatal("bad IPv6 payload length")
		}
		l4 = pkt[40:]
		pseudo = append(append([]byte(nil), pkt[8:40]...), 0, 0, byte(len(l4)>>8), byte(len(l4)), 0, 0, 0, 17)
		src = netip.AddrPortFrom(netip.AddrFrom16([16]byte(pkt[8:24])), binary.BigEndian.Uint16(l4[0:]))
		dst = netip.AddrPortFrom(netip.AddrFrom16([16]byte(pkt[24:40])), binary.BigEndian.Uint16(l4[2:]))
	default:
		t.Fatal("not IP")
	}
	if int(binary.BigEndian.Uint16(l4[4:])) != len(l4) {
		t.Fatal("bad UDP length")
	}
	if ones(append(pseudo, l4...)) != 0xffff {
		t.Fatal("bad UDP checksum")
	}
	m = new(dns.Msg)
	if err := m.Unpack(l4[8:]); err != nil {
		t.Fatalf("DNS payload: %v", err)
	}
	return src, dst, m
}

func ones(b []byte) uint16 {
	var s uint64
	for i := 0; i+1 < len(b); i += 2 {
		s += uint64(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint64(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// respond feeds a response and waits (bounded) for a pending result.
func respond(t *testing.T, ic *Interceptor, pkt []byte) Result {
	t.Helper()
	ch := make(chan Result, 1)
	r := ic.Response(pkt, func(r Result) { ch <- r })
	if r.Verdict != Pending {
		return r
	}
	select {
	case r := <-ch:
		if r.Verdict == Pending {
			t.Fatal("completion reported pending")
		}
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("pending response never completed")
	}
	return Result{}
}

type interceptFixture struct {
	e  *ENR
	ic *Interceptor
	up *fakeUpstream
	m  *fakeMapper
}

func newInterceptFixture(t *testing.T, cfg Config, opts InterceptOptions) *interceptFixture {
	t.Helper()
	up := newFakeUpstream()
	m := newFakeMapper(100)
	e := newTestENR(t, cfg, m, up)
	ic := NewInterceptor(e, opts)
	t.Cleanup(ic.Close)
	return &interceptFixture{e: e, ic: ic, up: up, m: m}
}

func TestInterceptSynthesizes(t *testing.T) {
	for _, fam := range []struct {
		name          string
		app, resolver netip.AddrPort
	}{{"IPv4", app4, resolver4}, {"IPv6 resolver", app6, resolver6}} {
		t.Run(fam.name, func(t *testing.T) {
			f := newInterceptFixture(t, DefaultConfig(), InterceptOptions{})
			f.up.set("v6only.bih.test.", dns.TypeAAAA, dns.RcodeSuccess, []string{"v6only.bih.test. 300 IN AAAA 2001:db8::1"}, nil)
			q := withEDNS(query("V6only.bih.TEST.", dns.TypeA), 1232, false)
			if r := f.ic.Query(udp(fam.app, fam.resolver, packMsg(t, q))); r.Verdict != Accept || r.Packet != nil {
				t.Fatalf("query result %+v, want accept untouched", r)
			}
			a := reply(q, dns.RcodeSuccess, nil, []string{soa})
			a.SetEdns0(1232, false)
			r := respond(t, f.ic, udp(fam.resolver, fam.app, packMsg(t, a)))
			if r.Verdict != Accept || r.Packet == nil {
				t.Fatalf("response result %+v, want rewritten", r)
			}
			src, dst, m := checkUDP(t, r.Packet)
			if src != fam.resolver || dst != fam.app {
				t.Errorf("rewritten %v → %v, want %v → %v", src, dst, fam.resolver, fam.app)
			}
			want := expect(q, dns.RcodeSuccess, "V6only.bih.TEST. 60 IN A 10.170.160.1")
			want.SetEdns0(1232, false)
			sameMsg(t, m, want)
			if got := f.up.questions(); len(got) != 1 || got[0] != "v6only.bih.test. AAAA" {
				t.Errorf("upstream asked %v", got)
			}
			if f.up.servers[0] != fam.resolver {
				t.Errorf("AAAA asked at %v, want the application's resolver %v", f.up.servers[0], fam.resolver)
			}
			if f.ic.Outstanding() != 0 {
				t.Errorf("%d queries still outstanding", f.ic.Outstanding())
			}
		})
	}
}

func TestInterceptRealAUntouched(t *testing.T) {
	f := newInterceptFixture(t, DefaultConfig(), InterceptOptions{})
	f.up.set("ds.bih.test.", dns.TypeAAAA, dns.RcodeSuccess, []string{"ds.bih.test. 300 IN AAAA 2001:db8::1"}, nil)
	q := query("ds.bih.test.", dns.TypeA)
	f.ic.Query(udp(app4, resolver4, packMsg(t, q)))
	a := reply(q, dns.RcodeSuccess, []string{"ds.bih.test. 300 IN A 192.0.2.1"}, nil)
	if r := respond(t, f.ic, udp(resolver4, app4, packMsg(t, a))); r.Verdict != Accept || r.Packet != nil {
		t.Fatalf("result %+v, want untouched", r)
	}
}

func TestInterceptUnmatched(t *testing.T) {
	f := newInterceptFixture(t, DefaultConfig(), InterceptOptions{})
	f.up.set("v6only.bih.test.", dns.TypeAAAA, dns.RcodeSuccess, []string{"v6only.bih.test. 300 IN AAAA 2001:db8::1"}, nil)
	q := query("v6only.bih.test.", dns.TypeA)
	f.ic.Query(udp(app4, resolver4, packMsg(t, q)))
	a := reply(q, dns.RcodeSuccess, nil, []string{soa})
	otherID := a.Copy()
	otherID.Id++
	otherQ := reply(query("other.bih.test.", dns.TypeA), dns.RcodeSuccess, nil, []string{soa})
	cases := []struct {
		name string
		pkt  []byte
	}{
		{"other ID", udp(resolver4, app4, packMsg(t, otherID))},
		{"other question", udp(resolver4, app4, packMsg(t, otherQ))},
		{"other client port", udp(resolver4, netip.AddrPortFrom(app4.Addr(), 40009), packMsg(t, a))},
		{"other resolver", udp(netip.MustParseAddrPort("127.0.0.54:53"), app4, packMsg(t, a))},
		{"other resolver port", udp(netip.AddrPortFrom(resolver4.Addr(), 5353), app4, packMsg(t, a))},
		{"a query, not a response", udp(resolver4, app4, packMsg(t, q))},
	}
	for _, tc := range cases {
		before := f.e.Counters().Get(drop.DNSUnmatched)
		r := respond(t, f.ic, tc.pkt)
		if r.Verdict != Accept || r.Packet != nil {
			t.Errorf("%s: %+v, want untouched", tc.name, r)
		}
		if f.e.Counters().Get(drop.DNSUnmatched) != before+1 {
			t.Errorf("%s: not counted as unmatched", tc.name)
		}
	}
	// The real one still matches afterwards.
	if r := respond(t, f.ic, udp(resolver4, app4, packMsg(t, a))); r.Packet == nil {
		t.Fatalf("matching response not rewritten: %+v", r)
	}
	// And only once.
	if r := respond(t, f.ic, udp(resolver4, app4, packMsg(t, a))); r.Packet != nil {
		t.Fatal("second copy of the response rewritten")
	}
}

func TestInterceptMalformed(t *testing.T) {
	f := newInterceptFixture(t, DefaultConfig(), InterceptOptions{})
	q := query("v6only.bih.test.", dns.TypeA)
	good := udp(app4, resolver4, packMsg(t, q))
	multi := q.Copy()
	multi.Question = append(multi.Question, dns.Question{Name: "x.bih.test.", Qtype: dns.TypeA, Qclass: dns.ClassINET})
	tcp := append([]byte(nil), good...)
	tcp[9] = 6
	frag := append([]byte(nil), good...)
	frag[6] = 0x20 // MF
	lies := append([]byte(nil), good...)
	binary.BigEndian.PutUint16(lies[2:], uint16(len(lies)+100)) // longer than the buffer
	udpLies := append([]byte(nil), good...)
	binary.BigEndian.PutUint16(udpLies[24:], 4000)
	cases := []struct {
		name   string
		pkt    []byte
		reason drop.Reason
	}{
		{"empty", nil, drop.TooShort},
		{"short IPv4", good[:10], drop.TooShort},
		{"bad version", append([]byte{0x55}, good[1:]...), drop.BadVersion},
		{"bad IHL", append([]byte{0x43}, good[1:]...), drop.BadHeaderLength},
		{"oversized total length", lies, drop.BadTotalLength},
		{"oversized UDP length", udpLies, drop.BadTotalLength},
		{"not UDP", tcp, drop.DNSMalformed},
		{"fragment", frag, drop.DNSMalformed},
		{"garbage DNS", udp(app4, resolver4, []byte{1, 2, 3}), drop.DNSMalformed},
		{"multi question", udp(app4, resolver4, packMsg(t, multi)), drop.DNSMultipleQuestion},
	}
	for _, tc := range cases {
		before := f.e.Counters().Get(tc.reason)
		if r := f.ic.Query(tc.pkt); r.Verdict != Accept || r.Packet != nil || r.Inject != nil {
			t.Errorf("query %s: %+v, want untouched", tc.name, r)
		}
		if f.e.Counters().Get(tc.reason) != before+1 {
			t.Errorf("query %s: %v not counted", tc.name, tc.reason)
		}
		swapped := tc.pkt
		if len(tc.pkt) >= 28 && tc.name != "not UDP" {
			swapped = swapPorts(tc.pkt)
		}
		if r := f.ic.Response(swapped, nil); r.Verdict != Accept || r.Packet != nil {
			t.Errorf("response %s: %+v, want untouched", tc.name, r)
		}
	}
	if f.ic.Outstanding() != 0 {
		t.Errorf("%d outstanding after malformed input", f.ic.Outstanding())
	}
}

// swapPorts swaps the UDP ports of an IPv4 datagram (checksum unaffected).
func swapPorts(pkt []byte) []byte {
	p := append([]byte(nil), pkt...)
	ihl := int(p[0]&0xf) * 4
	if ihl+4 > len(p) {
		return p
	}
	p[ihl], p[ihl+1], p[ihl+2], p[ihl+3] = p[ihl+2], p[ihl+3], p[ihl], p[ihl+1]
	return p
}

func TestInterceptPendingAndLookupFailure(t *testing.T) {
	cfg := DefaultConfig()
	cfg.LookupTimeout = 300 * time.Millisecond
	f := newInterceptFixture(t, cfg, InterceptOptions{})
	f.up.delay = 100 * time.Millisecond
	f.up.set("slow.bih.test.", dns.TypeAAAA, dns.RcodeSuccess, []string{"slow.bih.test. 300 IN AAAA 2001:db8::9"}, nil)
	q := query("slow.bih.test.", dns.TypeA)
	f.ic.Query(udp(app4, resolver4, packMsg(t, q)))
	a := packMsg(t, reply(q, dns.RcodeSuccess, nil, []string{soa}))
	buf := udp(resolver4, app4, a)
	ch := make(chan Result, 1)
	r := f.ic.Response(buf, func(r Result) { ch <- r })
	if r.Verdict != Pending {
		t.Fatalf("response before the AAAA answer: %v, want pending", r.Verdict)
	}
	clear(buf) // the caller may reuse its buffer
	select {
	case r = <-ch:
	case <-time.After(3 * time.Second):
		t.Fatal("no completion")
	}
	if r.Packet == nil {
		t.Fatalf("completion %+v, want rewritten", r)
	}
	if _, _, m := checkUDP(t, r.Packet); len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != "10.170.160.1" {
		t.Fatalf("answer %v", m)
	}

	// Asked again by another client (whose answer is not cached): the
	// AAAA result is, so the response is decided at once, without a lookup.
	asked := len(f.up.questions())
	qa := query("slow.bih.test.", dns.TypeA)
	qa.Id = 9
	other := netip.MustParseAddrPort("127.0.0.2:40000")
	f.ic.Query(udp(other, resolver4, packMsg(t, qa)))
	r = f.ic.Response(udp(resolver4, other, packMsg(t, reply(qa, dns.RcodeSuccess, nil, []string{soa}))), func(Result) {
		t.Error("a cached lookup left the response pending")
	})
	if r.Verdict != Accept || r.Packet == nil || len(f.up.questions()) != asked {
		t.Fatalf("with the AAAA cached: %+v, %d more upstream questions", r, len(f.up.questions())-asked)
	}

	// The AAAA lookup outlives the lookup timeout: untouched, counted.
	f.up.delay = 2 * time.Second
	q2 := query("never.bih.test.", dns.TypeA)
	q2.Id = 7
	f.ic.Query(udp(app4, resolver4, packMsg(t, q2)))
	start := time.Now()
	r = respond(t, f.ic, udp(resolver4, app4, packMsg(t, reply(q2, dns.RcodeSuccess, nil, []string{soa}))))
	if r.Verdict != Accept || r.Packet != nil {
		t.Fatalf("failed lookup: %+v, want untouched", r)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("held for %v, beyond the lookup timeout", d)
	}
	if f.e.Counters().Get(drop.DNSUpstreamFailed) != 1 {
		t.Error("upstream failure not counted")
	}
}

func TestInterceptPTR(t *testing.T) {
	f := newInterceptFixture(t, DefaultConfig(), InterceptOptions{})
	v6 := netip.MustParseAddr("2001:db8::1")
	v4, err := f.m.MapIPv6(v6, netip.Addr{}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	arpa6, _ := dns.ReverseAddr(v6.String())
	f.up.set(arpa6, dns.TypePTR, dns.RcodeSuccess, []string{arpa6 + " 300 IN PTR v6only.bih.test."}, nil)

	// Mapped: the resolver's own (negative) answer is replaced.
	q := query(reverse4(v4), dns.TypePTR)
	if r := f.ic.Query(udp(app4, resolver4, packMsg(t, q))); r.Verdict != Accept {
		t.Fatalf("mapped PTR query: %+v", r)
	}
	nx := reply(q, dns.RcodeNameError, nil, []string{"10.in-addr.arpa. 300 IN SOA localhost. nobody.invalid. 1 3600 1200 604800 10800"})
	r := respond(t, f.ic, udp(resolver4, app4, packMsg(t, nx)))
	if r.Packet == nil {
		t.Fatalf("mapped PTR response untouched")
	}
	_, _, m := checkUDP(t, r.Packet)
	sameMsg(t, m, expect(q, dns.RcodeSuccess, reverse4(v4)+" 300 IN PTR v6only.bih.test."))

	// Unmapped pool address: dropped and answered locally, nothing asked.
	asked := len(f.up.questions())
	qu := query("200.160.170.10.in-addr.arpa.", dns.TypePTR)
	r = f.ic.Query(udp(app4, resolver4, packMsg(t, qu)))
	if r.Verdict != Drop || r.Inject == nil {
		t.Fatalf("unmapped PTR: %+v, want drop + inject", r)
	}
	src, dst, m := checkUDP(t, r.Inject)
	if src != resolver4 || dst != app4 {
		t.Errorf("injected %v → %v, want %v → %v", src, dst, resolver4, app4)
	}
	sameMsg(t, m, expect(qu, dns.RcodeNameError))
	if len(f.up.questions()) != asked {
		t.Error("unmapped PTR asked upstream")
	}
	// PTR outside the pool: not remembered.
	qo := query("1.2.0.192.in-addr.arpa.", dns.TypePTR)
	f.ic.Query(udp(app4, resolver4, packMsg(t, qo)))
	if f.ic.Outstanding() != 0 {
		t.Error("non-pool PTR remembered")
	}
}

// TestInterceptATimeout: no A response within ATimeoutSynthesis but a
// positive AAAA: the ENR injects its own answer; the late response is dropped.
func TestInterceptATimeout(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ATimeoutSynthesis = 50 * time.Millisecond
	injected := make(chan []byte, 1)
	f := newInterceptFixture(t, cfg, InterceptOptions{Inject: func(p []byte) { injected <- p }})
	f.up.set("v6only.bih.test.", dns.TypeAAAA, dns.RcodeSuccess, []string{"v6only.bih.test. 300 IN AAAA 2001:db8::1"}, nil)
	q := query("v6only.bih.test.", dns.TypeA)
	f.ic.Query(udp(app4, resolver4, packMsg(t, q)))
	var pkt []byte
	select {
	case pkt = <-injected:
	case <-time.After(3 * time.Second):
		t.Fatal("nothing injected after the A timeout")
	}
	src, dst, m := checkUDP(t, pkt)
	if src != resolver4 || dst != app4 {
		t.Errorf("injected %v → %v", src, dst)
	}
	sameMsg(t, m, expect(q, dns.RcodeSuccess, "v6only.bih.test. 300 IN A 10.170.160.1"))
	r := respond(t, f.ic, udp(resolver4, app4, packMsg(t, reply(q, dns.RcodeSuccess, nil, []string{soa}))))
	if r.Verdict != Drop || r.Reason != drop.DNSLateResponse {
		t.Fatalf("late response: %+v, want drop", r)
	}

	// A negative AAAA: nothing injected, the A answer passes when it comes.
	f.up.set("v4only.bih.test.", dns.TypeAAAA, dns.RcodeSuccess, nil, []string{soa})
	q2 := query("v4only.bih.test.", dns.TypeA)
	f.ic.Query(udp(app4, resolver4, packMsg(t, q2)))
	select {
	case <-injected:
		t.Fatal("injected without AAAA data")
	case <-time.After(200 * time.Millisecond):
	}
	if r := respond(t, f.ic, udp(resolver4, app4, packMsg(t, reply(q2, dns.RcodeSuccess, []string{"v4only.bih.test. 1 IN A 192.0.2.2"}, nil)))); r.Verdict != Accept || r.Packet != nil {
		t.Fatalf("late real A: %+v, want untouched", r)
	}
}

// fakeClock is a settable clock for the synchronous (replay) path.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

const testZone = `$ORIGIN bih.test.
$TTL 300
@        3600 IN SOA ns hostmaster 1 3600 600 86400 60
@             IN NS  ns
ns            IN AAAA 2001:db8::53
v6only        IN AAAA 2001:db8::1
v4only        IN A    192.0.2.1
dual          IN A    192.0.2.2
dual          IN AAAA 2001:db8::2
c1            IN CNAME c2
c2            IN CNAME c3
c3            IN CNAME v6only
old           IN DNAME new.bih.test.
www.new       IN AAAA 2001:db8::3
both-nodata   IN TXT  "nothing"
`

// TestInterceptSynchronousReplay drives the replay path: zone upstream,
// synchronous lookups, a fixed clock, Sweep for the A timeout; pool
// addresses come out in order, deterministically.
func TestInterceptSynchronousReplay(t *testing.T) {
	z, err := LoadZone(strings.NewReader(testZone), "", "test")
	if err != nil {
		t.Fatal(err)
	}
	clk := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	cfg := DefaultConfig()
	cfg.Now = clk.Now
	cfg.ATimeoutSynthesis = time.Second
	m := newFakeMapper(100)
	e := newTestENR(t, cfg, m, z)
	ic := NewInterceptor(e, InterceptOptions{Synchronous: true})
	defer ic.Close()

	for i, name := range []string{"v6only.bih.test.", "c1.bih.test.", "x.old.bih.test."} {
		q := query(name, dns.TypeA)
		q.Id = uint16(i)
		ic.Query(udp(app4, resolver4, packMsg(t, q)))
		aResp, err := z.Exchange(t.Context(), q, netip.AddrPort{})
		if err != nil {
			t.Fatal(err)
		}
		r := ic.Response(udp(resolver4, app4, packMsg(t, aResp)), nil)
		if name == "x.old.bih.test." {
			// DNAME to a name with no data at all: NXDOMAIN passes.
			if r.Packet != nil || aResp.Rcode != dns.RcodeNameError {
				t.Fatalf("%s: %+v (rcode %d)", name, r, aResp.Rcode)
			}
			continue
		}
		if r.Verdict != Accept || r.Packet == nil {
			t.Fatalf("%s: %+v, want rewritten", name, r)
		}
		_, _, got := checkUDP(t, r.Packet)
		last := got.Answer[len(got.Answer)-1].(*dns.A)
		if last.A.String() != "10.170.160.1" || last.Hdr.Name != "v6only.bih.test." || last.Hdr.Ttl != 60 {
			t.Errorf("%s: %v", name, last)
		}
	}

	// A timeout: nothing happens before the wait, an answer after.
	q := query("www.new.bih.test.", dns.TypeA)
	q.Id = 99
	ic.Query(udp(app4, resolver4, packMsg(t, q)))
	if inj := ic.Sweep(clk.Now().Add(500 * time.Millisecond)); len(inj) != 0 {
		t.Fatalf("injected before the wait: %d", len(inj))
	}
	clk.Add(time.Second)
	inj := ic.Sweep(clk.Now())
	if len(inj) != 1 {
		t.Fatalf("injected %d answers, want 1", len(inj))
	}
	_, _, got := checkUDP(t, inj[0])
	sameMsg(t, got, expect(q, dns.RcodeSuccess, "www.new.bih.test. 300 IN A 10.170.160.2"))
	clk.Add(time.Minute)
	ic.Sweep(clk.Now())
	if ic.Outstanding() != 0 {
		t.Errorf("%d outstanding after expiry", ic.Outstanding())
	}
}

func TestInterceptBounded(t *testing.T) {
	clk := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	cfg := DefaultConfig()
	cfg.MaxOutstanding = 2
	cfg.Now = clk.Now
	z, err := LoadZone(strings.NewReader(testZone), "", "test")
	if err != nil {
		t.Fatal(err)
	}
	e := newTestENR(t, cfg, newFakeMapper(10), z)
	ic := NewInterceptor(e, InterceptOptions{Synchronous: true})
	defer ic.Close()
	for i := range 3 {
		q := query("v6only.bih.test.", dns.TypeA)
		q.Id = uint16(i)
		r := ic.Query(udp(app4, resolver4, packMsg(t, q)))
		if i == 2 && r.Reason != drop.DNSTooManyQueries {
			t.Fatalf("third query: %+v, want too many", r)
		}
	}
	if ic.Outstanding() != 2 || e.Counters().Get(drop.DNSTooManyQueries) != 1 {
		t.Fatalf("outstanding %d, counted %d", ic.Outstanding(), e.Counters().Get(drop.DNSTooManyQueries))
	}
	clk.Add(cfg.OutstandingLifetime)
	q := query("v6only.bih.test.", dns.TypeA)
	q.Id = 50
	if r := ic.Query(udp(app4, resolver4, packMsg(t, q))); r.Reason != drop.None {
		t.Fatalf("after expiry: %+v", r)
	}
	if ic.Outstanding() != 1 {
		t.Fatalf("outstanding %d after expiry, want 1", ic.Outstanding())
	}
}

// TestCacheAndFlush: AAAA results are reused within their TTL, aged, and
// Flush forgets them (RFC 6535 §2.3.4).
func TestCacheAndFlush(t *testing.T) {
	clk := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	cfg := DefaultConfig()
	cfg.Now = clk.Now
	up := newFakeUpstream()
	up.set("v6only.bih.test.", dns.TypeAAAA, dns.RcodeSuccess, []string{"v6only.bih.test. 100 IN AAAA 2001:db8::1"}, nil)
	e := newTestENR(t, cfg, newFakeMapper(10), up)
	plan := QueryPlan{Kind: QueryA, Name: "v6only.bih.test.", Type: dns.TypeAAAA}
	if _, err := e.Lookup(t.Context(), plan, netip.AddrPort{}); err != nil {
		t.Fatal(err)
	}
	clk.Add(40 * time.Second)
	m, err := e.Lookup(t.Context(), plan, netip.AddrPort{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(up.questions()); n != 1 {
		t.Fatalf("asked %d times, want 1 (cached)", n)
	}
	if ttl := m.Answer[0].Header().Ttl; ttl != 60 {
		t.Errorf("cached TTL %d, want 60 (aged)", ttl)
	}
	if n := e.Flush(); n != 1 {
		t.Errorf("flushed %d entries, want 1", n)
	}
	if _, err := e.Lookup(t.Context(), plan, netip.AddrPort{}); err != nil {
		t.Fatal(err)
	}
	if n := len(up.questions()); n != 2 {
		t.Fatalf("asked %d times after flush, want 2", n)
	}
	clk.Add(101 * time.Second)
	if _, err := e.Lookup(t.Context(), plan, netip.AddrPort{}); err != nil {
		t.Fatal(err)
	}
	if n := len(up.questions()); n != 3 {
		t.Fatalf("asked %d times after expiry, want 3", n)
	}
	// Errors are not cached.
	up.set("sf.bih.test.", dns.TypeAAAA, dns.RcodeServerFailure, nil, nil)
	p2 := QueryPlan{Kind: QueryA, Name: "sf.bih.test.", Type: dns.TypeAAAA}
	for range 2 {
		if _, err := e.Lookup(t.Context(), p2, netip.AddrPort{}); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(up.questions()); n != 5 {
		t.Fatalf("SERVFAIL cached: asked %d times, want 5", n)
	}
}
