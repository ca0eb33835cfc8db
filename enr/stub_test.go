package enr

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func startStub(t testing.TB, e *ENR, cfg StubConfig) *Stub {
	t.Helper()
	if !cfg.Listen.IsValid() {
		cfg.Listen = netip.MustParseAddrPort("127.0.0.1:0")
	}
	s, err := NewStub(e, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return s
}

func exchange(t *testing.T, network string, addr netip.AddrPort, q *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 5 * time.Second, UDPSize: 65535}
	r, _, err := c.Exchange(q, addr.String())
	if err != nil {
		t.Fatalf("%s exchange with %v: %v", network, addr, err)
	}
	return r
}

// TestStubRules checks stub mode over UDP and TCP with a fake upstream:
// synthesis, pass-through of other types, local PTR answers, TC on UDP.
func TestStubRules(t *testing.T) {
	up := newFakeUpstream()
	up.set("v6only.bih.test.", dns.TypeA, dns.RcodeSuccess, nil, []string{soa})
	up.set("v6only.bih.test.", dns.TypeAAAA, dns.RcodeSuccess, []string{"v6only.bih.test. 300 IN AAAA 2001:db8::1"}, nil)
	up.set("v6only.bih.test.", dns.TypeMX, dns.RcodeSuccess, []string{"v6only.bih.test. 300 IN MX 10 mx.bih.test."}, nil)
	var many []string
	for i := 1; i <= 30; i++ {
		many = append(many, "thirty-records.bih.test. 300 IN AAAA 2001:db8::"+itoa(i))
	}
	up.set("thirty-records.bih.test.", dns.TypeA, dns.RcodeSuccess, nil, []string{soa})
	up.set("thirty-records.bih.test.", dns.TypeAAAA, dns.RcodeSuccess, many, nil)
	m := newFakeMapper(100)
	e := newTestENR(t, DefaultConfig(), m, up)
	s := startStub(t, e, StubConfig{})

	for _, network := range []string{"udp", "tcp"} {
		r := exchange(t, network, s.Addr(), query("V6ONLY.bih.test.", dns.TypeA))
		sameMsg(t, r, expect(query("V6ONLY.bih.test.", dns.TypeA), dns.RcodeSuccess, "V6ONLY.bih.test. 60 IN A 10.170.160.1"))
	}
	r := exchange(t, "udp", s.Addr(), query("v6only.bih.test.", dns.TypeMX))
	if len(r.Answer) != 1 || r.Answer[0].Header().Rrtype != dns.TypeMX || r.Id != 0x1234 {
		t.Errorf("MX passed as %v", r)
	}
	qu := query("5.170.170.10.in-addr.arpa.", dns.TypePTR)
	asked := len(up.questions())
	if r := exchange(t, "udp", s.Addr(), qu); r.Rcode != dns.RcodeNameError {
		t.Errorf("unmapped PTR: rcode %d", r.Rcode)
	}
	if len(up.questions()) != asked {
		t.Error("unmapped PTR sent upstream")
	}
	r = exchange(t, "udp", s.Addr(), query("thirty-records.bih.test.", dns.TypeA))
	if !r.Truncated || len(r.Answer) >= 30 {
		t.Errorf("UDP without EDNS: TC=%v with %d answers", r.Truncated, len(r.Answer))
	}
	r = exchange(t, "tcp", s.Addr(), query("thirty-records.bih.test.", dns.TypeA))
	if r.Truncated || len(r.Answer) != 30 {
		t.Errorf("TCP: TC=%v with %d answers, want 30", r.Truncated, len(r.Answer))
	}
	// A query fails upstream, AAAA positive: synthesized (RFC 6535 §2.3 MAY).
	up.fail("a-lost.bih.test.", dns.TypeA)
	up.set("a-lost.bih.test.", dns.TypeAAAA, dns.RcodeSuccess, []string{"a-lost.bih.test. 30 IN AAAA 2001:db8::77"}, nil)
	r = exchange(t, "udp", s.Addr(), query("a-lost.bih.test.", dns.TypeA))
	v4, ok := m.LookupV6(netip.MustParseAddr("2001:db8::77"))
	if !ok {
		t.Fatal("a-lost: AAAA never mapped")
	}
	sameMsg(t, r, expect(query("a-lost.bih.test.", dns.TypeA), dns.RcodeSuccess, "a-lost.bih.test. 30 IN A "+v4.String()))
	// AAAA lookup fails: the A answer (NODATA) as it is.
	up.set("aaaa-lost.bih.test.", dns.TypeA, dns.RcodeSuccess, nil, []string{soa})
	up.fail("aaaa-lost.bih.test.", dns.TypeAAAA)
	r = exchange(t, "udp", s.Addr(), query("aaaa-lost.bih.test.", dns.TypeA))
	want := expect(query("aaaa-lost.bih.test.", dns.TypeA), dns.RcodeSuccess)
	want.Ns = rrs(soa)
	sameMsg(t, r, want)
	// Upstream down: SERVFAIL, not silence.
	if r := exchange(t, "udp", s.Addr(), query("unknown.bih.test.", dns.TypeA)); r.Rcode != dns.RcodeServerFailure {
		t.Errorf("upstream failure: rcode %d, want SERVFAIL", r.Rcode)
	}
}

// TestStubRefusesNonLocal: never an open resolver.
func TestStubRefusesNonLocal(t *testing.T) {
	e := newTestENR(t, DefaultConfig(), newFakeMapper(1), newFakeUpstream())
	if _, err := NewStub(e, StubConfig{Listen: netip.MustParseAddrPort("0.0.0.0:0")}); err == nil {
		t.Fatal("listening on a wildcard address without allowed clients accepted")
	}
	s, err := NewStub(e, StubConfig{AllowClients: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		addr net.Addr
		want bool
	}{
		{&net.UDPAddr{IP: net.ParseIP("127.0.0.1")}, true},
		{&net.TCPAddr{IP: net.ParseIP("::1")}, true},
		{&net.UDPAddr{IP: net.ParseIP("192.0.2.9")}, true},
		{&net.UDPAddr{IP: net.ParseIP("198.51.100.1")}, false},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8::1")}, false},
		{&net.UnixAddr{Name: "x"}, false},
	} {
		if got := s.allowed(tc.addr); got != tc.want {
			t.Errorf("allowed(%v) = %v, want %v", tc.addr, got, tc.want)
		}
	}
	// And the refusal is an answer: drive serve with a non-local writer.
	w := &recordingWriter{remote: &net.UDPAddr{IP: net.ParseIP("198.51.100.1"), Port: 5}}
	s.serve(w, query("v6only.bih.test.", dns.TypeA), 512)
	if w.msg == nil || w.msg.Rcode != dns.RcodeRefused {
		t.Fatalf("non-local client got %v, want REFUSED", w.msg)
	}
}

type recordingWriter struct {
	dns.ResponseWriter
	remote net.Addr
	msg    *dns.Msg
}

func (w *recordingWriter) RemoteAddr() net.Addr      { return w.remote }
func (w *recordingWriter) WriteMsg(m *dns.Msg) error { w.msg = m; return nil }

func TestStubStartShutdown(t *testing.T) {
	e := newTestENR(t, DefaultConfig(), newFakeMapper(1), newFakeUpstream())
	s, err := NewStub(e, StubConfig{Listen: netip.MustParseAddrPort("127.0.0.1:0")})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err == nil {
		t.Error("second Start accepted")
	}
	addr := s.Addr()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// The port is free again.
	pc, err := net.ListenPacket("udp", addr.String())
	if err != nil {
		t.Fatalf("port still held after shutdown: %v", err)
	}
	pc.Close()
}

func TestReadResolvConf(t *testing.T) {
	p := filepath.Join(t.TempDir(), "resolv.conf")
	conf := "nameserver 127.0.0.35\nnameserver 192.0.2.53\nnameserver ::1\noptions ndots:1\n"
	if err := os.WriteFile(p, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := ReadResolvConf(p, netip.MustParseAddrPort("127.0.0.35:53"))
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.AddrPort{netip.MustParseAddrPort("192.0.2.53:53"), netip.MustParseAddrPort("[::1]:53")}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("servers %v, want %v (own address skipped)", got, want)
	}
	if err := os.WriteFile(p, []byte("nameserver 127.0.0.35\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadResolvConf(p, netip.MustParseAddrPort("127.0.0.35:53")); err == nil || !strings.Contains(err.Error(), "no usable") {
		t.Fatalf("only ourselves: err %v", err)
	}
}

// TestZoneUpstream checks the replay upstream's answers.
func TestZoneUpstream(t *testing.T) {
	z, err := LoadZone(strings.NewReader(testZone), "", "test")
	if err != nil {
		t.Fatal(err)
	}
	ask := func(name string, qt uint16) *dns.Msg {
		r, err := z.Exchange(t.Context(), query(name, qt), netip.AddrPort{})
		if err != nil {
			t.Fatal(err)
		}
		if r.Id != 0x1234 || r.Question[0].Name != name {
			t.Fatalf("reply header %v", r)
		}
		return r
	}
	for _, tc := range []struct {
		name   string
		qt     uint16
		rcode  int
		answer []string
		soa    bool
	}{
		{"v6only.bih.test.", dns.TypeAAAA, 0, []string{"v6only.bih.test.\t300\tIN\tAAAA\t2001:db8::1"}, false},
		{"V6ONLY.bih.test.", dns.TypeAAAA, 0, []string{"V6ONLY.bih.test.\t300\tIN\tAAAA\t2001:db8::1"}, false},
		{"v6only.bih.test.", dns.TypeA, 0, nil, true},
		{"nx.bih.test.", dns.TypeA, dns.RcodeNameError, nil, true},
		{"new.bih.test.", dns.TypeA, 0, nil, true}, // empty non-terminal
		{"c1.bih.test.", dns.TypeAAAA, 0, []string{
			"c1.bih.test.\t300\tIN\tCNAME\tc2.bih.test.",
			"c2.bih.test.\t300\tIN\tCNAME\tc3.bih.test.",
			"c3.bih.test.\t300\tIN\tCNAME\tv6only.bih.test.",
			"v6only.bih.test.\t300\tIN\tAAAA\t2001:db8::1",
		}, false},
		{"www.old.bih.test.", dns.TypeAAAA, 0, []string{
			"old.bih.test.\t300\tIN\tDNAME\tnew.bih.test.",
			"www.old.bih.test.\t300\tIN\tCNAME\twww.new.bih.test.",
			"www.new.bih.test.\t300\tIN\tAAAA\t2001:db8::3",
		}, false},
		{"other.example.", dns.TypeA, dns.RcodeRefused, nil, false},
	} {
		r := ask(tc.name, tc.qt)
		if r.Rcode != tc.rcode {
			t.Errorf("%s %s: rcode %d, want %d", tc.name, dns.TypeToString[tc.qt], r.Rcode, tc.rcode)
		}
		var got []string
		for _, rr := range r.Answer {
			got = append(got, rr.String())
		}
		if strings.Join(got, "\n") != strings.Join(tc.answer, "\n") {
			t.Errorf("%s: answer\n%s\nwant\n%s", tc.name, strings.Join(got, "\n"), strings.Join(tc.answer, "\n"))
		}
		if hasSOA := len(r.Ns) == 1 && r.Ns[0].Header().Rrtype == dns.TypeSOA; hasSOA != tc.soa {
			t.Errorf("%s: authority %v", tc.name, r.Ns)
		} else if hasSOA && r.Ns[0].Header().Ttl != 60 {
			t.Errorf("%s: negative SOA TTL %d, want 60", tc.name, r.Ns[0].Header().Ttl)
		}
	}
	if _, err := LoadZone(strings.NewReader("a.example. 1 IN A 192.0.2.1\n"), "", "x"); err == nil {
		t.Error("zone without SOA accepted")
	}
	if _, err := LoadZone(strings.NewReader("a.example. 1 IN A 999.0.2.1\n"), "", "x"); err == nil {
		t.Error("bad zone accepted")
	}
}

func TestNewUpstreamForStub(t *testing.T) {
	explicit := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:5353")}
	u, err := NewUpstreamForStub(explicit, filepath.Join(t.TempDir(), "absent"), DefaultStubListen, nil)
	if err != nil || len(u.Servers) != 1 || u.Servers[0] != explicit[0] {
		t.Fatalf("explicit servers: %v %v", u, err)
	}
	p := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(p, []byte("nameserver 127.0.0.35\nnameserver 127.0.0.53\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	u, err = NewUpstreamForStub(nil, p, DefaultStubListen, nil)
	if err != nil || len(u.Servers) != 1 || u.Servers[0] != netip.MustParseAddrPort("127.0.0.53:53") {
		t.Fatalf("from resolv.conf: %v %v", u, err)
	}
	if _, err := NewUpstreamForStub(nil, filepath.Join(t.TempDir(), "absent"), DefaultStubListen, nil); err == nil {
		t.Fatal("missing resolv.conf accepted")
	}
}

// TestStubCachesAnswers: the stub answers repeated queries from its cache
// for their TTL (aged), keeps 0x20 case per query, clears AA, leaves
// queries with EDNS options uncached, keys on DO, and forgets everything
// at Flush.
func TestStubCachesAnswers(t *testing.T) {
	up := newFakeUpstream()
	up.set("v6only.bih.test.", dns.TypeA, dns.RcodeSuccess, nil, []string{soa})
	up.set("v6only.bih.test.", dns.TypeAAAA, dns.RcodeSuccess, []string{"v6only.bih.test. 300 IN AAAA 2001:db8::1"}, nil)
	up.set("v4.bih.test.", dns.TypeAAAA, dns.RcodeSuccess, nil, []string{soa})
	up.mu.Lock()
	up.answers[key("v4.bih.test.", dns.TypeA)] = func(q *dns.Msg) (*dns.Msg, error) {
		r := reply(q, dns.RcodeSuccess, []string{q.Question[0].Name + " 300 IN A 192.0.2.1"}, nil)
		r.Authoritative = true
		if opt := q.IsEdns0(); opt != nil {
			r.SetEdns0(1232, opt.Do())
		}
		return r, nil
	}
	up.mu.Unlock()
	var clock atomic.Int64
	clock.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	cfg := DefaultConfig()
	cfg.Now = func() time.Time { return time.Unix(0, clock.Load()) }
	e := newTestENR(t, cfg, newFakeMapper(10), up)
	s := startStub(t, e, StubConfig{})
	asked := func() int { return len(up.questions()) }

	first := exchange(t, "udp", s.Addr(), query("V4.bih.test.", dns.TypeA))
	n := asked()
	if n != 2 || !first.Authoritative {
		t.Fatalf("first query: %d upstream questions (want A and AAAA), AA %v", n, first.Authoritative)
	}
	clock.Add(int64(30 * time.Second)) // within the AAAA NODATA's 60 s too
	// The question comes back as each client spelled it (0x20); the
	// records keep the first asker's spelling, names being case-blind.
	for _, name := range []string{"v4.bih.test.", "v4.BIH.test."} {
		r := exchange(t, "udp", s.Addr(), query(name, dns.TypeA))
		sameMsg(t, r, expect(query(name, dns.TypeA), dns.RcodeSuccess, "V4.bih.test. 270 IN A 192.0.2.1"))
		if r.Authoritative {
			t.Error("AA set on an answer from the cache")
		}
	}
	if asked() != n {
		t.Fatalf("cached answer asked upstream again: %v", up.questions()[n:])
	}
	// Synthesized answers come from the cached A and AAAA answers.
	r1 := exchange(t, "udp", s.Addr(), query("v6only.bih.test.", dns.TypeA))
	n = asked()
	r2 := exchange(t, "tcp", s.Addr(), query("v6only.bih.test.", dns.TypeA))
	if asked() != n || len(r2.Answer) != 1 || r1.Answer[0].String() != r2.Answer[0].String() {
		t.Fatalf("synthesized answer not from the cache: %v then %v, %d questions more", r1.Answer, r2.Answer, asked()-n)
	}
	// DO is part of the key; an EDNS option keeps the answer the asker's.
	exchange(t, "udp", s.Addr(), withEDNS(query("v4.bih.test.", dns.TypeA), 1232, true))
	if asked() != n+1 {
		t.Fatalf("DO query answered from the plain entry")
	}
	withCookie := func() *dns.Msg {
		q := withEDNS(query("v4.bih.test.", dns.TypeA), 1232, false)
		q.IsEdns0().Option = append(q.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"})
		return q
	}
	exchange(t, "udp", s.Addr(), withCookie())
	exchange(t, "udp", s.Addr(), withCookie())
	if asked() != n+3 {
		t.Fatalf("queries with a cookie: %d upstream questions, want 2", asked()-n-1)
	}
	// Flush forgets; so does the TTL.
	n = asked()
	e.Flush()
	exchange(t, "udp", s.Addr(), query("v4.bih.test.", dns.TypeA))
	if asked() != n+2 {
		t.Fatalf("after Flush: upstream asked %v, want A and AAAA", up.questions()[n:])
	}
	clock.Add(int64(301 * time.Second))
	exchange(t, "udp", s.Addr(), query("v4.bih.test.", dns.TypeA))
	if asked() != n+4 {
		t.Fatalf("after the TTL: upstream asked %v, want A and AAAA", up.questions()[n+2:])
	}
}

// TestStubUDPConcurrent: many clients at once, each query missing the cache
// (answered after an upstream delay) or hitting it, each answer for its
// own question and ID.
func TestStubUDPConcurrent(t *testing.T) {
	up := newFakeUpstream()
	for i := range 40 {
		name := fmt.Sprintf("n%d.bih.test.", i)
		up.set(name, dns.TypeA, dns.RcodeSuccess, []string{fmt.Sprintf("%s 300 IN A 192.0.2.%d", name, i+1)}, nil)
		up.set(name, dns.TypeAAAA, dns.RcodeSuccess, nil, []string{soa})
	}
	up.delay = 5 * time.Millisecond
	e := newTestENR(t, DefaultConfig(), newFakeMapper(10), up)
	s := startStub(t, e, StubConfig{})
	var wg sync.WaitGroup
	errs := make(chan error, 16*40)
	for w := range 16 {
		wg.Go(func() {
			c := &dns.Client{Net: "udp", Timeout: 5 * time.Second}
			for i := range 40 {
				n := (i + w) % 40
				q := query(fmt.Sprintf("n%d.bih.test.", n), dns.TypeA)
				q.Id = uint16(w<<8 | i)
				r, _, err := c.Exchange(q, s.Addr().String())
				if err == nil && (r.Id != q.Id || len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != fmt.Sprintf("192.0.2.%d", n+1)) {
					err = fmt.Errorf("query %v got %v", q.Question[0], r)
				}
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestStubIgnoresResponses: a datagram with QR set gets no answer (two
// servers would bounce errors forever), and the stub keeps serving.
func TestStubIgnoresResponses(t *testing.T) {
	up := newFakeUpstream()
	up.set("x.bih.test.", dns.TypeTXT, dns.RcodeSuccess, []string{`x.bih.test. 60 IN TXT "ok"`}, nil)
	e := newTestENR(t, DefaultConfig(), newFakeMapper(1), up)
	s := startStub(t, e, StubConfig{})
	c, err := net.Dial("udp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	resp := query("x.bih.test.", dns.TypeTXT)
	resp.Response = true
	b, _ := resp.Pack()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := c.Read(make([]byte, 512)); err == nil {
		t.Fatalf("a response was answered (%d bytes)", n)
	}
	if r := exchange(t, "udp", s.Addr(), query("x.bih.test.", dns.TypeTXT)); len(r.Answer) != 1 {
		t.Fatalf("then: %v", r)
	}
}
