package pool

import (
	"net/netip"
	"slices"
	"time"
)

// counters are guarded by Pool.mu.
type counters struct {
	allocations, refreshes, reclamations, expirations, flushes uint64
	exhausted, rateLimited, quota                              uint64
	errorSourceAllocations                                     uint64
	errorSourceLimited, errorSourceExhausted                   uint64
	journalSyncs, journalRecords, compactions, persistErrors   uint64
}

// RestoreInfo describes what New found in the state directory.
type RestoreInfo struct {
	File            string
	Restored        int
	DroppedExpired  int
	DroppedConflict int // address now held by a static mapping
	DroppedOutside  int // address no longer inside a configured pool
	Damaged         bool
	MovedTo         string // where the damaged file went ("" if not moved)
}

// RangeStats describes one destination pool.
type RangeStats struct {
	Prefix  netip.Prefix
	Usable  int // addresses that can be handed out (excludes network, broadcast, static)
	Mapped  int // dynamic and error-source mappings
	Static  int
	Free    int
	Avoided bool // overlaps the host's IPv4 networks (SetHostOverlap)
}

// Refusals counts mappings refused, by reason.
type Refusals struct {
	Exhausted            uint64 // drop.PoolExhausted
	RateLimited          uint64 // drop.PoolRateLimited
	Quota                uint64 // drop.PoolQuota
	ErrorSourceLimited   uint64 // ErrorSourceTo4 over its rate or count
	ErrorSourceExhausted uint64 // ErrorSourceTo4 found no address
}

// Stats is a point-in-time view for metrics and status.
type Stats struct {
	Pools                  []RangeStats
	Mappings               int // all kinds
	StaticOutsidePools     int
	ErrorSourceMappings    int
	Requesters             int
	Allocations            uint64 // new dynamic mappings
	ErrorSourceAllocations uint64
	Refreshes              uint64
	Reclamations           uint64
	Expirations            uint64
	Flushes                uint64
	Refused                Refusals
	// Persistence.
	Persistent     bool   // a journal is being written
	PersistError   string // last write error, "" when healthy
	JournalSyncs   uint64 // group commits (one fsync each)
	JournalRecords uint64 // records appended
	Compactions    uint64
	PersistErrors  uint64
	Restore        RestoreInfo
}

// Stats returns counters and per-pool occupancy.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := Stats{
		StaticOutsidePools:     len(p.static4),
		ErrorSourceMappings:    p.errCount,
		Requesters:             len(p.requesters),
		Allocations:            p.st.allocations,
		ErrorSourceAllocations: p.st.errorSourceAllocations,
		Refreshes:              p.st.refreshes,
		Reclamations:           p.st.reclamations,
		Expirations:            p.st.expirations,
		Flushes:                p.st.flushes,
		Refused: Refusals{
			Exhausted:            p.st.exhausted,
			RateLimited:          p.st.rateLimited,
			Quota:                p.st.quota,
			ErrorSourceLimited:   p.st.errorSourceLimited,
			ErrorSourceExhausted: p.st.errorSourceExhausted,
		},
		Persistent:     p.j != nil,
		JournalSyncs:   p.st.journalSyncs,
		JournalRecords: p.st.journalRecords,
		Compactions:    p.st.compactions,
		PersistErrors:  p.st.persistErrors,
		Restore:        p.restore,
	}
	if p.persistErr != nil {
		s.PersistError = p.persistErr.Error()
	}
	s.Mappings = len(p.static4)
	for i := range p.ranges {
		rg := &p.ranges[i]
		rs := RangeStats{Prefix: rg.prefix, Usable: rg.usable(), Static: rg.static, Free: rg.free.n, Avoided: rg.avoid}
		rs.Mapped = int(rg.size) - 2 - rg.static - rg.free.n
		s.Mappings += rs.Mapped + rs.Static
		s.Pools = append(s.Pools, rs)
	}
	return s
}

// Snapshot lists every mapping, ordered by IPv4 address.
func (p *Pool) Snapshot() []Mapping {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.snapshotLocked()
}

func (p *Pool) snapshotLocked() []Mapping {
	var out []Mapping
	for i := range p.ranges {
		for s := range p.ranges[i].slots {
			if e := p.ranges[i].slots[s].Load(); e != nil {
				out = append(out, e.mapping())
			}
		}
	}
	for _, e := range p.static4 {
		out = append(out, e.mapping())
	}
	slices.SortFunc(out, func(a, b Mapping) int { return a.V4.Compare(b.V4) })
	return out
}

// Age is how long ago m was created, relative to now.
func (m Mapping) Age(now time.Time) time.Duration { return now.Sub(m.Created) }
