package queue

import (
	"sync/atomic"

	"github.com/bih-nfq/bih-nfq/enr"
	"github.com/bih-nfq/bih-nfq/internal/drop"
)

// Verdicter gives late verdicts; *Conn implements it.
type Verdicter interface {
	SetVerdict(id, verdict uint32) error
	SetVerdictPayload(id, verdict uint32, payload []byte) error
}

// DNS hands the DNS queue's packets (UDP/53 queries leaving local programs,
// their responses arriving) to the ENR interceptor (RFC 6535 §2.3) and
// carries out its decisions. A rewritten response replaces the original
// through the verdict itself (Packet.Replace, or Verdicts for a late one);
// answers the ENR originates are injected.
type DNS struct {
	ENR *enr.Interceptor
	// Verdicts settles packets later: responses held while the ENR's AAAA
	// lookup runs, and rewritten responses (verdict with a new payload).
	Verdicts Verdicter
	// Inject delivers a datagram toward a local program from any goroutine
	// (late answers); packets decided in Handle go through its Sink.
	Inject func(pkt []byte) error
	Drops  *drop.Counters
	Stats  DNSStats
}

// DNSStats counts the DNS queue's outcomes.
type DNSStats struct {
	Queries, Responses      atomic.Uint64
	Rewritten, Untouched    atomic.Uint64
	Injected, Held, Dropped atomic.Uint64
	Cached                  atomic.Uint64 // queries answered from the ENR's cache
	VerdictErrors           atomic.Uint64
}

// Handle implements Handler.
func (h *DNS) Handle(p *Packet, out Sink) uint32 {
	pl := p.Payload()
	var r enr.Result
	if isQuery(pl) {
		h.Stats.Queries.Add(1)
		r = h.ENR.Query(pl)
	} else {
		h.Stats.Responses.Add(1)
		id := p.ID
		r = h.ENR.Response(pl, func(late enr.Result) { h.settle(id, late) })
	}
	switch r.Verdict {
	case enr.Pending:
		h.Stats.Held.Add(1)
		return Pending
	case enr.Drop:
		if r.Cached {
			h.Stats.Cached.Add(1)
		} else {
			h.Stats.Dropped.Add(1)
		}
		if r.Inject != nil {
			if err := out.Add(r.Inject, false); err != nil {
				h.Drops.Add(drop.EmitFailed)
			} else {
				h.Stats.Injected.Add(1)
			}
		}
		return Drop
	default:
		if r.Packet == nil {
			h.Stats.Untouched.Add(1)
			return Accept
		}
		if len(r.Packet) > MaxReplace {
			// The original still answers the program, untouched.
			h.Stats.VerdictErrors.Add(1)
			return Accept
		}
		h.Stats.Rewritten.Add(1)
		// The worker's verdict datagram carries the new bytes.
		p.Replace = r.Packet
		return Accept
	}
}

// settle carries out a late decision for the held packet id.
func (h *DNS) settle(id uint32, r enr.Result) {
	var err error
	switch {
	case r.Verdict == enr.Drop:
		h.Stats.Dropped.Add(1)
		if r.Inject != nil && h.Inject != nil {
			if ierr := h.Inject(r.Inject); ierr != nil {
				h.Drops.Add(drop.EmitFailed)
			} else {
				h.Stats.Injected.Add(1)
			}
		}
		err = h.Verdicts.SetVerdict(id, Drop)
	case r.Packet != nil:
		h.Stats.Rewritten.Add(1)
		if err = h.Verdicts.SetVerdictPayload(id, Accept, r.Packet); err != nil {
			err = h.Verdicts.SetVerdict(id, Accept)
		}
	default:
		h.Stats.Untouched.Add(1)
		err = h.Verdicts.SetVerdict(id, Accept)
	}
	if err != nil {
		h.Stats.VerdictErrors.Add(1)
	}
}

// isQuery reports whether pkt is UDP to port 53 (a query leaving a local
// program); anything else on the DNS queue is treated as a response.
func isQuery(pkt []byte) bool {
	var l4 []byte
	switch {
	case len(pkt) >= 20 && pkt[0]>>4 == 4 && pkt[9] == 17:
		ihl := int(pkt[0]&0xf) * 4
		if ihl < 20 || len(pkt) < ihl+4 {
			return false
		}
		l4 = pkt[ihl:]
	case len(pkt) >= 44 && pkt[0]>>4 == 6 && pkt[6] == 17:
		l4 = pkt[40:]
	default:
		return false
	}
	return l4[2] == 0 && l4[3] == 53
}
