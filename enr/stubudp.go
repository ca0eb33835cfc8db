package enr

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/miekg/dns"
)

// maxUDPInFlight bounds the stub's UDP queries being answered at once;
// beyond it new queries are dropped and the clients retry.
const maxUDPInFlight = 8192

// udpServer answers the stub's UDP queries: a few goroutines read (one per
// P, up to 8, several datagrams per system call, no per-read deadline) and
// answer from the cache in batches; a query that must wait on the upstream
// is answered by a goroutine of its own. Where the system has SO_REUSEPORT,
// each reader has a socket of its own on the same address, so that the
// kernel spreads clients over them and readers never queue on one socket.
type udpServer struct {
	stub     *Stub
	pc       *net.UDPConn
	extra    []*net.UDPConn // the other readers' sockets (SO_REUSEPORT)
	inflight atomic.Int64
	readers  sync.WaitGroup
	handlers sync.WaitGroup
}

var packBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1232); return &b }}

func (u *udpServer) start() error {
	n := min(runtime.GOMAXPROCS(0), 8)
	pcs := []*net.UDPConn{u.pc}
	if reusePortConfig.Control != nil {
		for len(pcs) < n {
			c, err := reusePortConfig.ListenPacket(context.Background(), "udp", u.pc.LocalAddr().String())
			if err != nil {
				u.closeExtra()
				return err
			}
			u.extra = append(u.extra, c.(*net.UDPConn))
			pcs = append(pcs, c.(*net.UDPConn))
		}
	}
	bios := make([]batchIO, n)
	for i := range bios {
		var err error
		if bios[i], err = newBatchIO(pcs[i%len(pcs)], udpBatch, dns.MaxMsgSize); err != nil {
			u.closeExtra()
			return err
		}
	}
	for _, bio := range bios {
		u.readers.Go(func() { u.read(bio) })
	}
	return nil
}

// close stops reading and returns a channel closed once every query taken
// has been answered.
func (u *udpServer) close() <-chan struct{} {
	u.pc.Close()
	u.closeExtra()
	done := make(chan struct{})
	go func() {
		u.readers.Wait()
		u.handlers.Wait()
		close(done)
	}()
	return done
}

func (u *udpServer) closeExtra() {
	for _, c := range u.extra {
		c.Close()
	}
}

// batchIO moves several datagrams per system call (recvmmsg, sendmmsg)
// through buffers of its own.
type batchIO interface {
	// read waits for datagrams and returns how many arrived.
	read() (int, error)
	// datagram returns the i-th datagram read and its sender (false when
	// the sender is not an IP address).
	datagram(i int) ([]byte, netip.AddrPort, bool)
	// reply sends out[j] to the sender of datagram idx[j] and returns
	// how many went.
	reply(out [][]byte, idx []int) (int, error)
}

// udpBatch is how many datagrams one read or write system call moves.
const udpBatch = 16

func (u *udpServer) read(bio batchIO) {
	replies := make([][]byte, udpBatch)
	out := make([][]byte, 0, udpBatch)
	idx := make([]int, 0, udpBatch)
	var key []byte
	e := u.stub.enr
	for {
		n, err := bio.read()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		out, idx = out[:0], idx[:0]
		for i := range n {
			// A 64 KiB buffer holds any UDP payload: nothing is cut.
			b, from, ok := bio.datagram(i)
			if !ok {
				continue
			}
			// Never answer a response (QR set): two servers could
			// bounce errors at each other forever.
			if len(b) < 12 || b[2]&0x80 != 0 {
				continue
			}
			ip, now := from.Addr().Unmap(), e.cfg.Now()
			if u.stub.allowedIP(ip) { // else take refuses it
				key = packedKey(key[:0], ip, b)
				if p, ok := e.packed.answer(replies[len(out)][:0], key, b, ip, e.rules.mapper, now); ok {
					replies[len(out)] = p
					out, idx = append(out, p), append(idx, i)
					continue
				}
			}
			reply, synth := u.take(b, ip, from)
			if reply == nil {
				continue
			}
			p, err := reply.PackBuffer(replies[len(out)][:0])
			if err != nil {
				continue
			}
			if synth != nil && !e.pass.Load() {
				e.packed.put(key, p, synth, now)
			}
			replies[len(out)] = p
			out, idx = append(out, p), append(idx, i)
		}
		// Answers from the cache leave together; a failed one is skipped
		// (that client retries).
		for sent := 0; sent < len(out); {
			w, err := bio.reply(out[sent:], idx[sent:])
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				w = max(w, 1)
			}
			sent += w
		}
	}
}

// take handles one datagram from ip (as the stub sees the client) at from:
// it returns the reply to send now (from the cache, or a local refusal), or
// nil when there is none or when a goroutine of its own answers the query
// once the upstream has. A synthesized reply comes with its records, for
// the packed cache.
func (u *udpServer) take(b []byte, ip netip.Addr, from netip.AddrPort) (*dns.Msg, []synthAddr) {
	m := new(dns.Msg)
	if m.Unpack(b) != nil {
		return nil, nil // malformed: no answer, as for garbage
	}
	size := clientUDPSize(m)
	if out := u.stub.refuse(ip, m); out != nil {
		return out, nil
	}
	plan := u.stub.enr.Plan(m)
	if out, synthesized := u.stub.enr.resolveCached(m, plan, ip, size); out != nil {
		var synth []synthAddr
		if synthesized {
			synth, _ = u.stub.enr.synthesized(out)
		}
		return out, synth
	}
	if u.inflight.Add(1) > maxUDPInFlight {
		u.inflight.Add(-1)
		return nil, nil
	}
	u.handlers.Add(1)
	go func() {
		defer u.handlers.Done()
		defer u.inflight.Add(-1)
		u.send(u.stub.resolve(m, plan, ip, size), from)
	}()
	return nil, nil
}

func (u *udpServer) send(out *dns.Msg, to netip.AddrPort) {
	bp := packBufs.Get().(*[]byte)
	b, err := out.PackBuffer(*bp)
	if err == nil {
		// A failed send is the client's loss; it retries.
		_, _ = u.pc.WriteToUDPAddrPort(b, to)
	}
	if cap(b) <= 4096 {
		*bp = b[:0]
		packBufs.Put(bp)
	}
}
