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

// Netfilter queue netlink protocol (include/uapi/linux/netfilter/nfnetlink_queue.h).
const (
	nfnlSubsysQueue = 3

	nfqnlMsgPacket       = 0
	nfqnlMsgVerdict      = 1
	nfqnlMsgConfig       = 2
	nfqnlMsgVerdictBatch = 3

	nfqaCfgCmd         = 1
	nfqaCfgParams      = 2
	nfqaCfgQueueMaxlen = 3
	nfqaCfgMask        = 4
	nfqaCfgFlags       = 5

	nfqnlCfgCmdBind = 1

	nfqnlCopyPacket = 2

	nfqaPacketHdr       = 1
	nfqaVerdictHdr      = 2
	nfqaMark            = 3
	nfqaIfindexIn       = 5
	nfqaIfindexOut      = 6
	nfqaPayload         = 10
	nfqaCapLen          = 13
	nfqaSkbInfo         = 14
	nfqaSkbCsumNotReady = 1
	nfqaSkbGSO          = 2

	// Queue flags (NFQA_CFG_F_*).
	FlagFailOpen = 1
	FlagGSO      = 4

	nlaHdrLen   = 4
	nlaTypeMask = 0x3fff // drops NLA_F_NESTED / NLA_F_NET_BYTEORDER
	nlmsgHdrLen = 16
	nfgenHdrLen = 4
)

// Config selects one queue and how the kernel hands packets to it.
type Config struct {
	Num    uint16 // queue number
	MaxLen uint32 // kernel queue length (0: 4096)
	Flags  uint32 // FlagFailOpen, FlagGSO
	// RcvBuf is the socket receive buffer; 8 MiB by default so bursts do not
	// overflow it (overflow is reported as ENOBUFS, which we switch off).
	RcvBuf int
	// Batch is how many packets one Receive returns at most (default 16).
	// Each takes a receive slot of 68 KiB, which GSO super-packets fill:
	// 16 keeps a queue's slots near 1 MiB and still spreads each system
	// call over many small packets.
	Batch int
	// NetNS, if non-zero, is a network namespace fd to open the socket in.
	NetNS int
}

// Conn is a netlink socket bound to one NFQUEUE queue. Receive and the
// verdict calls must come from one goroutine (they share buffers).
//
// The socket is non-blocking and waits in the Go netpoller: an idle queue
// holds no thread, and Close wakes a waiting Receive at once.
type Conn struct {
	cfg  Config
	file *os.File
	rc   syscall.RawConn
	fd   int

	slots [][]byte
	iov   []unix.Iovec
	hdrs  []unix.Mmsghdr
	vbuf  []byte
	seq   uint32
	// held is how many bytes at the start of vbuf are verdicts kept back
	// by HoldVerdicts; heldErr is the error of sending them from Receive.
	held    int
	heldErr syscall.Errno

	// The system calls of Receive and SetVerdicts as closures made once,
	// with their arguments and results here: a closure made per call would
	// be allocated per call (it escapes into RawConn).
	recvFn, verdictFn func(fd uintptr) bool
	rWant, rGot       int
	rErr, vErr        syscall.Errno
}

const slotSize = 65536 + 4096 // a 64 KiB GSO packet plus netlink headers

// Open creates the socket, binds the queue and configures it.
func Open(cfg Config) (*Conn, error) {
	if cfg.MaxLen == 0 {
		cfg.MaxLen = 4096
	}
	if cfg.RcvBuf == 0 {
		cfg.RcvBuf = 8 << 20
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 16
	}
	fd, err := socketInNS(cfg.NetNS)
	if err != nil {
		return nil, fmt.Errorf("nfqueue %d: socket: %w", cfg.Num, err)
	}
	c := &Conn{cfg: cfg, fd: fd}
	if err := c.setup(); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("nfqueue %d: %w", cfg.Num, err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("nfqueue %d: %w", cfg.Num, err)
	}
	c.file = os.NewFile(uintptr(fd), fmt.Sprintf("nfqueue-%d", cfg.Num))
	rc, err := c.file.SyscallConn()
	if err != nil {
		c.file.Close()
		return nil, fmt.Errorf("nfqueue %d: %w", cfg.Num, err)
	}
	c.rc = rc
	c.slots = make([][]byte, cfg.Batch)
	c.iov = make([]unix.Iovec, cfg.Batch)
	c.hdrs = make([]unix.Mmsghdr, cfg.Batch)
	for i := range c.slots {
		c.slots[i] = make([]byte, slotSize)
		c.iov[i].Base = &c.slots[i][0]
		c.iov[i].SetLen(slotSize)
		c.hdrs[i].Hdr.Iov = &c.iov[i]
		c.hdrs[i].Hdr.SetIovlen(1)
	}
	c.vbuf = make([]byte, 0, (cfg.Batch+1)*verdictMsgLen) // a batch and a held verdict
	// Both calls never block (the socket is non-blocking; the kernel
	// handles a verdict inside the call): raw system calls skip the
	// runtime's bookkeeping for calls that may block, which wakes its
	// monitor thread whenever the process was idle (a context switch per
	// packet at low rates). An empty queue parks the goroutine in the
	// netpoller instead (false: wait until readable).
	c.recvFn = func(fd uintptr) bool {
		r, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&c.hdrs[0])), uintptr(c.rWant), unix.MSG_WAITFORONE, 0, 0)
		if e == unix.EAGAIN {
			// The queue is empty: verdicts held back go out before
			// the wait.
			if c.held > 0 {
				_, _, c.heldErr = unix.RawSyscall6(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&c.vbuf[0])), uintptr(c.held), 0, 0, 0)
				c.held = 0
			}
			return false
		}
		c.rGot, c.rErr = int(r), e
		return true
	}
	c.verdictFn = func(fd uintptr) bool {
		_, _, c.vErr = unix.RawSyscall6(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&c.vbuf[0])), uintptr(len(c.vbuf)), 0, 0, 0)
		return true
	}
	return c, nil
}

func socketInNS(ns int) (int, error) {
	open := func() (int, error) {
		return unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	}
	if ns == 0 {
		return open()
	}
	return socketAt(ns, open)
}

// recvTimeout bounds each wait for a configuration acknowledgement (the
// socket blocks until Open is done).
const recvTimeout = 200 * time.Millisecond

func (c *Conn) setup() error {
	if err := unix.Bind(c.fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	// RCVBUFFORCE needs CAP_NET_ADMIN, which the daemon has; fall back quietly.
	if err := unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, c.cfg.RcvBuf); err != nil {
		if err := unix.SetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_RCVBUF, c.cfg.RcvBuf); err != nil {
			return fmt.Errorf("set receive buffer: %w", err)
		}
	}
	// A full socket buffer must not turn into an error on the next read: the
	// kernel counts the drop (queue_dropped / fail-open) and we keep going.
	if err := unix.SetsockoptInt(c.fd, unix.SOL_NETLINK, unix.NETLINK_NO_ENOBUFS, 1); err != nil {
		return fmt.Errorf("set NETLINK_NO_ENOBUFS: %w", err)
	}
	tv := unix.NsecToTimeval(recvTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(c.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fmt.Errorf("set receive timeout: %w", err)
	}
	// Switch on extended ACKs so config errors say more; ignore if absent.
	_ = unix.SetsockoptInt(c.fd, unix.SOL_NETLINK, unix.NETLINK_EXT_ACK, 1)

	var cmd [4]byte
	cmd[0] = nfqnlCfgCmdBind
	// pf is ignored by kernels since 3.8 for the bind command.
	if err := c.config(attr(nfqaCfgCmd, cmd[:])); err != nil {
		if errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("bind queue: %w (another process holds queue %d)", err, c.cfg.Num)
		}
		return fmt.Errorf("bind queue: %w", err)
	}
	var params [5]byte
	binary.BigEndian.PutUint32(params[0:4], 0xffff)
	params[4] = nfqnlCopyPacket
	var maxlen, flags, mask [4]byte
	binary.BigEndian.PutUint32(maxlen[:], c.cfg.MaxLen)
	binary.BigEndian.PutUint32(flags[:], c.cfg.Flags)
	binary.BigEndian.PutUint32(mask[:], FlagFailOpen|FlagGSO)
	msg := append(attr(nfqaCfgParams, params[:]), attr(nfqaCfgQueueMaxlen, maxlen[:])...)
	msg = append(msg, attr(nfqaCfgFlags, flags[:])...)
	msg = append(msg, attr(nfqaCfgMask, mask[:])...)
	if err := c.config(msg); err != nil {
		return fmt.Errorf("configure queue: %w", err)
	}
	return nil
}

// setFlags switches the queue flags in mask to those in flags on a live
// queue. It does not wait for the acknowledgement, which would mean reading
// past packets already queued: the kernel applies it before the next packet
// and reports a failure as an error message, which Receive skips.
func (c *Conn) setFlags(flags, mask uint32) error {
	var f, m [4]byte
	binary.BigEndian.PutUint32(f[:], flags)
	binary.BigEndian.PutUint32(m[:], mask)
	attrs := append(attr(nfqaCfgFlags, f[:]), attr(nfqaCfgMask, m[:])...)
	b := make([]byte, nlmsgHdrLen+nfgenHdrLen, nlmsgHdrLen+nfgenHdrLen+len(attrs))
	b = append(b, attrs...)
	putNlmsg(b, nfnlSubsysQueue<<8|nfqnlMsgConfig, unix.NLM_F_REQUEST, 0)
	putNfgen(b[nlmsgHdrLen:], unix.AF_UNSPEC, c.cfg.Num)
	if err := c.send(b); err != nil {
		return err
	}
	c.cfg.Flags = c.cfg.Flags&^mask | flags&mask
	return nil
}

// attr encodes one netlink attribute, padded to 4 bytes.
func attr(typ uint16, data []byte) []byte {
	n := nlaHdrLen + len(data)
	b := make([]byte, align4(n))
	binary.NativeEndian.PutUint16(b[0:2], uint16(n))
	binary.NativeEndian.PutUint16(b[2:4], typ)
	copy(b[4:], data)
	return b
}

func align4(n int) int { return (n + 3) &^ 3 }

// config sends one NFQNL_MSG_CONFIG request and waits for its ack.
func (c *Conn) config(attrs []byte) error {
	c.seq++
	b := make([]byte, nlmsgHdrLen+nfgenHdrLen, nlmsgHdrLen+nfgenHdrLen+len(attrs))
	b = append(b, attrs...)
	putNlmsg(b, nfnlSubsysQueue<<8|nfqnlMsgConfig, unix.NLM_F_REQUEST|unix.NLM_F_ACK, c.seq)
	putNfgen(b[nlmsgHdrLen:], unix.AF_UNSPEC, c.cfg.Num)
	if err := unix.Sendto(c.fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	rb := make([]byte, 8192)
	for tries := 0; tries < 100; tries++ {
		n, _, err := unix.Recvfrom(c.fd, rb, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue // the receive timeout bounds each try
		}
		if err != nil {
			return err
		}
		for m := rb[:n]; len(m) >= nlmsgHdrLen; {
			l := int(binary.NativeEndian.Uint32(m[0:4]))
			if l < nlmsgHdrLen || l > len(m) {
				break
			}
			typ := binary.NativeEndian.Uint16(m[4:6])
			seq := binary.NativeEndian.Uint32(m[8:12])
			if typ == unix.NLMSG_ERROR && seq == c.seq && l >= nlmsgHdrLen+4 {
				if e := int32(binary.NativeEndian.Uint32(m[16:20])); e != 0 {
					return syscall.Errno(-e)
				}
				return nil
			}
			m = m[align4(l):]
		}
	}
	return errors.New("no acknowledgement from the kernel")
}

func putNlmsg(b []byte, typ uint16, flags uint16, seq uint32) {
	binary.NativeEndian.PutUint32(b[0:4], uint32(len(b)))
	binary.NativeEndian.PutUint16(b[4:6], typ)
	binary.NativeEndian.PutUint16(b[6:8], flags)
	binary.NativeEndian.PutUint32(b[8:12], seq)
	binary.NativeEndian.PutUint32(b[12:16], 0)
}

func putNfgen(b []byte, family uint8, queue uint16) {
	b[0] = family
	b[1] = unix.NFNETLINK_V0
	binary.BigEndian.PutUint16(b[2:4], queue)
}

// Receive waits until at least one packet is queued and fills pkts with up
// to len(pkts) of them (one recvmmsg takes what is queued). It may return
// 0 with no error (signal, or only messages that are not packets). The
// packets stay valid until the next Receive. Messages that are not packets
// (acks, errors) are skipped.
func (c *Conn) Receive(pkts []Packet) (int, error) {
	want := min(len(pkts), len(c.slots))
	if want == 0 {
		return 0, nil
	}
	c.rWant = want
	if err := c.rc.Read(c.recvFn); err != nil {
		return 0, err
	}
	if e := c.heldErr; e != 0 {
		c.heldErr = 0
		return 0, fmt.Errorf("held verdicts: %w", e)
	}
	got, serr := c.rGot, c.rErr
	switch serr {
	case 0:
	case unix.EAGAIN, unix.EINTR, unix.ENOBUFS:
		return 0, nil
	default:
		return 0, serr
	}
	n := 0
	for i := 0; i < got; i++ {
		if parsePacket(c.slots[i][:c.hdrs[i].Len], &pkts[n]) {
			n++
		}
	}
	return n, nil
}

// parsePacket decodes one NFQNL_MSG_PACKET datagram in place.
func parsePacket(b []byte, p *Packet) bool {
	if len(b) < nlmsgHdrLen+nfgenHdrLen {
		return false
	}
	l := int(binary.NativeEndian.Uint32(b[0:4]))
	if l < nlmsgHdrLen+nfgenHdrLen || l > len(b) {
		return false
	}
	if binary.NativeEndian.Uint16(b[4:6]) != nfnlSubsysQueue<<8|nfqnlMsgPacket {
		return false
	}
	*p = Packet{Buf: b[:l]}
	havePayload, haveHdr := false, false
	for a := b[nlmsgHdrLen+nfgenHdrLen : l]; len(a) >= nlaHdrLen; {
		al := int(binary.NativeEndian.Uint16(a[0:2]))
		if al < nlaHdrLen || al > len(a) {
			return false
		}
		typ := binary.NativeEndian.Uint16(a[2:4]) & nlaTypeMask
		v := a[nlaHdrLen:al]
		switch typ {
		case nfqaPacketHdr:
			if len(v) >= 7 {
				p.ID = binary.BigEndian.Uint32(v[0:4])
				p.HWProto = binary.BigEndian.Uint16(v[4:6])
				p.Hook = v[6]
				haveHdr = true
			}
		case nfqaMark:
			if len(v) >= 4 {
				p.Mark = binary.BigEndian.Uint32(v)
			}
		case nfqaIfindexIn:
			if len(v) >= 4 {
				p.InDev = binary.BigEndian.Uint32(v)
			}
		case nfqaIfindexOut:
			if len(v) >= 4 {
				p.OutDev = binary.BigEndian.Uint32(v)
			}
		case nfqaCapLen:
			if len(v) >= 4 {
				p.CapLen = binary.BigEndian.Uint32(v)
			}
		case nfqaSkbInfo:
			if len(v) >= 4 {
				f := binary.BigEndian.Uint32(v)
				p.GSO = f&nfqaSkbGSO != 0
				p.CsumPart = f&nfqaSkbCsumNotReady != 0
			}
		case nfqaPayload:
			p.Off = len(b[:l]) - len(a) + nlaHdrLen
			p.Buf = b[:p.Off+len(v)]
			havePayload = true
		}
		if align4(al) >= len(a) {
			break
		}
		a = a[align4(al):]
	}
	return haveHdr && havePayload
}

// verdictMsgLen is one NFQNL_MSG_VERDICT(_BATCH) with a verdict header.
const verdictMsgLen = nlmsgHdrLen + nfgenHdrLen + nlaHdrLen + 8

// appendVerdict appends one verdict message for queue q to dst.
func appendVerdict(dst []byte, q uint16, typ uint16, id, verdict uint32) []byte {
	off := len(dst)
	dst = append(dst, make([]byte, verdictMsgLen)...) // no allocation: callers keep capacity
	m := dst[off:]
	binary.NativeEndian.PutUint32(m[0:4], verdictMsgLen)
	binary.NativeEndian.PutUint16(m[4:6], nfnlSubsysQueue<<8|typ)
	binary.NativeEndian.PutUint16(m[6:8], unix.NLM_F_REQUEST)
	putNfgen(m[16:], unix.AF_UNSPEC, q)
	binary.NativeEndian.PutUint16(m[20:22], nlaHdrLen+8)
	binary.NativeEndian.PutUint16(m[22:24], nfqaVerdictHdr)
	binary.BigEndian.PutUint32(m[24:28], verdict)
	binary.BigEndian.PutUint32(m[28:32], id)
	return dst
}

// maxVerdictDatagram bounds one verdict datagram: the kernel refuses a
// datagram larger than the socket's send buffer (212992 bytes by default),
// which a batch of large replaced payloads could exceed.
const maxVerdictDatagram = 128 << 10

var zeroPad [4]byte

// appendVerdictPayload appends one NFQNL_MSG_VERDICT for packet id to dst,
// with payload as the packet's new bytes (NFQA_PAYLOAD) when not nil.
func appendVerdictPayload(dst []byte, q uint16, id, verdict uint32, payload []byte) []byte {
	off := len(dst)
	dst = appendVerdict(dst, q, nfqnlMsgVerdict, id, verdict)
	if payload == nil {
		return dst
	}
	n := nlaHdrLen + len(payload)
	dst = binary.NativeEndian.AppendUint16(dst, uint16(n))
	dst = binary.NativeEndian.AppendUint16(dst, nfqaPayload)
	dst = append(dst, payload...)
	dst = append(dst, zeroPad[:align4(n)-n]...)
	binary.NativeEndian.PutUint32(dst[off:off+4], uint32(len(dst)-off))
	return dst
}

// appendVerdicts appends to dst the verdicts for pkts[i] (verdicts[i]), as
// many as fit in one datagram (at least one), and returns how many it took.
// When every verdict is the same, no packet has a Replace and the IDs are
// consecutive, one NFQNL_MSG_VERDICT_BATCH covers them all (allowBatch);
// otherwise one message each, with its payload when replaced.
func appendVerdicts(dst []byte, q uint16, pkts []Packet, verdicts []uint32, allowBatch bool) ([]byte, int) {
	same := allowBatch && len(pkts) > 1 && pkts[0].Replace == nil
	for i := 1; same && i < len(pkts); i++ {
		same = verdicts[i] == verdicts[0] && pkts[i].ID == pkts[i-1].ID+1 && pkts[i].Replace == nil
	}
	if same {
		return appendVerdict(dst, q, nfqnlMsgVerdictBatch, pkts[len(pkts)-1].ID, verdicts[0]), len(pkts)
	}
	start := len(dst)
	for i := range pkts {
		r := pkts[i].Replace
		if len(r) > MaxReplace {
			r = nil // cannot be carried: the original goes on
		}
		if i > 0 && len(dst)-start+verdictMsgLen+nlaHdrLen+len(r) > maxVerdictDatagram {
			return dst, i
		}
		dst = appendVerdictPayload(dst, q, pkts[i].ID, verdicts[i], r)
	}
	return dst, len(pkts)
}

// SetVerdicts sends the verdicts for pkts[i] (verdicts[i]), with the new
// bytes of the packets that have a Replace, in one sendmsg (more only when
// the replaced payloads are large), after any verdicts held back. A batch
// verdict covers every id up to the last, so callers holding a packet back
// (asynchronous verdicts) must not use batches on that queue: set
// allowBatch false.
func (c *Conn) SetVerdicts(pkts []Packet, verdicts []uint32, allowBatch bool) error {
	for len(pkts) > 0 || c.held > 0 {
		var n int
		c.vbuf, n = appendVerdicts(c.vbuf[:c.held], c.cfg.Num, pkts, verdicts, allowBatch)
		c.held = 0
		if err := c.rc.Write(c.verdictFn); err != nil {
			return err
		}
		if c.vErr != 0 {
			return c.vErr
		}
		pkts, verdicts = pkts[n:], verdicts[n:]
	}
	return nil
}

// HoldVerdicts is SetVerdicts for a packet whose answer may come back at
// once (an echo request, a TCP segment): the verdicts wait for the next
// Receive, which sends them before it waits on an empty queue, or for the
// next SetVerdicts, which sends them along. Either way they leave a system
// call later, off the path of what the queue holds next. Only one
// packet's worth is held (more are sent at once), and none with a Replace.
// Verdicts still held at Close are never sent: the kernel drops the
// packets when the queue goes.
func (c *Conn) HoldVerdicts(pkts []Packet, verdicts []uint32) error {
	if len(pkts) == 0 {
		return nil
	}
	if c.held > 0 || len(pkts) != 1 || pkts[0].Replace != nil {
		return c.SetVerdicts(pkts, verdicts, false)
	}
	c.vbuf = appendVerdict(c.vbuf[:0], c.cfg.Num, nfqnlMsgVerdict, pkts[0].ID, verdicts[0])
	c.held = len(c.vbuf)
	return nil
}

// SetVerdict sends one verdict. Unlike SetVerdicts it may be called from any
// goroutine (asynchronous DNS verdicts).
func (c *Conn) SetVerdict(id, verdict uint32) error {
	var m [verdictMsgLen]byte
	return c.send(appendVerdict(m[:0], c.cfg.Num, nfqnlMsgVerdict, id, verdict))
}

// SetVerdictPayload gives packet id its verdict and replaces its bytes with
// payload (NFQA_PAYLOAD: the kernel re-reads lengths and, for a changed
// packet, its conntrack adjusts). Any goroutine may call it; it allocates,
// so the worker's own verdicts use Packet.Replace instead.
func (c *Conn) SetVerdictPayload(id, verdict uint32, payload []byte) error {
	if len(payload) > MaxReplace {
		return fmt.Errorf("verdict payload of %d bytes is too large", len(payload))
	}
	b := make([]byte, 0, verdictMsgLen+nlaHdrLen+align4(len(payload)))
	return c.send(appendVerdictPayload(b, c.cfg.Num, id, verdict, payload))
}

func (c *Conn) send(b []byte) error {
	var serr error
	err := c.rc.Write(func(fd uintptr) bool {
		// The kernel's netlink address is all zeros; a nil sockaddr on a bound
		// netlink socket sends to it. The kernel handles the message in this
		// call, so it never waits for buffer space.
		_, _, e := unix.Syscall6(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), 0, 0, 0)
		if e != 0 {
			serr = e
		}
		return true
	})
	if err != nil {
		return err
	}
	return serr
}

// Close closes the socket (the kernel unbinds the queue). A Receive waiting
// at the time returns an error.
func (c *Conn) Close() error {
	return c.file.Close()
}
