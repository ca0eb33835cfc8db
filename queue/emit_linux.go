package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Emitter sends finished IPv4 and IPv6 packets through raw IPPROTO_RAW
// sockets (the header is sent as built), a batch per family per sendmmsg.
// Every socket carries the daemon's mark so the ruleset accepts our own
// packets before any queue rule. Not safe for concurrent use: one per worker.
//
// The sockets block and stay out of the Go netpoller: a socket in epoll
// takes a wake-up callback for every sent packet the kernel frees. Sends
// are raw system calls (see Conn.recvFn): they wait only for send buffer
// space, bounded by a timeout, and a signal (the runtime's preemption)
// interrupts that wait.
type Emitter struct {
	fam [2]emitQueue // 0: IPv4, 1: IPv6

	// arena holds copies of packets that would not outlive their source
	// buffer (translator scratch: fragments, generated errors).
	arena []byte
	used  int

	sent, failed uint64
	// LastErr is the most recent send error, for logs.
	LastErr error

	// tun is the TUN link's descriptor for whole super-packets, -1 if none.
	tun  int
	vhdr [virtioNetHdrLen]byte
	wiov [2]unix.Iovec
	// A UDP train is written from its own headers (thdr) and its
	// datagrams' payloads in place (tiov). noTrains is set when the kernel
	// refused one (it then goes out datagram by datagram).
	thdr     [48]byte
	tiov     []unix.Iovec
	noTrains bool
	trains   uint64
}

type emitQueue struct {
	file *os.File
	rc   syscall.RawConn
	n    int
	pkts [][]byte
	iov  []unix.Iovec
	hdrs []unix.Mmsghdr
	sa4  []unix.RawSockaddrInet4
	sa6  []unix.RawSockaddrInet6
	// cmsg holds one IPV6_PKTINFO per IPv6 message (nil: not used).
	cmsg []byte

	// sendFn is the sendmmsg call, made once (see Conn.recvFn).
	sendFn     func(fd uintptr) bool
	start, end int
	sent       int
	serr       syscall.Errno
}

// pktinfoSpace is one IPV6_PKTINFO control message.
var pktinfoSpace = unix.CmsgSpace(unix.SizeofInet6Pktinfo)

// EmitterConfig configures the raw sockets.
type EmitterConfig struct {
	Mark  uint32 // SO_MARK on every socket
	Batch int    // packets per family per flush (default 128)
	NetNS int    // network namespace fd, 0 for the current one
	// TUN, when set, takes IPv6 TCP super-packets whole (AddWhole), and
	// runs of UDP datagrams as trains (Flush): a TUN
	// link opened with a virtio-net header (IFF_VNET_HDR) whose packets the
	// kernel forwards. Shared by every Emitter; the caller closes it.
	TUN *os.File
}

// NewEmitter opens the two raw sockets. It needs CAP_NET_RAW and, for the
// mark, CAP_NET_ADMIN.
func NewEmitter(cfg EmitterConfig) (*Emitter, error) {
	if cfg.Batch <= 0 {
		cfg.Batch = 128
	}
	e := &Emitter{arena: make([]byte, cfg.Batch*2*2048), tun: -1}
	if cfg.TUN != nil {
		rc, err := cfg.TUN.SyscallConn()
		if err != nil {
			return nil, fmt.Errorf("TUN writer: %w", err)
		}
		// The descriptor is only written with raw system calls of our own
		// (a TUN write never waits); it must outlive the Emitter.
		if err := rc.Control(func(fd uintptr) { e.tun = int(fd) }); err != nil {
			return nil, fmt.Errorf("TUN writer: %w", err)
		}
	}
	for i, af := range []int{unix.AF_INET, unix.AF_INET6} {
		open := func() (int, error) {
			return unix.Socket(af, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
		}
		var fd int
		var err error
		if cfg.NetNS != 0 {
			fd, err = socketAt(cfg.NetNS, open)
		} else {
			fd, err = open()
		}
		if err != nil {
			e.Close()
			return nil, fmt.Errorf("raw socket (family %d): %w", af, err)
		}
		if cfg.Mark != 0 {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, int(cfg.Mark)); err != nil {
				unix.Close(fd)
				e.Close()
				return nil, fmt.Errorf("raw socket: set SO_MARK: %w", err)
			}
		}
		// A full send buffer waits, but not for ever.
		tv := unix.NsecToTimeval(sendTimeout.Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv); err != nil {
			unix.Close(fd)
			e.Close()
			return nil, fmt.Errorf("raw socket: set send timeout: %w", err)
		}
		q := &e.fam[i]
		q.sendFn = func(fd uintptr) bool {
			// Raw IPPROTO_RAW sockets never wait but for send buffer space.
			r, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&q.hdrs[q.start])), uintptr(q.end-q.start), 0, 0, 0)
			q.sent, q.serr = int(r), e
			return true
		}
		q.file = os.NewFile(uintptr(fd), "raw")
		if q.rc, err = q.file.SyscallConn(); err != nil {
			e.Close()
			return nil, fmt.Errorf("raw socket: %w", err)
		}
		q.pkts = make([][]byte, cfg.Batch)
		q.iov = make([]unix.Iovec, cfg.Batch)
		q.hdrs = make([]unix.Mmsghdr, cfg.Batch)
		if af == unix.AF_INET {
			q.sa4 = make([]unix.RawSockaddrInet4, cfg.Batch)
		} else {
			q.sa6 = make([]unix.RawSockaddrInet6, cfg.Batch)
			// Naming each packet's own source (IPV6_PKTINFO) spares the
			// kernel a source address selection per packet in its route
			// lookup, and makes that lookup see the real source. FREEBIND
			// lets the source be an address this host does not hold
			// (router mode); without it, sources are left to the kernel.
			if unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_FREEBIND, 1) == nil {
				q.cmsg = make([]byte, cfg.Batch*pktinfoSpace)
				for j := range cfg.Batch {
					h := (*unix.Cmsghdr)(unsafe.Pointer(&q.cmsg[j*pktinfoSpace]))
					h.Level = unix.IPPROTO_IPV6
					h.Type = unix.IPV6_PKTINFO
					h.SetLen(unix.CmsgLen(unix.SizeofInet6Pktinfo))
				}
			}
		}
	}
	return e, nil
}

// sendTimeout bounds a send waiting for buffer space.
const sendTimeout = time.Second

// ErrBadPacket is returned by Add for a packet that is neither IPv4 nor IPv6.
var ErrBadPacket = errors.New("emit: not an IPv4 or IPv6 packet")

// Add queues pkt for the next Flush. With stable false the packet is copied,
// because its buffer may be reused before Flush (translator scratch). A full
// batch is flushed first.
func (e *Emitter) Add(pkt []byte, stable bool) error {
	if len(pkt) < 20 {
		return ErrBadPacket
	}
	var q *emitQueue
	switch pkt[0] >> 4 {
	case 4:
		q = &e.fam[0]
	case 6:
		if len(pkt) < 40 {
			return ErrBadPacket
		}
		q = &e.fam[1]
	default:
		return ErrBadPacket
	}
	if q.n == len(q.pkts) || (!stable && e.used+len(pkt) > len(e.arena)) {
		e.Flush()
	}
	if !stable {
		if len(pkt) > len(e.arena) {
			return fmt.Errorf("emit: packet of %d bytes exceeds the copy arena", len(pkt))
		}
		c := e.arena[e.used : e.used+len(pkt)]
		copy(c, pkt)
		e.used += len(pkt)
		pkt = c
	}
	q.pkts[q.n] = pkt
	q.n++
	return nil
}

// Flush sends every queued packet and returns how many the kernel refused
// (no route, too big): those are skipped, counted, and the rest still sent.
// With a TUN link, runs of IPv6 UDP datagrams of one flow leave as trains
// (writeTrain), in their place in the order.
func (e *Emitter) Flush() (failed int) {
	for i := range e.fam {
		q := &e.fam[i]
		lo := 0
		if i == 1 && e.tun >= 0 && !e.noTrains {
			for j := 0; j < q.n; {
				n := trainLen(q.pkts[j:q.n])
				if n < 2 {
					j++
					continue
				}
				failed += e.send(q, true, lo, j)
				if err := e.writeTrain(q.pkts[j : j+n]); err != nil {
					e.noTrains = true
					e.LastErr = err
					failed += e.send(q, true, j, j+n)
				}
				j += n
				lo = j
			}
		}
		failed += e.send(q, i == 1, lo, q.n)
		clear(q.pkts[:q.n])
		q.n = 0
	}
	e.used = 0
	return failed
}

// send sends the queued packets lo to hi of q and counts them.
func (e *Emitter) send(q *emitQueue, v6 bool, lo, hi int) (failed int) {
	sent, bad, err := q.flush(v6, lo, hi)
	e.sent += uint64(sent)
	e.failed += uint64(bad)
	if err != nil {
		e.LastErr = err
	}
	return bad
}

// take returns the packets sent and refused, and the UDP trains written,
// since the last call (a full batch may have been flushed inside Add).
func (e *Emitter) take() (sent, failed, trains uint64) {
	sent, failed, trains = e.sent, e.failed, e.trains
	e.sent, e.failed, e.trains = 0, 0, 0
	return sent, failed, trains
}

// flush sends the queued packets lo to hi with sendmmsg.
func (q *emitQueue) flush(v6 bool, lo, hi int) (sent, failed int, last error) {
	if lo >= hi {
		return 0, 0, nil
	}
	for i := lo; i < hi; i++ {
		p := q.pkts[i]
		q.iov[i].Base = &p[0]
		q.iov[i].SetLen(len(p))
		h := &q.hdrs[i].Hdr
		h.Iov = &q.iov[i]
		h.SetIovlen(1)
		if v6 {
			sa := &q.sa6[i]
			sa.Family = unix.AF_INET6
			copy(sa.Addr[:], p[24:40])
			h.Name = (*byte)(unsafe.Pointer(sa))
			h.Namelen = unix.SizeofSockaddrInet6
			if q.cmsg != nil {
				c := q.cmsg[i*pktinfoSpace : (i+1)*pktinfoSpace]
				copy(c[unix.CmsgLen(0):], p[8:24]) // ipi6_addr; ipi6_ifindex stays 0
				h.Control = &c[0]
				h.SetControllen(pktinfoSpace)
			}
		} else {
			sa := &q.sa4[i]
			sa.Family = unix.AF_INET
			copy(sa.Addr[:], p[16:20])
			h.Name = (*byte)(unsafe.Pointer(sa))
			h.Namelen = unix.SizeofSockaddrInet4
		}
	}
	for q.start, q.end = lo, hi; q.start < q.end; {
		err := q.rc.Write(q.sendFn)
		n, serr := q.sent, q.serr
		if err != nil { // socket closed
			failed += q.end - q.start
			last = fmt.Errorf("sendmmsg: %w", err)
			break
		}
		if serr == unix.EINTR {
			continue // a signal before anything was sent (timeouts stop SA_RESTART)
		}
		if serr != 0 {
			// sendmmsg reports an error only when the first message of the
			// call failed: skip that packet and go on with the rest.
			failed++
			last = fmt.Errorf("sendmmsg: %w", serr)
			n = 1
		} else {
			sent += n
		}
		q.start += n
	}
	return sent, failed, last
}

// virtio_net_hdr (include/uapi/linux/virtio_net.h), which a TUN link opened
// with IFF_VNET_HDR takes in front of every packet.
const (
	virtioNetHdrLen       = 10
	virtioNetHdrNeedsCsum = 1 // VIRTIO_NET_HDR_F_NEEDS_CSUM
	virtioNetHdrGSOTCPv6  = 4 // VIRTIO_NET_HDR_GSO_TCPV6
)

const (
	virtioNetHdrGSOUDPL4 = 5 // VIRTIO_NET_HDR_GSO_UDP_L4
	// trainMax bounds the datagrams of a train, within the kernel's
	// UDP_MAX_SEGMENTS.
	trainMax = 64
)

// trainLen returns how many of pkts, from the first, form a UDP train:
// IPv6 datagrams with no extension header and the same first 4 bytes
// (traffic class, flow label), next header and hop limit (below 255, see
// writeTrain), addresses and ports, each of the first one's payload size
// but the last, which may be shorter; at most trainMax of them, in 64 KiB.
func trainLen(pkts [][]byte) int {
	a := pkts[0]
	if !plainUDP6(a) || a[7] == 255 {
		return 1
	}
	seg := len(a) - 48
	total, n := seg, 1
	for n < len(pkts) && n < trainMax {
		b := pkts[n]
		if !plainUDP6(b) || [4]byte(a[:4]) != [4]byte(b[:4]) || a[7] != b[7] || [36]byte(a[8:44]) != [36]byte(b[8:44]) {
			break
		}
		l := len(b) - 48
		if l > seg || 8+total+l > 0xffff {
			break
		}
		total += l
		n++
		if l < seg {
			break
		}
	}
	return n
}

// plainUDP6 reports an IPv6 UDP datagram with no extension header, a
// payload, and lengths that agree.
func plainUDP6(p []byte) bool {
	return len(p) > 48 && p[0]>>4 == 6 && p[6] == protoUDP &&
		int(binary.BigEndian.Uint16(p[4:])) == len(p)-40 && int(binary.BigEndian.Uint16(p[44:])) == len(p)-40
}

// writeTrain writes pkts, a UDP train (trainLen), into the TUN link as one
// super-packet with a virtio-net header asking for the first one's payload
// size per segment (VIRTIO_NET_HDR_GSO_UDP_L4): the kernel forwards it once
// and cuts it back into the same datagrams, checksums computed, where the
// path needs them (at the latest, the receiving socket). The kernel forwards
// it from the TUN link, so the hop limit gets one more for the forward
// path's decrement, as whole TCP super-packets do (the host translator is
// not a hop). Packets queued before it must have been sent.
func (e *Emitter) writeTrain(pkts [][]byte) error {
	a := pkts[0]
	seg := len(a) - 48
	n := 8
	for _, p := range pkts {
		n += len(p) - 48
	}
	b := e.thdr[:]
	copy(b, a[:48])
	b[7]++
	binary.BigEndian.PutUint16(b[4:], uint16(n))
	binary.BigEndian.PutUint16(b[44:], uint16(n))
	binary.BigEndian.PutUint16(b[46:], pseudoSum(b, protoUDP, n))
	h := e.vhdr[:]
	h[0] = virtioNetHdrNeedsCsum
	h[1] = virtioNetHdrGSOUDPL4
	binary.NativeEndian.PutUint16(h[2:], 48)          // hdr_len
	binary.NativeEndian.PutUint16(h[4:], uint16(seg)) // gso_size
	binary.NativeEndian.PutUint16(h[6:], 40)          // csum_start
	binary.NativeEndian.PutUint16(h[8:], 6)           // csum_offset
	if e.tiov == nil {
		e.tiov = make([]unix.Iovec, 0, 2+trainMax)
	}
	iov := append(e.tiov[:0], iovec(h), iovec(b))
	for _, p := range pkts {
		iov = append(iov, iovec(p[48:]))
	}
	for {
		_, _, errno := unix.RawSyscall(unix.SYS_WRITEV, uintptr(e.tun), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
		switch errno {
		case 0:
			e.sent += uint64(len(pkts))
			e.trains++
			return nil
		case unix.EINTR:
			continue
		}
		return fmt.Errorf("TUN write of a UDP train: %w", errno)
	}
}

// iovec describes b, which must not be empty.
func iovec(b []byte) unix.Iovec {
	v := unix.Iovec{Base: &b[0]}
	v.SetLen(len(b))
	return v
}

// errNoWhole is AddWhole's answer without a TUN link.
var errNoWhole = errors.New("emit: no TUN link for whole super-packets")

// AddWhole writes the IPv6 TCP super-packet pkt (no extension headers, its
// TCP checksum holding the pseudo-header sum) into the TUN link with a
// virtio-net header asking for segments of seg payload bytes and their
// checksums: the kernel forwards it whole and cuts it as late as the
// outgoing device allows. Packets queued before it are sent first, so a
// flow keeps its order.
func (e *Emitter) AddWhole(pkt []byte, seg int) error {
	if e.tun < 0 {
		return errNoWhole
	}
	if len(pkt) < 60 || pkt[0]>>4 != 6 || pkt[6] != protoTCP || seg <= 0 || seg > 0xffff {
		return ErrBadPacket
	}
	thl := int(pkt[52]>>4) * 4
	e.Flush()
	h := e.vhdr[:]
	h[0] = virtioNetHdrNeedsCsum
	h[1] = virtioNetHdrGSOTCPv6
	binary.NativeEndian.PutUint16(h[2:], uint16(40+thl)) // hdr_len
	binary.NativeEndian.PutUint16(h[4:], uint16(seg))    // gso_size
	binary.NativeEndian.PutUint16(h[6:], 40)             // csum_start
	binary.NativeEndian.PutUint16(h[8:], 16)             // csum_offset
	e.wiov[0].Base, e.wiov[1].Base = &h[0], &pkt[0]
	e.wiov[0].SetLen(len(h))
	e.wiov[1].SetLen(len(pkt))
	for {
		_, _, errno := unix.RawSyscall(unix.SYS_WRITEV, uintptr(e.tun), uintptr(unsafe.Pointer(&e.wiov[0])), 2)
		switch errno {
		case 0:
			e.sent++
			return nil
		case unix.EINTR:
			continue
		}
		e.LastErr = fmt.Errorf("TUN write: %w", errno)
		return e.LastErr
	}
}

// Close closes both sockets.
func (e *Emitter) Close() error {
	for i := range e.fam {
		if e.fam[i].file != nil {
			e.fam[i].file.Close()
		}
	}
	return nil
}
