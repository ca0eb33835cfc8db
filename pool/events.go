package pool

import (
	"net/netip"
	"time"
)

// EventKind says what changed.
type EventKind uint8

const (
	// Added: a new mapping exists.
	Added EventKind = iota + 1
	// Refreshed: a mapping's DNS lifetime was extended.
	Refreshed
	// Removed: a mapping is gone (Event.Cause says why); its addresses must
	// leave caches and sets.
	Removed
	// Flushed: every non-static mapping is gone at once (RFC 6535 §2.3.4):
	// flush DNS caches of synthetic addresses and resynchronise sets.
	Flushed
	// Overflow: events were dropped because the subscriber fell behind;
	// resynchronise from Pool.Snapshot.
	Overflow
)

func (k EventKind) String() string {
	switch k {
	case Added:
		return "added"
	case Refreshed:
		return "refreshed"
	case Removed:
		return "removed"
	case Flushed:
		return "flushed"
	case Overflow:
		return "overflow"
	}
	return "unknown"
}

// Cause says why a mapping was removed.
type Cause uint8

const (
	// Expired: past its DNS lifetime and idle (swept).
	Expired Cause = iota + 1
	// Reclaimed: its address went to a new mapping while the pool was full.
	Reclaimed
)

func (c Cause) String() string {
	switch c {
	case Expired:
		return "expired"
	case Reclaimed:
		return "reclaimed"
	}
	return ""
}

// Mapping describes one mapping.
type Mapping struct {
	V4, V6    netip.Addr
	Kind      Kind
	Requester netip.Addr // who caused a dynamic mapping (invalid if unknown)
	Created   time.Time
	Expires   time.Time // end of the DNS lifetime (zero for static)
	LastUse   time.Time // last packet, to the coarse clock's resolution
}

func unixTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

func (e *entry) mapping() Mapping {
	m := Mapping{
		V4:        netip.AddrFrom4(e.v4),
		V6:        netip.AddrFrom16(e.v6),
		Kind:      e.kind,
		Requester: e.requester,
		Created:   unixTime(e.created),
		LastUse:   unixTime(e.lastUse.Load()),
	}
	if e.kind != Static {
		m.Expires = unixTime(e.expiry)
	}
	return m
}

// Event is one change of the table.
type Event struct {
	Kind EventKind
	// Mapping is zero for Flushed and Overflow. In Added and Refreshed
	// events its Expires is rounded up by a few minutes, as in the journal:
	// refreshes within that are not announced.
	Mapping Mapping
	Cause   Cause // for Removed
}

// Subscription receives change events on a buffered channel. The pool never
// waits for a subscriber: when the buffer is full, events are dropped and an
// Overflow event is delivered as soon as there is room.
type Subscription struct {
	p        *Pool
	ch       chan Event
	overflow bool
	dropped  uint64
}

// DefaultSubscriptionBuffer is the channel size Subscribe uses for buffer <= 0.
const DefaultSubscriptionBuffer = 1024

// Subscribe registers a subscriber (the nft set of mapped IPv6 addresses, the
// ENR cache) and returns it with the mappings that exist at that instant; the
// events that follow start from that state. The channel is closed by
// Subscription.Close or Pool.Close.
func (p *Pool) Subscribe(buffer int) (*Subscription, []Mapping) {
	if buffer <= 0 {
		buffer = DefaultSubscriptionBuffer
	}
	s := &Subscription{p: p, ch: make(chan Event, buffer)}
	p.mu.Lock()
	defer p.mu.Unlock()
	current := p.snapshotLocked()
	if p.closed {
		close(s.ch)
		return s, current
	}
	p.subs = append(p.subs, s)
	return s, current
}

// Events returns the event channel.
func (s *Subscription) Events() <-chan Event { return s.ch }

// Dropped returns how many events were dropped because the buffer was full.
func (s *Subscription) Dropped() uint64 {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	return s.dropped
}

// Close unregisters the subscriber and closes its channel.
func (s *Subscription) Close() {
	p := s.p
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, o := range p.subs {
		if o == s {
			p.subs = append(p.subs[:i], p.subs[i+1:]...)
			close(s.ch)
			return
		}
	}
}

// emit delivers ev to every subscriber without blocking. Caller holds mu.
func (p *Pool) emit(ev Event) {
	for _, s := range p.subs {
		if s.overflow {
			select {
			case s.ch <- Event{Kind: Overflow}:
				s.overflow = false
			default:
				s.dropped++
				continue
			}
		}
		select {
		case s.ch <- ev:
		default:
			s.overflow = true
			s.dropped++
		}
	}
}
