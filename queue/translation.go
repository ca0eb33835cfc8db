package queue

import (
	"sync/atomic"

	"github.com/bih-nfq/bih-nfq/internal/drop"
	"github.com/bih-nfq/bih-nfq/translate"
)

// Translation hands queued IPv4 and IPv6 packets to the RFC 7915 translator
// and emits the result; the original is always dropped unless fail-open
// accepts an untranslatable one. One per worker (the Translator is not
// shared).
type Translation struct {
	X     *translate.Translator
	Drops *drop.Counters
	// FailOpen accepts packets the translator refuses instead of dropping
	// them, counted as queue_fail_open (off by default for translation: an
	// untranslated IPv4 packet to a pool address cannot reach anything).
	FailOpen bool
	// DNSAnswers, when set, takes translated 6→4 UDP datagrams from port
	// 53 instead of the Sink: answers of a resolver reached through
	// translation, which the ENR must see like any other answer (RFC 6535
	// §2.3). The daemon emits them with a mark its DNS rules queue.
	DNSAnswers func(pkt []byte) error
	// Uncut is the verdict for super-packets this handler cannot cut
	// itself (UDP GSO carries no datagram size): RequeueTo a queue without
	// the GSO flag, whose handler gets them cut by the kernel. 0 drops them
	// (counted as too_big_after_xlat).
	Uncut uint32
	// NoOffload keeps the GSO flag off this handler's queue: the kernel
	// cuts super-packets before queueing.
	NoOffload bool
	// Stats counts this handler's translations; one per worker, so the
	// atomics never bounce between cores.
	Stats XlatStats
}

// XlatStats counts translated packets and bytes (of the emitted packets) per
// direction, and ICMP errors generated back to senders.
type XlatStats struct {
	Packets4to6, Bytes4to6 atomic.Uint64
	Packets6to4, Bytes6to4 atomic.Uint64
	Errors4, Errors6       atomic.Uint64 // generated toward the IPv4 / IPv6 side
	// Whole counts IPv4 TCP super-packets that left as one IPv6 packet
	// for the kernel to cut (WholeSink); their segments are in Packets4to6.
	Whole atomic.Uint64
}

// Handle implements Handler.
func (h *Translation) Handle(p *Packet, out Sink) uint32 {
	if p.GSO || p.CsumPart {
		if v, done := h.offload(p, out); done {
			return v
		}
	}
	pl := p.Payload()
	var r translate.Result
	v4 := len(pl) > 0 && pl[0]>>4 == 4
	switch {
	case len(pl) == 0:
		r = translate.Result{Action: translate.Dropped, Reason: drop.TooShort}
	case v4:
		r = h.X.Translate4to6(p.Buf, p.Off)
	case pl[0]>>4 == 6:
		r = h.X.Translate6to4(p.Buf, p.Off)
	default:
		r = translate.Result{Action: translate.Dropped, Reason: drop.BadVersion}
	}
	switch r.Action {
	case translate.Translated, translate.GeneratedError:
		var bytes uint64
		for _, pkt := range r.Packets {
			if !v4 {
				learnTCP(pkt) // peers' MSS and path MTU, for cutting super-packets
			}
			if h.DNSAnswers != nil && !v4 && r.Action == translate.Translated && isDNSAnswer4(pkt) {
				if err := h.DNSAnswers(pkt); err != nil {
					h.Drops.Add(drop.EmitFailed)
					continue
				}
				bytes += uint64(len(pkt))
				continue
			}
			if err := out.Add(pkt, within(pkt, p.Buf)); err != nil {
				h.Drops.Add(drop.EmitFailed)
				continue
			}
			bytes += uint64(len(pkt))
		}
		switch {
		case r.Action == translate.GeneratedError:
			h.Drops.Add(r.Reason)
			if v4 {
				h.Stats.Errors4.Add(1)
			} else {
				h.Stats.Errors6.Add(1)
			}
		case v4:
			h.Stats.Packets4to6.Add(1)
			h.Stats.Bytes4to6.Add(bytes)
		default:
			h.Stats.Packets6to4.Add(1)
			h.Stats.Bytes6to4.Add(bytes)
		}
		return Drop
	default:
		h.Drops.Add(r.Reason)
		if h.FailOpen {
			h.Drops.Add(drop.QueueFailOpen)
			return Accept
		}
		return Drop
	}
}

// isDNSAnswer4 reports whether pkt is an unfragmented IPv4 UDP datagram
// from port 53.
func isDNSAnswer4(pkt []byte) bool {
	off, proto, end, ok := transport(pkt)
	return ok && pkt[0]>>4 == 4 && proto == protoUDP && end-off >= 8 && pkt[off] == 0 && pkt[off+1] == 53
}
