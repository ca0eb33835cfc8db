package enr

import (
	"encoding/binary"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsgIO moves the stub's datagrams with recvmmsg and sendmmsg issued as
// raw system calls on the non-blocking socket: an empty socket parks the
// reader in the netpoller, and no call goes through the runtime's
// blocking-call bookkeeping, which hands the P off and wakes the monitor
// thread whenever a call runs long (sendmmsg delivers the answers inside
// the call). Replies go back to the sockaddr the query came from, scope
// included.
type mmsgIO struct {
	rc   syscall.RawConn
	bufs [][]byte

	rh    []unix.Mmsghdr
	riov  []unix.Iovec
	rname []unix.RawSockaddrInet6 // large enough for either family
	wh    []unix.Mmsghdr
	wiov  []unix.Iovec

	// The calls as closures made once (one made per call escapes).
	recvFn, sendFn func(fd uintptr) bool
	want, got      int
	errno          syscall.Errno
}

// reusePortConfig listens with SO_REUSEPORT, so that each reader can have
// a socket of its own on the stub's address.
var reusePortConfig = net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}); err != nil {
		return err
	}
	return serr
}}

func newBatchIO(pc *net.UDPConn, n, size int) (batchIO, error) {
	rc, err := pc.SyscallConn()
	if err != nil {
		return nil, err
	}
	m := &mmsgIO{
		rc: rc, bufs: make([][]byte, n),
		rh: make([]unix.Mmsghdr, n), riov: make([]unix.Iovec, n), rname: make([]unix.RawSockaddrInet6, n),
		wh: make([]unix.Mmsghdr, n), wiov: make([]unix.Iovec, n),
	}
	for i := range n {
		m.bufs[i] = make([]byte, size)
		m.riov[i].Base = &m.bufs[i][0]
		m.riov[i].SetLen(size)
		m.rh[i].Hdr.Iov = &m.riov[i]
		m.rh[i].Hdr.SetIovlen(1)
		m.rh[i].Hdr.Name = (*byte)(unsafe.Pointer(&m.rname[i]))
		m.wh[i].Hdr.Iov = &m.wiov[i]
		m.wh[i].Hdr.SetIovlen(1)
	}
	m.recvFn = func(fd uintptr) bool {
		r, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&m.rh[0])), uintptr(len(m.rh)),
			unix.MSG_DONTWAIT, 0, 0)
		if e == unix.EAGAIN {
			return false
		}
		m.got, m.errno = int(r), e
		return true
	}
	m.sendFn = func(fd uintptr) bool {
		r, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&m.wh[0])), uintptr(m.want),
			unix.MSG_DONTWAIT, 0, 0)
		if e == unix.EAGAIN {
			return false
		}
		m.got, m.errno = int(r), e
		return true
	}
	return m, nil
}

func (m *mmsgIO) read() (int, error) {
	for i := range m.rh {
		m.rh[i].Hdr.Namelen = unix.SizeofSockaddrInet6
	}
	if err := m.rc.Read(m.recvFn); err != nil {
		return 0, err
	}
	if m.errno != 0 {
		return 0, m.errno
	}
	return m.got, nil
}

func (m *mmsgIO) datagram(i int) ([]byte, netip.AddrPort, bool) {
	from, ok := sockaddrAddrPort(&m.rname[i], m.rh[i].Hdr.Namelen)
	return m.bufs[i][:m.rh[i].Len], from, ok
}

func (m *mmsgIO) reply(out [][]byte, idx []int) (int, error) {
	for j, b := range out {
		if len(b) == 0 {
			b = []byte{0} // never: an answer has a header; keeps Base valid
		}
		m.wiov[j].Base = &b[0]
		m.wiov[j].SetLen(len(b))
		m.wh[j].Hdr.Name = m.rh[idx[j]].Hdr.Name
		m.wh[j].Hdr.Namelen = m.rh[idx[j]].Hdr.Namelen
	}
	m.want = len(out)
	if err := m.rc.Write(m.sendFn); err != nil {
		return 0, err
	}
	if m.errno != 0 {
		return 0, m.errno
	}
	return m.got, nil
}

// sockaddrAddrPort reads the sender recvmmsg wrote (IPv4 or IPv6).
func sockaddrAddrPort(sa *unix.RawSockaddrInet6, n uint32) (netip.AddrPort, bool) {
	port := func(p uint16) uint16 {
		b := (*[2]byte)(unsafe.Pointer(&p))
		return binary.BigEndian.Uint16(b[:])
	}
	switch {
	case sa.Family == unix.AF_INET6 && n >= unix.SizeofSockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), port(sa.Port)), true
	case sa.Family == unix.AF_INET && n >= unix.SizeofSockaddrInet4:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port(sa4.Port)), true
	}
	return netip.AddrPort{}, false
}
