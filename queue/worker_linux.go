package queue

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"

	"github.com/bih-nfq/bih-nfq/internal/drop"
)

// Stats are a worker's counters, safe to read while it runs.
type Stats struct {
	Received  atomic.Uint64
	Accepted  atomic.Uint64
	Dropped   atomic.Uint64
	Pending   atomic.Uint64
	Requeued  atomic.Uint64 // handed to another queue (RequeueTo)
	Emitted   atomic.Uint64
	EmitFails atomic.Uint64
	UDPTrains atomic.Uint64 // runs of datagrams emitted as one (Emitter.writeTrain)
	Batches   atomic.Uint64
}

// Worker serves one queue: receive a batch, handle each packet, send the
// verdicts, emit. One goroutine per queue.
type Worker struct {
	Conn    *Conn
	Emitter *Emitter
	Handler Handler
	Drops   *drop.Counters
	Stats   *Stats
	// Async must be true when the handler may return Pending: batch verdicts
	// would otherwise also settle the held packets.
	Async bool

	pkts     []Packet
	verdicts []uint32
	settled  []Packet
	sv       []uint32
}

// Run serves the queue until ctx ends or the connection fails.
func (w *Worker) Run(ctx context.Context) error {
	if w.Conn == nil || w.Emitter == nil || w.Handler == nil {
		return errors.New("queue: worker needs a Conn, an Emitter and a Handler")
	}
	if w.Stats == nil {
		w.Stats = new(Stats)
	}
	if w.Drops == nil {
		w.Drops = new(drop.Counters)
	}
	n := len(w.Conn.slots)
	w.pkts = make([]Packet, n)
	w.verdicts = make([]uint32, n)
	w.settled = make([]Packet, 0, n)
	w.sv = make([]uint32, 0, n)
	stop := context.AfterFunc(ctx, func() { w.Conn.Close() })
	defer stop()
	// A handler that finishes checksums and cuts super-packets itself gets
	// them whole: one queued packet for up to 64 KiB of TCP, and no
	// checksum pass in the kernel first.
	if oh, ok := w.Handler.(interface{ handlesOffloads() bool }); ok && oh.handlesOffloads() && w.Conn.cfg.Flags&FlagGSO == 0 {
		if err := w.Conn.setFlags(FlagGSO, FlagGSO); err != nil {
			return fmt.Errorf("queue %d: enable GSO: %w", w.Conn.cfg.Num, err)
		}
	}
	for {
		got, err := w.Conn.Receive(w.pkts)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, os.ErrClosed) {
				return ctx.Err()
			}
			return fmt.Errorf("queue %d: receive: %w", w.Conn.cfg.Num, err)
		}
		if got == 0 {
			continue
		}
		w.Stats.Received.Add(uint64(got))
		w.Stats.Batches.Add(1)
		if err := w.serve(w.pkts[:got]); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
	}
}

// serve settles a batch before emitting it: a queued packet holds its
// sender's socket buffer until its verdict, and emitting a batch of UDP
// runs each datagram through the stack to its receiver, so verdicts first
// let the sender go on meanwhile (64-byte UDP: about 13 % more delivered).
// A lone packet is emitted first and its verdict held for the next
// Receive: nothing waits behind it, and what it brings back (an echo reply,
// an ACK) is often queued before the emit returns, so its verdict would
// only delay that.
func (w *Worker) serve(pkts []Packet) error {
	for i := range pkts {
		w.verdicts[i] = w.Handler.Handle(&pkts[i], w.Emitter)
	}
	lone := len(pkts) == 1
	if lone {
		w.emit()
	}
	w.settled, w.sv = w.settled[:0], w.sv[:0]
	for i := range pkts {
		switch v := w.verdicts[i]; v {
		case Pending:
			w.Stats.Pending.Add(1)
			continue
		case Accept:
			w.Stats.Accepted.Add(1)
		default:
			if isRequeue(v) {
				w.Stats.Requeued.Add(1)
				break
			}
			w.Stats.Dropped.Add(1)
		}
		w.settled = append(w.settled, pkts[i])
		w.sv = append(w.sv, w.verdicts[i])
	}
	if lone {
		if err := w.Conn.HoldVerdicts(w.settled, w.sv); err != nil {
			return fmt.Errorf("queue %d: verdicts: %w", w.Conn.cfg.Num, err)
		}
		return nil
	}
	if err := w.Conn.SetVerdicts(w.settled, w.sv, !w.Async); err != nil {
		return fmt.Errorf("queue %d: verdicts: %w", w.Conn.cfg.Num, err)
	}
	w.emit()
	return nil
}

// emit sends what the handlers queued and counts it.
func (w *Worker) emit() {
	w.Emitter.Flush()
	sent, failed, trains := w.Emitter.take()
	w.Stats.UDPTrains.Add(trains)
	w.Stats.Emitted.Add(sent)
	w.Stats.EmitFails.Add(failed)
	for range failed {
		w.Drops.Add(drop.EmitFailed)
	}
}
