//go:build !linux

package enr

import (
	"net"
	"net/netip"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// xnetIO moves the stub's datagrams through golang.org/x/net's batch calls
// (one datagram per call where the system has no recvmmsg).
type xnetIO struct {
	bc interface {
		ReadBatch(ms []ipv6.Message, flags int) (int, error)
		WriteBatch(ms []ipv6.Message, flags int) (int, error)
	}
	in, out []ipv6.Message
}

// reusePortConfig: one socket, shared by the readers.
var reusePortConfig net.ListenConfig

func newBatchIO(pc *net.UDPConn, n, size int) (batchIO, error) {
	x := &xnetIO{in: make([]ipv6.Message, n), out: make([]ipv6.Message, n)}
	x.bc = ipv6.NewPacketConn(pc)
	if a := pc.LocalAddr().(*net.UDPAddr); a.IP.To4() != nil {
		x.bc = ipv4.NewPacketConn(pc)
	}
	for i := range x.in {
		x.in[i].Buffers = [][]byte{make([]byte, size)}
		x.out[i].Buffers = make([][]byte, 1)
	}
	return x, nil
}

func (x *xnetIO) read() (int, error) { return x.bc.ReadBatch(x.in, 0) }

func (x *xnetIO) datagram(i int) ([]byte, netip.AddrPort, bool) {
	a, ok := x.in[i].Addr.(*net.UDPAddr)
	if !ok {
		return nil, netip.AddrPort{}, false
	}
	return x.in[i].Buffers[0][:x.in[i].N], a.AddrPort(), true
}

func (x *xnetIO) reply(out [][]byte, idx []int) (int, error) {
	for j, b := range out {
		x.out[j].Buffers[0], x.out[j].Addr = b, x.in[idx[j]].Addr
	}
	return x.bc.WriteBatch(x.out[:len(out)], 0)
}
