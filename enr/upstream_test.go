package enr

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestDNSUpstreamTCPRetry: a truncated UDP answer is asked again over TCP.
func TestDNSUpstreamTCPRetry(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	ln, err := net.Listen("tcp", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)).String())
	if err != nil {
		pc.Close()
		t.Skipf("TCP port %d taken: %v", port, err)
	}
	answer := func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		if w.LocalAddr().Network() == "udp" {
			m.Truncated = true
		} else {
			m.Answer = rrs("big.bih.test. 60 IN AAAA 2001:db8::1")
		}
		_ = w.WriteMsg(m) // the test fails below if it did not arrive
	}
	udpSrv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(answer)}
	tcpSrv := &dns.Server{Listener: ln, Handler: dns.HandlerFunc(answer)}
	for _, s := range []*dns.Server{udpSrv, tcpSrv} {
		go func() { _ = s.ActivateAndServe() }() // ends at Shutdown
		defer s.Shutdown()
	}
	u := &DNSUpstream{Servers: []netip.AddrPort{netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))}}
	q := new(dns.Msg)
	q.SetQuestion("big.bih.test.", dns.TypeAAAA)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var r *dns.Msg
	for range 20 { // the servers start asynchronously
		if r, err = u.Exchange(ctx, q, netip.AddrPort{}); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	if r.Truncated || len(r.Answer) != 1 {
		t.Fatalf("answer %v, want the full TCP answer", r)
	}
	if _, err := (&DNSUpstream{}).Exchange(ctx, q, netip.AddrPort{}); err == nil {
		t.Fatal("no server: no error")
	}
}

// testServer is a UDP responder on loopback whose behaviour each test sets:
// answer is called per query and sends whatever it likes through reply.
type testServer struct {
	pc   *net.UDPConn
	addr netip.AddrPort

	mu      sync.Mutex
	ports   map[uint16]int // queries per client source port
	ids     []uint16
	handler func(q *dns.Msg, from netip.AddrPort, send func(*dns.Msg))
}

func startTestServer(t *testing.T, handler func(q *dns.Msg, from netip.AddrPort, send func(*dns.Msg))) *testServer {
	t.Helper()
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{pc: pc, addr: pc.LocalAddr().(*net.UDPAddr).AddrPort(), ports: map[uint16]int{}, handler: handler}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65535)
		for {
			n, from, err := pc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return // closed at cleanup
			}
			q := new(dns.Msg)
			if q.Unpack(buf[:n]) != nil {
				continue
			}
			s.mu.Lock()
			s.ports[from.Port()]++
			s.ids = append(s.ids, q.Id)
			h := s.handler
			s.mu.Unlock()
			h(q, from, func(m *dns.Msg) {
				b, err := m.Pack()
				if err != nil {
					panic(err) // test data bug
				}
				_, _ = pc.WriteToUDPAddrPort(b, from) // loss shows as a test failure
			})
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
	return s
}

func (s *testServer) sourcePorts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ports)
}

// answerAAAA answers every AAAA query for nN.bih.test with 2001:db8::N.
func answerAAAA(q *dns.Msg, _ netip.AddrPort, send func(*dns.Msg)) {
	r := new(dns.Msg)
	r.SetReply(q)
	name := q.Question[0].Name
	var n int
	if _, err := fmt.Sscanf(name, "n%d.", &n); err == nil {
		r.Answer = rrs(fmt.Sprintf("%s 60 IN AAAA 2001:db8::%x", name, n))
	}
	send(r)
}

func aaaaQuery(n int) *dns.Msg {
	q := new(dns.Msg)
	q.SetQuestion(fmt.Sprintf("n%d.bih.test.", n), dns.TypeAAAA)
	q.Id = uint16(n) // the caller's ID; the wire carries another
	return q
}

func checkAAAA(r *dns.Msg, n int) error {
	want := netip.MustParseAddr(fmt.Sprintf("2001:db8::%x", n)).String()
	if r.Id != uint16(n) {
		return fmt.Errorf("n%d: id %d, want the caller's %d", n, r.Id, n)
	}
	if len(r.Answer) != 1 {
		return fmt.Errorf("n%d: %d answers", n, len(r.Answer))
	}
	if a, ok := r.Answer[0].(*dns.AAAA); !ok || a.AAAA.String() != want {
		return fmt.Errorf("n%d: answer %v, want %s", n, r.Answer[0], want)
	}
	return nil
}

// TestDNSUpstreamReusesSockets: many queries, sequential and concurrent,
// leave through at most socketsPerServer sockets, each one passed through
// Control, and Close ends their readers.
func TestDNSUpstreamReusesSockets(t *testing.T) {
	srv := startTestServer(t, answerAAAA)
	var controls atomic.Int32
	u := &DNSUpstream{Servers: []netip.AddrPort{srv.addr}, Control: func(network, address string, c syscall.RawConn) error {
		controls.Add(1)
		return nil
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for n := range 200 {
		r, err := u.Exchange(ctx, aaaaQuery(n), netip.AddrPort{})
		if err != nil {
			t.Fatal(err)
		}
		if err := checkAAAA(r, n); err != nil {
			t.Fatal(err)
		}
	}
	// 16 goroutines at once: more would overflow the test server's
	// receive buffer, and loss is not what this test is about.
	var wg sync.WaitGroup
	errs := make(chan error, 400)
	for w := range 16 {
		wg.Go(func() {
			for n := 200 + w; n < 600; n += 16 {
				r, err := u.Exchange(ctx, aaaaQuery(n), netip.AddrPort{})
				if err == nil {
					err = checkAAAA(r, n)
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
	if p := srv.sourcePorts(); p < 1 || p > min(socketsPerServer, 16) {
		t.Errorf("600 queries came from %d source ports, want a few (at most %d)", p, min(socketsPerServer, 16))
	}
	pool := u.pools.get(srv.addr, nil)
	if d := pool.stats.dials.Load(); int(controls.Load()) != int(d) || d > socketsPerServer {
		t.Errorf("%d sockets dialled, Control called %d times", d, controls.Load())
	}
	socks := pool.socks
	u.Close()
	for _, s := range socks {
		if s == nil {
			continue
		}
		select {
		case <-s.done:
		case <-time.After(5 * time.Second):
			t.Fatal("a socket reader still runs after Close")
		}
	}
	// Closed: a query still works, over a socket of its own.
	if r, err := u.Exchange(ctx, aaaaQuery(7), netip.AddrPort{}); err != nil || checkAAAA(r, 7) != nil {
		t.Fatalf("after Close: %v %v", r, err)
	}
}

// TestDNSUpstreamConcurrentOutOfOrder: responses arriving in reverse order
// each reach their own query.
func TestDNSUpstreamConcurrentOutOfOrder(t *testing.T) {
	const n = 64 // in one burst: more may overflow the server's receive buffer
	var (
		mu    sync.Mutex
		batch []func()
	)
	srv := startTestServer(t, func(q *dns.Msg, from netip.AddrPort, send func(*dns.Msg)) {
		mu.Lock()
		defer mu.Unlock()
		batch = append(batch, func() { answerAAAA(q, from, send) })
		if len(batch) == n {
			for i := len(batch) - 1; i >= 0; i-- {
				batch[i]()
			}
		}
	})
	u := &DNSUpstream{Servers: []netip.AddrPort{srv.addr}}
	defer u.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			r, err := u.Exchange(ctx, aaaaQuery(i), netip.AddrPort{})
			if err == nil {
				err = checkAAAA(r, i)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	srv.mu.Lock()
	seen := map[uint16]bool{}
	for _, id := range srv.ids {
		seen[id] = true
	}
	srv.mu.Unlock()
	// 64 IDs drawn from 65,536: a repeat has a chance of about 3 %, two
	// of well under 1 %; more means they are not random.
	if len(seen) < n-2 {
		t.Errorf("%d distinct IDs on the wire for %d queries", len(seen), n)
	}
}

// TestDNSUpstreamDropsMismatched: before the real answer, the server sends
// datagrams with the right ID but another question, type or class, another
// ID, a query instead of a response, two questions, and one comes from
// another source port. None of them may be taken for the answer.
func TestDNSUpstreamDropsMismatched(t *testing.T) {
	other, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	srv := startTestServer(t, func(q *dns.Msg, from netip.AddrPort, send func(*dns.Msg)) {
		bad := func(edit func(r *dns.Msg)) {
			r := new(dns.Msg)
			r.SetReply(q)
			r.Answer = rrs(q.Question[0].Name + " 60 IN AAAA 2001:db8::bad")
			edit(r)
			send(r)
		}
		bad(func(r *dns.Msg) { r.Question[0].Name = "other.bih.test." })
		bad(func(r *dns.Msg) { r.Question[0].Qtype = dns.TypeA })
		bad(func(r *dns.Msg) { r.Question[0].Qclass = dns.ClassCHAOS })
		bad(func(r *dns.Msg) { r.Id++ })
		bad(func(r *dns.Msg) { r.Response = false })
		bad(func(r *dns.Msg) { r.Question = append(r.Question, r.Question[0]) })
		bad(func(r *dns.Msg) { r.Question = nil })
		spoof := new(dns.Msg)
		spoof.SetReply(q)
		spoof.Answer = rrs(q.Question[0].Name + " 60 IN AAAA 2001:db8::bad")
		b, _ := spoof.Pack()
		_, _ = other.WriteToUDPAddrPort(b, from) // dropped by the kernel: the socket is connected
		time.Sleep(20 * time.Millisecond)        // let the bad ones arrive first
		r := new(dns.Msg)
		r.SetReply(q)
		r.Question[0].Name = strings.ToUpper(r.Question[0].Name) // 0x20 case is still a match
		r.Answer = rrs(q.Question[0].Name + " 60 IN AAAA 2001:db8::600d")
		send(r)
	})
	u := &DNSUpstream{Servers: []netip.AddrPort{srv.addr}}
	defer u.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	q := new(dns.Msg)
	q.SetQuestion("Mixed.Bih.Test.", dns.TypeAAAA)
	r, err := u.Exchange(ctx, q, netip.AddrPort{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Answer) != 1 || r.Answer[0].(*dns.AAAA).AAAA.String() != "2001:db8::600d" {
		t.Fatalf("accepted %v", r)
	}
	if got := u.pools.get(srv.addr, nil).stats.dropped.Load(); got != 7 {
		t.Errorf("%d datagrams dropped, want 7", got)
	}
}

// TestDNSUpstreamTimeout: a query nobody answers fails at ctx's deadline
// and leaves nothing behind; its late answer is dropped and the socket keeps
// serving.
func TestDNSUpstreamTimeout(t *testing.T) {
	var (
		mu   sync.Mutex
		held []func()
	)
	srv := startTestServer(t, func(q *dns.Msg, from netip.AddrPort, send func(*dns.Msg)) {
		if strings.HasPrefix(q.Question[0].Name, "n1.") {
			mu.Lock()
			held = append(held, func() { answerAAAA(q, from, send) })
			mu.Unlock()
			return
		}
		answerAAAA(q, from, send)
	})
	u := &DNSUpstream{Servers: []netip.AddrPort{srv.addr}}
	defer u.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	start := time.Now()
	_, err := u.Exchange(ctx, aaaaQuery(1), netip.AddrPort{})
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want the deadline", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("timed out after %v", d)
	}
	pool := u.pools.get(srv.addr, nil)
	for _, s := range pool.socks {
		if s != nil {
			s.mu.Lock()
			n := len(s.pending)
			s.mu.Unlock()
			if n != 0 {
				t.Fatalf("%d queries still pending after the timeout", n)
			}
		}
	}
	mu.Lock()
	for _, f := range held {
		f()
	}
	mu.Unlock()
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for n := 2; n < 10; n++ {
		r, err := u.Exchange(ctx, aaaaQuery(n), netip.AddrPort{})
		if err == nil {
			err = checkAAAA(r, n)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if d := pool.stats.dropped.Load(); d != 1 {
		t.Errorf("late answers dropped: %d, want 1", d)
	}
}

// TestDNSUpstreamRefused: ICMP port unreachable fails the query at once,
// and the next server is asked.
func TestDNSUpstreamRefused(t *testing.T) {
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	dead := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	pc.Close() // nothing listens there now
	srv := startTestServer(t, answerAAAA)
	u := &DNSUpstream{Servers: []netip.AddrPort{dead, srv.addr}}
	defer u.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	r, err := u.Exchange(ctx, aaaaQuery(3), netip.AddrPort{})
	if err == nil {
		err = checkAAAA(r, 3)
	}
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("refused server cost %v", d)
	}
}

// TestUDPSocketIDCollision: with most of a socket's table taken, a new
// query still gets an ID of its own, and a full table is refused (the
// upstream then falls back to a socket of its own).
func TestUDPSocketIDCollision(t *testing.T) {
	srv := startTestServer(t, answerAAAA)
	u := &DNSUpstream{Servers: []netip.AddrPort{srv.addr}}
	defer u.Close()
	pool := u.pools.get(srv.addr, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := pool.socket(ctx)
	if err != nil {
		t.Fatal(err)
	}
	taken := map[uint16]bool{}
	s.mu.Lock()
	for id := range socketMaxPending - 1 {
		c := &udpCall{resp: make(chan []byte, 1)}
		s.pending[uint16(id*16)] = c
		taken[uint16(id*16)] = true
	}
	s.mu.Unlock()
	q := aaaaQuery(5)
	packed, _ := q.Pack()
	b, err := s.exchange(ctx, packed, q.Question[0])
	if err != nil {
		t.Fatal(err)
	}
	r := new(dns.Msg)
	if err := r.Unpack(b); err != nil {
		t.Fatal(err)
	}
	if taken[r.Id] {
		t.Fatalf("query sent with ID %d, already taken", r.Id)
	}
	s.mu.Lock()
	s.pending[1] = &udpCall{resp: make(chan []byte, 1)}
	s.mu.Unlock()
	if _, err := s.exchange(ctx, packed, q.Question[0]); !errors.Is(err, errSocketFull) {
		t.Fatalf("full socket: %v", err)
	}
	// Through the upstream: every pooled socket full, the query still goes.
	for range socketsPerServer {
		if _, err := pool.socket(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range pool.socks {
		s.mu.Lock()
		for id := range socketMaxPending {
			if _, ok := s.pending[uint16(id)]; !ok {
				s.pending[uint16(id)] = &udpCall{resp: make(chan []byte, 1)}
			}
			if len(s.pending) >= socketMaxPending {
				break
			}
		}
		s.mu.Unlock()
	}
	r, err = u.Exchange(ctx, aaaaQuery(9), netip.AddrPort{})
	if err == nil {
		err = checkAAAA(r, 9)
	}
	if err != nil {
		t.Fatal(err)
	}
	if pool.stats.fallbacks.Load() != 1 {
		t.Errorf("%d queries on a socket of their own, want 1", pool.stats.fallbacks.Load())
	}
}

// TestUDPSocketRetires: a socket that reached its query budget is replaced
// (new source port) and closed once its last query is answered.
func TestUDPSocketRetires(t *testing.T) {
	srv := startTestServer(t, answerAAAA)
	u := &DNSUpstream{Servers: []netip.AddrPort{srv.addr}}
	defer u.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := u.Exchange(ctx, aaaaQuery(1), netip.AddrPort{}); err != nil {
		t.Fatal(err)
	}
	pool := u.pools.get(srv.addr, nil)
	pool.mu.Lock()
	var old []*udpSocket
	for _, s := range pool.socks {
		if s != nil {
			s.mu.Lock()
			s.uses = socketMaxUses
			s.mu.Unlock()
			old = append(old, s)
		}
	}
	pool.mu.Unlock()
	for n := 2; n < 2+2*socketsPerServer; n++ {
		r, err := u.Exchange(ctx, aaaaQuery(n), netip.AddrPort{})
		if err == nil {
			err = checkAAAA(r, n)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range old {
		select {
		case <-s.done:
		case <-time.After(5 * time.Second):
			t.Fatal("retired socket still open")
		}
	}
	if pool.stats.retired.Load() == 0 || srv.sourcePorts() < 2 {
		t.Errorf("retired %d sockets, %d source ports", pool.stats.retired.Load(), srv.sourcePorts())
	}
}

func TestWireQuestionIs(t *testing.T) {
	q := dns.Question{Name: "www.Bih.test.", Qtype: dns.TypeAAAA, Qclass: dns.ClassINET}
	pack := func(edit func(m *dns.Msg)) []byte {
		m := new(dns.Msg)
		m.SetQuestion("WWW.bih.TEST.", dns.TypeAAAA)
		m.Response = true
		edit(m)
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	same := pack(func(*dns.Msg) {})
	if !wireQuestionIs(same, q) {
		t.Error("case-insensitive match refused")
	}
	for name, b := range map[string][]byte{
		"other name":   pack(func(m *dns.Msg) { m.Question[0].Name = "ww.bih.test." }),
		"longer name":  pack(func(m *dns.Msg) { m.Question[0].Name = "www.bih.test.x." }),
		"shorter name": pack(func(m *dns.Msg) { m.Question[0].Name = "www.bih." }),
		"type":         pack(func(m *dns.Msg) { m.Question[0].Qtype = dns.TypeA }),
		"class":        pack(func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS }),
		"two":          pack(func(m *dns.Msg) { m.Question = append(m.Question, m.Question[0]) }),
		"none":         pack(func(m *dns.Msg) { m.Question = nil }),
		"escaped dot":  pack(func(m *dns.Msg) { m.Question[0].Name = `www\.bih.test.` }),
		"cut":          same[:len(same)-1],
		"header only":  same[:12],
	} {
		if wireQuestionIs(b, q) {
			t.Errorf("%s: matched", name)
		}
	}
	root := dns.Question{Name: ".", Qtype: dns.TypeNS, Qclass: dns.ClassINET}
	if !wireQuestionIs(pack(func(m *dns.Msg) { m.Question[0] = root }), root) {
		t.Error("root name refused")
	}
	if wireQuestionIs(same, root) {
		t.Error("root matched www.bih.test")
	}
	// A pointer loop ends.
	loop := append([]byte(nil), same[:12]...)
	loop = append(loop, 0xc0, 12, 0, 28, 0, 1)
	if wireQuestionIs(loop, q) {
		t.Error("pointer loop matched")
	}
}
