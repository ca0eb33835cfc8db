package queue

import (
	"sync"

	"github.com/bih-nfq/bih-nfq/internal/drop"
	"github.com/bih-nfq/bih-nfq/translate"
)

// handlesOffloads tells the worker that Translation takes super-packets and
// unfinished checksums, so its queue can ask the kernel for them.
func (h *Translation) handlesOffloads() bool { return !h.NoOffload }

// segScratch is what cutting one super-packet needs, pooled so that the
// data path allocates nothing.
type segScratch struct {
	buf  []byte // headroom, headers and payload of one segment
	sp   Packet
	sink copySink
}

var segScratches = sync.Pool{New: func() any {
	return &segScratch{buf: make([]byte, translate.Headroom+128+0xffff)}
}}

// copySink hands packets on as unstable: segments share one scratch buffer.
type copySink struct{ out Sink }

func (s *copySink) Add(pkt []byte, _ bool) error { return s.out.Add(pkt, false) }

// offload prepares a packet that the kernel left unfinished: it completes
// a pending transport checksum and cuts a TCP super-packet into segments
// the IPv6 path (or the IPv4 next hop) and the receiver take, translating
// each. done false means Handle goes on with p as usual.
func (h *Translation) offload(p *Packet, out Sink) (verdict uint32, done bool) {
	pl := p.Payload()
	if !p.GSO {
		finishChecksum(pl) // a packet it cannot place is translated as it is
		return 0, false
	}
	off, proto, end, ok := transport(pl)
	if !ok || proto != protoTCP || end-off < 20 {
		// Only TCP has segments we can find again (a UDP super-packet's
		// datagram size is not in the packet): the kernel cuts the rest
		// on the way to a queue without the GSO flag.
		if h.Uncut != 0 {
			return h.Uncut, true
		}
		h.Drops.Add(drop.TooBigAfterXlat)
		return Drop, true
	}
	thl := int(pl[off+12]>>4) * 4
	mtu6, mtu4 := h.X.MTUs()
	var seg int
	if pl[0]>>4 == 4 {
		seg = segmentSize(pl, off, thl, mtu6)
		if ws, ok := out.(WholeSink); ok && end-off-thl > seg && wholeable(pl, off) {
			if v, done := h.whole(p, ws, seg, end-off-thl, thl); done {
				return v, true
			}
		}
	} else {
		// IPv6 → IPv4: the local stack (host mode) takes the whole packet,
		// like one from GRO; a smaller IPv4 next hop gets segments.
		seg = mtu4 - 20 - thl
	}
	if end-off-thl <= seg {
		p.GSO = false
		finishChecksum(pl)
		return 0, false
	}
	st := segScratches.Get().(*segScratch)
	defer segScratches.Put(st)
	st.sink.out = out
	defer func() { st.sink.out = nil }()
	verdict = Drop
	first := true
	n := segmentTCP(pl, off, end, seg, st.buf, translate.Headroom, func(b []byte, o int) {
		st.sp = Packet{ID: p.ID, HWProto: p.HWProto, Hook: p.Hook, Mark: p.Mark, InDev: p.InDev, OutDev: p.OutDev, Buf: b, Off: o}
		if v := h.Handle(&st.sp, &st.sink); first {
			verdict, first = v, false
		}
	})
	if n == 0 {
		h.Drops.Add(drop.TooBigAfterXlat)
		return Drop, true
	}
	return verdict, true
}

// WholeSink is a Sink that also takes translated IPv6 TCP super-packets
// whole, for the kernel to cut into segments of seg payload bytes (the
// Emitter, when it has the TUN link's writer).
type WholeSink interface {
	Sink
	AddWhole(pkt []byte, seg int) error
}

// wholeable reports whether the IPv4 TCP super-packet pkt (TCP header at
// off) may leave whole as far as the queue is concerned: a TTL that the
// forward path's decrement can be made up for, and no CWR, which only the
// first segment may carry. (DF and fragments are the translator's check.)
func wholeable(pkt []byte, off int) bool {
	return pkt[8] < 255 && pkt[off+13]&tcpFlagCWR == 0
}

// whole translates the IPv4 TCP super-packet p as one IPv6 packet and hands
// it to out whole: one write instead of a translation, a copy and a send per
// segment. The kernel forwards it from the TUN link, so the hop limit gets
// one more for the forward path's decrement (RFC 6535 §2.3: the host
// translator is not a hop). done false leaves p untouched, to be cut: the
// translator refuses before it changes anything, and per segment it refuses
// (or answers with an ICMPv4 error) the same way.
func (h *Translation) whole(p *Packet, out WholeSink, seg, data, thl int) (verdict uint32, done bool) {
	r := h.X.Translate4to6GSO(p.Buf, p.Off, seg)
	if r.Action != translate.Translated || len(r.Packets) != 1 {
		return 0, false
	}
	pkt := r.Packets[0]
	pkt[7]++
	err := out.AddWhole(pkt, seg)
	if err != nil {
		// Cut the translation instead: the same segments, through out.
		pkt[7]--
		st := segScratches.Get().(*segScratch)
		defer segScratches.Put(st)
		segmentTCP(pkt, 40, len(pkt), seg, st.buf, translate.Headroom, func(b []byte, o int) {
			if out.Add(b[o:], false) != nil {
				h.Drops.Add(drop.EmitFailed)
			}
		})
	} else {
		h.Stats.Whole.Add(1)
	}
	segs := (data + seg - 1) / seg
	h.Stats.Packets4to6.Add(uint64(segs))
	h.Stats.Bytes4to6.Add(uint64(data + segs*(40+thl)))
	return Drop, true
}
