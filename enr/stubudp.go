package enr

import (
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
// CPU, without per-read deadlines or control messages) and each query is
// answered in a goroutine of its own, since it may wait on the upstream.
type udpServer struct {
	stub     *Stub
	pc       *net.UDPConn
	inflight atomic.Int64
	readers  sync.WaitGroup
	handlers sync.WaitGroup
}

var packBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1232); return &b }}

func (u *udpServer) start() {
	n := min(runtime.GOMAXPROCS(0), 8)
	for range n {
		u.readers.Go(u.read)
	}
}

// close stops reading and returns a channel closed once every query taken
// has been answered.
func (u *udpServer) close() <-chan struct{} {
	u.pc.Close()
	done := make(chan struct{})
	go func() {
		u.readers.Wait()
		u.handlers.Wait()
		close(done)
	}()
	return done
}

func (u *udpServer) read() {
	buf := make([]byte, dns.MaxMsgSize)
	for {
		n, from, err := u.pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		// Never answer a response (QR set): two servers could bounce
		// errors at each other forever.
		if n < 12 || buf[2]&0x80 != 0 {
			continue
		}
		m := new(dns.Msg)
		if m.Unpack(buf[:n]) != nil {
			continue // malformed: no answer, as for garbage
		}
		ip, size := from.Addr().Unmap(), clientUDPSize(m)
		if out := u.stub.refuse(ip, m); out != nil {
			u.send(out, from)
			continue
		}
		plan := u.stub.enr.Plan(m)
		// Answers wholly in the cache go out from here, without a
		// goroutine of their own.
		if out := u.stub.enr.resolveCached(m, plan, ip, size); out != nil {
			u.send(out, from)
			continue
		}
		if u.inflight.Add(1) > maxUDPInFlight {
			u.inflight.Add(-1)
			continue
		}
		u.handlers.Add(1)
		go func() {
			defer u.handlers.Done()
			defer u.inflight.Add(-1)
			u.send(u.stub.resolve(m, plan, ip, size), from)
		}()
	}
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
