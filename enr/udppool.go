package enr

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

// Sockets kept per upstream server, and their limits. A socket is retired
// after socketMaxUses queries or socketMaxAge, so its source port changes
// over time (RFC 5452 §9.2 asks for source-port randomization; the IDs stay
// random per query).
const (
	socketsPerServer = 4
	socketMaxPending = 4096
	socketMaxUses    = 50000
	socketMaxAge     = 2 * time.Minute
	maxServerPools   = 32
	idAttempts       = 16
)

var (
	errPoolClosed = errors.New("upstream closed")
	errSocketFull = errors.New("too many outstanding queries")
)

// udpPools holds the long-lived sockets of a DNSUpstream, one udpPool per
// server. Beyond maxServerPools servers (intercept mode asks whichever
// resolver the application used) queries use a socket of their own.
type udpPools struct {
	mu     sync.Mutex
	pools  map[netip.AddrPort]*udpPool
	closed bool
}

// get returns the pool for s, or nil when s gets no pool.
func (ps *udpPools) get(s netip.AddrPort, control controlFunc) *udpPool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.closed {
		return nil
	}
	if p := ps.pools[s]; p != nil {
		return p
	}
	if len(ps.pools) >= maxServerPools {
		return nil
	}
	if ps.pools == nil {
		ps.pools = make(map[netip.AddrPort]*udpPool)
	}
	p := &udpPool{server: s, control: control}
	ps.pools[s] = p
	return p
}

func (ps *udpPools) close() {
	ps.mu.Lock()
	pools := ps.pools
	ps.pools = nil
	ps.closed = true
	ps.mu.Unlock()
	for _, p := range pools {
		p.close()
	}
}

type controlFunc = func(network, address string, c syscall.RawConn) error

// udpPool multiplexes queries to one server over a few connected UDP
// sockets. Connecting means the kernel delivers only datagrams from the
// server's address and port; each response must also carry the ID of a
// waiting query and repeat its question (RFC 5452 §9.1), else it is dropped.
type udpPool struct {
	server  netip.AddrPort
	control controlFunc
	next    atomic.Uint32

	mu     sync.Mutex
	socks  [socketsPerServer]*udpSocket
	closed bool
	stats  poolStats
}

// poolStats counts what the pool did, for tests and troubleshooting.
type poolStats struct {
	dials, retired, dropped, fallbacks atomic.Uint64
}

// socket returns a usable socket, dialling or replacing one when needed.
func (p *udpPool) socket(ctx context.Context) (*udpSocket, error) {
	i := int(p.next.Add(1)) % socketsPerServer
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errPoolClosed
	}
	s := p.socks[i]
	if s != nil && s.usable() {
		return s, nil
	}
	if s != nil {
		p.stats.retired.Add(1)
		s.retire()
	}
	s, err := dialUDPSocket(ctx, p.server, p.control, &p.stats)
	if err != nil {
		p.socks[i] = nil
		return nil, err
	}
	p.stats.dials.Add(1)
	p.socks[i] = s
	return s, nil
}

func (p *udpPool) close() {
	p.mu.Lock()
	socks := p.socks
	p.socks = [socketsPerServer]*udpSocket{}
	p.closed = true
	p.mu.Unlock()
	for _, s := range socks {
		if s != nil {
			s.shutdown(errPoolClosed)
		}
	}
}

// exchange sends packed (whose ID is rewritten) for question q and waits
// for the matching response or ctx's end. The response comes back with the
// ID of the original query.
func (p *udpPool) exchange(ctx context.Context, packed []byte, q dns.Question) ([]byte, error) {
	s, err := p.socket(ctx)
	if err != nil {
		return nil, err
	}
	return s.exchange(ctx, packed, q)
}

// udpSocket is one connected socket with its reader goroutine and the
// queries waiting on it, by ID.
type udpSocket struct {
	conn    *net.UDPConn
	stats   *poolStats
	created time.Time

	mu       sync.Mutex
	pending  map[uint16]*udpCall
	uses     int
	retiring bool  // no new queries; closes once pending is empty
	err      error // set once the socket is dead
	done     chan struct{}
}

type udpCall struct {
	q    dns.Question
	resp chan []byte // buffered 1; receives one matching response
}

func dialUDPSocket(ctx context.Context, server netip.AddrPort, control controlFunc, stats *poolStats) (*udpSocket, error) {
	d := net.Dialer{Control: control}
	c, err := d.DialContext(ctx, "udp", server.String())
	if err != nil {
		return nil, err
	}
	s := &udpSocket{
		conn:    c.(*net.UDPConn),
		stats:   stats,
		created: time.Now(),
		pending: make(map[uint16]*udpCall),
		done:    make(chan struct{}),
	}
	go s.read()
	return s, nil
}

// usable reports whether new queries may use s; a full socket still is
// (its queries then take a socket of their own) so that overload does not
// open socket after socket.
func (s *udpSocket) usable() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err == nil && !s.retiring && s.uses < socketMaxUses && time.Since(s.created) < socketMaxAge
}

// retire stops new queries on s and closes it once the last one ends.
func (s *udpSocket) retire() {
	s.mu.Lock()
	s.retiring = true
	idle := len(s.pending) == 0
	s.mu.Unlock()
	if idle {
		s.shutdown(errPoolClosed)
	}
}

// shutdown closes the socket and fails every waiting query with err.
func (s *udpSocket) shutdown(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
		s.conn.Close()
	}
	calls := s.pending
	s.pending = map[uint16]*udpCall{}
	s.mu.Unlock()
	for _, c := range calls {
		close(c.resp)
	}
}

func (s *udpSocket) exchange(ctx context.Context, packed []byte, q dns.Question) ([]byte, error) {
	call := &udpCall{q: q, resp: make(chan []byte, 1)}
	s.mu.Lock()
	if s.err != nil {
		err := s.err
		s.mu.Unlock()
		return nil, err
	}
	if len(s.pending) >= socketMaxPending {
		s.mu.Unlock()
		return nil, errSocketFull
	}
	// A random ID no other waiting query on this socket uses.
	var id uint16
	found := false
	for range idAttempts {
		id = uint16(rand.Uint32())
		if _, taken := s.pending[id]; !taken {
			found = true
			break
		}
	}
	if !found {
		s.mu.Unlock()
		return nil, errSocketFull
	}
	s.pending[id] = call
	s.uses++
	s.mu.Unlock()

	packed[0], packed[1] = byte(id>>8), byte(id)
	if _, err := s.conn.Write(packed); err != nil {
		s.forget(id, call)
		return nil, err
	}
	select {
	case b, ok := <-call.resp:
		if !ok {
			return nil, s.deadErr()
		}
		return b, nil
	case <-ctx.Done():
		s.forget(id, call)
		return nil, ctx.Err()
	}
}

// forget removes a query that will not wait any longer; a late response to
// it is then dropped.
func (s *udpSocket) forget(id uint16, call *udpCall) {
	s.mu.Lock()
	if s.pending[id] == call {
		delete(s.pending, id)
	}
	closeNow := s.retiring && s.err == nil && len(s.pending) == 0
	s.mu.Unlock()
	if closeNow {
		s.shutdown(errPoolClosed)
	}
}

func (s *udpSocket) deadErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	return errPoolClosed
}

// read hands each datagram to the query it answers.
func (s *udpSocket) read() {
	defer close(s.done)
	buf := make([]byte, dns.MaxMsgSize)
	for {
		n, err := s.conn.Read(buf)
		if err != nil {
			if errors.Is(err, syscall.ECONNREFUSED) {
				// ICMP port unreachable: nothing listens there, so every
				// waiting query fails now instead of at its timeout.
				s.failPending(fmt.Errorf("read: %w", err))
				continue
			}
			s.shutdown(fmt.Errorf("read: %w", err))
			return
		}
		s.deliver(buf[:n])
	}
}

// failPending fails the queries waiting now; the socket stays open.
func (s *udpSocket) failPending(err error) {
	s.mu.Lock()
	calls := s.pending
	s.pending = map[uint16]*udpCall{}
	closeNow := s.retiring && s.err == nil
	s.mu.Unlock()
	for _, c := range calls {
		close(c.resp)
	}
	if closeNow {
		s.shutdown(err)
	}
}

func (s *udpSocket) deliver(b []byte) {
	if len(b) < 12 || b[2]&0x80 == 0 { // shorter than a header, or not a response
		s.stats.dropped.Add(1)
		return
	}
	id := uint16(b[0])<<8 | uint16(b[1])
	s.mu.Lock()
	call := s.pending[id]
	if call == nil || !wireQuestionIs(b, call.q) {
		s.mu.Unlock()
		s.stats.dropped.Add(1)
		return
	}
	delete(s.pending, id)
	closeNow := s.retiring && len(s.pending) == 0
	s.mu.Unlock()
	call.resp <- append([]byte(nil), b...)
	if closeNow {
		s.shutdown(errPoolClosed)
	}
}

// wireQuestionIs reports whether message b holds exactly one question, equal
// to q (names compared case-insensitively, RFC 4343). Question names are
// never compressed in a response's first question, but a pointer is
// followed anyway with a bound on jumps.
func wireQuestionIs(b []byte, q dns.Question) bool {
	if len(b) < 12 || b[4] != 0 || b[5] != 1 {
		return false
	}
	off := 12
	want := q.Name
	wi := 0 // position in want (presentation format, escapes not expected)
	end := -1
	for jumps := 0; ; {
		if off >= len(b) {
			return false
		}
		l := int(b[off])
		switch {
		case l == 0:
			off++
			if end < 0 {
				end = off
			}
			// The root label: want must be fully consumed ("." or "x.").
			if want == "." {
				return wi == 0 && tail(b, end, q)
			}
			return wi == len(want) && tail(b, end, q)
		case l&0xc0 == 0xc0:
			if off+1 >= len(b) || jumps >= 8 {
				return false
			}
			if end < 0 {
				end = off + 2
			}
			off = (l&0x3f)<<8 | int(b[off+1])
			jumps++
		case l&0xc0 != 0:
			return false
		default:
			off++
			if off+l > len(b) || wi+l >= len(want) || want[wi+l] != '.' {
				return false
			}
			for i := range l {
				c, w := b[off+i], want[wi+i]
				if c == '.' || c == '\\' || w == '\\' {
					return false // escaped labels: not worth matching by hand
				}
				if lower(c) != lower(w) {
					return false
				}
			}
			off += l
			wi += l + 1
		}
	}
}

func tail(b []byte, off int, q dns.Question) bool {
	if off+4 > len(b) {
		return false
	}
	return uint16(b[off])<<8|uint16(b[off+1]) == q.Qtype && uint16(b[off+2])<<8|uint16(b[off+3]) == q.Qclass
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
