package enr

import (
	"errors"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// maxUDPInFlight bounds the stub's UDP queries being answered at once;
// beyond it new queries are dropped and the clients retry.
const maxUDPInFlight = 8192

// udpServer answers the stub's UDP queries: a few goroutines read (one per
// CPU, several datagrams per system call, without per-read deadlines) and
// answer from the cache in batches; a query that must wait on the upstream
// is answered by a goroutine of its own.
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

// batchConn reads and writes several datagrams per system call
// (recvmmsg, sendmmsg); ipv4.PacketConn and ipv6.PacketConn both are one.
type batchConn interface {
	ReadBatch(ms []ipv6.Message, flags int) (int, error)
	WriteBatch(ms []ipv6.Message, flags int) (int, error)
}

// udpBatch is how many datagrams one read or write system call moves.
const udpBatch = 16

func (u *udpServer) read() {
	var bc batchConn = ipv6.NewPacketConn(u.pc)
	if a := u.pc.LocalAddr().(*net.UDPAddr); a.IP.To4() != nil {
		bc = ipv4.NewPacketConn(u.pc)
	}
	in := make([]ipv6.Message, udpBatch)
	for i := range in {
		in[i].Buffers = [][]byte{make([]byte, dns.MaxMsgSize)}
	}
	out := make([]ipv6.Message, udpBatch)
	replies := make([][]byte, udpBatch)
	for i := range out {
		out[i].Buffers = make([][]byte, 1)
	}
	for {
		n, err := bc.ReadBatch(in, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		k := 0
		for _, m := range in[:n] {
			// A 64 KiB buffer holds any UDP payload: nothing is cut.
			a, ok := m.Addr.(*net.UDPAddr)
			if !ok {
				continue
			}
			reply := u.take(m.Buffers[0][:m.N], a.AddrPort())
			if reply == nil {
				continue
			}
			b, err := reply.PackBuffer(replies[k][:0])
			if err != nil {
				continue
			}
			replies[k] = b
			out[k].Buffers[0], out[k].Addr = b, m.Addr
			k++
		}
		// Answers from the cache leave together; a failed one is skipped
		// (that client retries).
		for sent := 0; sent < k; {
			w, err := bc.WriteBatch(out[sent:k], 0)
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

// take handles one datagram: it returns the reply to send now (from the
// cache, or a local refusal), or nil when there is none or when a goroutine
// of its own answers the query once the upstream has.
func (u *udpServer) take(b []byte, from netip.AddrPort) *dns.Msg {
	// Never answer a response (QR set): two servers could bounce errors
	// at each other forever.
	if len(b) < 12 || b[2]&0x80 != 0 {
		return nil
	}
	m := new(dns.Msg)
	if m.Unpack(b) != nil {
		return nil // malformed: no answer, as for garbage
	}
	ip, size := from.Addr().Unmap(), clientUDPSize(m)
	if out := u.stub.refuse(ip, m); out != nil {
		return out
	}
	plan := u.stub.enr.Plan(m)
	if out := u.stub.enr.resolveCached(m, plan, ip, size); out != nil {
		return out
	}
	if u.inflight.Add(1) > maxUDPInFlight {
		u.inflight.Add(-1)
		return nil
	}
	u.handlers.Add(1)
	go func() {
		defer u.handlers.Done()
		defer u.inflight.Add(-1)
		u.send(u.stub.resolve(m, plan, ip, size), from)
	}()
	return nil
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
