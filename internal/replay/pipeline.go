package replay

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/bih-nfq/bih-nfq/internal/drop"
	"github.com/bih-nfq/bih-nfq/translate"
)

// Action is the verdict on one input packet. The strings are part of the
// verdict file format: never rename one.
type Action string

const (
	// ActionTranslated: the packet was translated; outputs hold the
	// translation (one packet or its fragments).
	ActionTranslated Action = "translated"
	// ActionPassed: left alone. A frame that is not IP (ARP, LLDP, ...)
	// is never queued by the daemon: nothing is emitted. A DNS packet the
	// ENR lets through unchanged: outputs hold the original datagram, and
	// reason may say why the ENR did not consider it (dns_unmatched, ...).
	ActionPassed Action = "passed"
	// ActionDropped: refused; reason says why, no outputs.
	ActionDropped Action = "dropped"
	// ActionGeneratedError: refused, and outputs hold the ICMP error sent
	// back to the packet's source; reason says why it was refused.
	ActionGeneratedError Action = "generated-error"
	// ActionRewritten: a DNS response the ENR rewrote (RFC 6535 §2.3:
	// synthesized A records, a PTR answered for a pool address); outputs
	// hold the rewritten datagram, which replaces the original.
	ActionRewritten Action = "rewritten"
	// ActionAnswered: a DNS query the ENR answered itself (RFC 6535 §2.3.3:
	// PTR for an unmapped pool address gets NXDOMAIN); the query goes no
	// further and outputs hold the answer sent back to the application.
	ActionAnswered Action = "answered"
)

// Outcome is what the pipeline made of one packet.
type Outcome struct {
	Action Action
	Reason drop.Reason
	// Packets are emitted in order. They may alias the pipeline's buffers
	// and are valid until the next call to Process.
	Packets [][]byte
}

// Translator is the part of *translate.Translator the pipeline uses.
type Translator interface {
	Translate4to6(buf []byte, off int) translate.Result
	Translate6to4(buf []byte, off int) translate.Result
}

// Handler may claim an IP packet before the translator sees it; the daemon's
// DNS handling (the ENR, RFC 6535 §2.3) plugs in here. The packet is
// buf[off:] with at least translate.Headroom writable bytes before it, like
// the translator's input. Returning false leaves the packet to the
// translator; an error stops the replay.
type Handler interface {
	Handle(buf []byte, off int, network Network) (Outcome, bool, error)
}

// Clocked is a Handler whose decisions depend on time. Run calls Advance
// with each frame's capture timestamp before deciding on the frame, so a
// replay follows the capture's clock, not the wall clock.
type Clocked interface {
	Advance(ts time.Time)
}

// Pipeline decides on IP packets: handlers first, in order, then the
// translator of the packet's family. Not safe for concurrent use.
type Pipeline struct {
	Translator Translator
	Handlers   []Handler

	buf []byte // input copy with headroom, reused
}

// Advance moves the clock of every Clocked handler to ts.
func (p *Pipeline) Advance(ts time.Time) {
	for _, h := range p.Handlers {
		if c, ok := h.(Clocked); ok {
			c.Advance(ts)
		}
	}
}

// Process decides on one network-layer packet. pkt is copied, so the caller
// keeps it unchanged.
func (p *Pipeline) Process(pkt []byte, network Network) (Outcome, error) {
	switch network {
	case NotIP:
		return Outcome{Action: ActionPassed}, nil
	case ShortFrame:
		return Outcome{Action: ActionDropped, Reason: drop.TooShort}, nil
	case IPv4, IPv6:
	default:
		return Outcome{}, fmt.Errorf("unknown network %d", network)
	}
	if p.Translator == nil {
		return Outcome{}, errors.New("pipeline has no translator")
	}
	off := translate.Headroom
	if need := off + len(pkt); cap(p.buf) < need {
		p.buf = make([]byte, need)
	}
	buf := p.buf[:off+len(pkt)]
	copy(buf[off:], pkt)
	for _, h := range p.Handlers {
		o, ok, err := h.Handle(buf, off, network)
		if err != nil {
			return Outcome{}, err
		}
		if ok {
			return o, nil
		}
	}
	var r translate.Result
	if network == IPv4 {
		r = p.Translator.Translate4to6(buf, off)
	} else {
		r = p.Translator.Translate6to4(buf, off)
	}
	var a Action
	switch r.Action {
	case translate.Translated:
		a = ActionTranslated
	case translate.Dropped:
		a = ActionDropped
	case translate.GeneratedError:
		a = ActionGeneratedError
	default:
		return Outcome{}, fmt.Errorf("translator returned unknown action %d", r.Action)
	}
	return Outcome{Action: a, Reason: r.Reason, Packets: r.Packets}, nil
}

// Verdict is one line of the verdict file (JSON Lines, one object per input
// packet, in input order). The field names and action strings are a stable
// interface: fields may be added, never renamed or removed.
type Verdict struct {
	// Index is the input packet's 0-based position in the capture.
	Index int `json:"index"`
	// Action is translated, passed, dropped or generated-error; with an
	// ENR (replay --zone), DNS packets also get rewritten or answered.
	Action Action `json:"action"`
	// Reason is the drop reason name (internal/drop) for dropped and
	// generated-error; for a passed DNS packet, why the ENR did not
	// consider it, if it says; empty otherwise.
	Reason string `json:"reason"`
	// Outputs are the 0-based indices of the packets this input produced in
	// the output capture, in order; never null.
	Outputs []int `json:"outputs"`
}

// Summary counts what Run did.
type Summary struct {
	Packets  int            // input records decided on
	Outputs  int            // packets written
	ByAction map[Action]int // input records per action
}

// Run replays every frame from in through p, writing emitted packets to out
// (a LINKTYPE_RAW pcap) and, when verdicts is not nil, one Verdict per frame.
// On error, what was decided before it is still written and flushed.
func Run(in io.Reader, out io.Writer, verdicts io.Writer, p *Pipeline) (sum Summary, err error) {
	sum.ByAction = make(map[Action]int)
	rd, err := NewReader(in)
	if err != nil {
		return sum, err
	}
	w, err := NewWriter(out)
	if err != nil {
		return sum, err
	}
	var (
		vw  *bufio.Writer
		enc *json.Encoder
	)
	if verdicts != nil {
		vw = bufio.NewWriter(verdicts)
		enc = json.NewEncoder(vw)
	}
	defer func() {
		if ferr := w.Flush(); ferr != nil && err == nil {
			err = fmt.Errorf("write output: %w", ferr)
		}
		if vw != nil {
			if ferr := vw.Flush(); ferr != nil && err == nil {
				err = fmt.Errorf("write verdicts: %w", ferr)
			}
		}
	}()
	for {
		f, err := rd.Next()
		if err == io.EOF {
			return sum, nil
		}
		if err != nil {
			return sum, err
		}
		pkt, network, err := StripLink(f.LinkType, f.Data)
		if err != nil {
			return sum, fmt.Errorf("packet index %d: %w", f.Index, err)
		}
		p.Advance(f.Timestamp)
		o, err := p.Process(pkt, network)
		if err != nil {
			return sum, fmt.Errorf("packet index %d: %w", f.Index, err)
		}
		v := Verdict{Index: f.Index, Action: o.Action, Outputs: make([]int, 0, len(o.Packets))}
		if o.Reason != drop.None {
			v.Reason = o.Reason.String()
		}
		// Written before the next Process call: Packets alias its buffers.
		for _, out := range o.Packets {
			i, err := w.Write(f.Timestamp, out)
			if err != nil {
				return sum, fmt.Errorf("packet index %d: %w", f.Index, err)
			}
			v.Outputs = append(v.Outputs, i)
		}
		sum.Packets++
		sum.Outputs = w.Count()
		sum.ByAction[o.Action]++
		if enc != nil {
			if err := enc.Encode(v); err != nil {
				return sum, fmt.Errorf("write verdicts: %w", err)
			}
		}
	}
}
