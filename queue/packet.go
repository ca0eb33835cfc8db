// Package queue serves NFQUEUE queues: it receives batches of packets, hands
// each to a handler (translation or DNS), emits the results through raw
// sockets and returns batched verdicts. Linux-specific parts live in
// _linux.go files; handlers are plain Go and testable anywhere.
package queue

// Verdict values (NF_DROP, NF_ACCEPT) and Pending.
const (
	Drop   uint32 = 0
	Accept uint32 = 1
	// Pending means "not now": the handler keeps the packet and gives its
	// verdict later (asynchronous DNS verdicts).
	Pending uint32 = 0xffffffff

	nfQueue uint32 = 3 // NF_QUEUE
)

// RequeueTo is the verdict that hands a packet on to queue num (NF_QUEUE
// with the queue number in the upper 16 bits). A queue without the GSO flag
// gets a super-packet cut by the kernel.
func RequeueTo(num uint16) uint32 { return nfQueue | uint32(num)<<16 }

// isRequeue reports whether v is a RequeueTo verdict.
func isRequeue(v uint32) bool { return v != Pending && v&0xffff == nfQueue }

// MaxReplace is the largest Packet.Replace a verdict carries: a netlink
// attribute's length, its 4-byte header included, is 16 bits.
const MaxReplace = 0xffff - 4

// Packet is one packet received from a queue. Its payload aliases the
// connection's receive buffer: the bytes before it (netlink headers already
// parsed) are free headroom, so a handler may grow the packet in place.
type Packet struct {
	ID       uint32
	HWProto  uint16 // ETH_P_IP / ETH_P_IPV6
	Hook     uint8
	Mark     uint32
	InDev    uint32
	OutDev   uint32
	GSO      bool // a GSO super-packet (queue GSO flag on)
	CsumPart bool // transport checksum not yet computed (CHECKSUM_PARTIAL)
	CapLen   uint32

	// Buf is the receive slot; the payload is Buf[Off:].
	Buf []byte
	Off int

	// Replace, when not nil, goes with an Accept verdict as the packet's new
	// bytes (NFQA_PAYLOAD), in the worker's verdict datagram. It must stay
	// valid until the batch's verdicts are sent.
	Replace []byte
}

// Payload returns the packet bytes.
func (p *Packet) Payload() []byte { return p.Buf[p.Off:] }

// Sink takes packets to emit. stable says the bytes stay valid until the
// batch is flushed (they live in the packet's receive buffer); otherwise the
// sink copies them.
type Sink interface {
	Add(pkt []byte, stable bool) error
}

// Handler decides the fate of one queued packet: it returns Drop, Accept or
// Pending, and may add packets to out (emitted before the verdicts are sent,
// so a translation always leaves before its original is dropped).
type Handler interface {
	Handle(p *Packet, out Sink) uint32
}

// within reports whether sub is a sub-slice of buf's backing array ending at
// the same capacity, i.e. it lives in buf and not in some scratch buffer.
func within(sub, buf []byte) bool {
	if cap(sub) == 0 || cap(buf) == 0 || cap(sub) > cap(buf) {
		return false
	}
	return &sub[:cap(sub)][cap(sub)-1] == &buf[:cap(buf)][cap(buf)-1]
}
