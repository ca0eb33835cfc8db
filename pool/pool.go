// Package pool is bih-nfq's address mapper (RFC 6535 §2.4, §4.4): it hands
// out synthetic IPv4 addresses from the destination pools for the real IPv6
// addresses the ENR sees, keeps the IPv4⇄IPv6 table the translator reads on
// every packet, reclaims and limits addresses (RFC 6535 §6.3), tells
// subscribers about changes and keeps the table across restarts in a
// crash-safe journal.
//
// The data-path methods (To6, To4) take no lock and do not allocate: they read
// atomic pointers and record use in a per-entry atomic timestamp taken from a
// coarse clock that a ticker advances. Everything else serialises on one
// mutex and never does I/O while holding it.
package pool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bih-nfq/bih-nfq/internal/drop"
)

// Errors returned by MapIPv6 (wrapped; test with errors.Is).
var (
	// ErrExhausted: no free address and no mapping may be reclaimed.
	ErrExhausted = errors.New("pool exhausted: no free address and none reclaimable")
	// ErrRateLimited: the requester asks for new mappings too fast (RFC 6535 §6.3).
	ErrRateLimited = errors.New("requester over its rate of new mappings")
	// ErrQuota: the requester holds its full share of the pool (RFC 6535 §6.3).
	ErrQuota = errors.New("requester over its share of the pool")
	// ErrInvalidAddress: the IPv6 address cannot be mapped (unspecified,
	// loopback, multicast, link-local, IPv4-mapped, or not IPv6).
	ErrInvalidAddress = errors.New("address cannot be mapped")
	// ErrClosed: the pool was closed.
	ErrClosed = errors.New("pool closed")
)

// DropReason maps a MapIPv6 error to the shared drop reason (None for nil or
// errors without one).
func DropReason(err error) drop.Reason {
	switch {
	case errors.Is(err, ErrExhausted):
		return drop.PoolExhausted
	case errors.Is(err, ErrRateLimited):
		return drop.PoolRateLimited
	case errors.Is(err, ErrQuota):
		return drop.PoolQuota
	}
	return drop.None
}

// Kind says how a mapping came to be.
type Kind uint8

const (
	// Dynamic mappings are made for DNS answers (RFC 6535 §2.4 cases 1, 2).
	Dynamic Kind = iota
	// Static mappings come from configuration and never expire.
	Static
	// ErrorSource mappings are made on demand for the IPv6 source of an
	// ICMPv6 error (RFC 6535 §2.4 case 3); short-lived and not persisted.
	ErrorSource
)

func (k Kind) String() string {
	switch k {
	case Dynamic:
		return "dynamic"
	case Static:
		return "static"
	case ErrorSource:
		return "error-source"
	}
	return "unknown"
}

// entry is one mapping. v4 and v6 never change once the entry is published
// (a reclaimed address gets a new entry, so a reader holding an old pointer
// sees a consistent pair); lastUse is written by the data path; the rest is
// guarded by Pool.mu.
type entry struct {
	lastUse   atomic.Int64 // coarse Unix ns of the last packet (or creation)
	v6        [16]byte
	v4        [4]byte
	kind      Kind
	rng       int8  // index in Pool.ranges; -1 for a static outside the pools
	created   int64 // Unix ns
	expiry    int64 // end of the DNS lifetime: TTL + grace
	journaled int64 // expiry as last written to the journal
	announced int64 // expiry as last told to subscribers
	seq       uint64
	requester netip.Addr
}

// addrRange is one destination pool. slots is indexed by offset from base;
// offsets 0 and size-1 (network and broadcast) are never filled.
type addrRange struct {
	prefix netip.Prefix
	base   uint32
	size   uint32
	slots  []atomic.Pointer[entry]
	free   ring // free offsets, oldest-freed first so addresses rest before reuse
	static int
	avoid  bool // overlaps the host's own IPv4 (RFC 6535 §4.4)
}

func (r *addrRange) usable() int { return int(r.size) - 2 - r.static }

// ring is a FIFO of free offsets.
type ring struct {
	buf  []uint32
	head int
	n    int
}

func (q *ring) push(v uint32) {
	q.buf[(q.head+q.n)%len(q.buf)] = v
	q.n++
}

func (q *ring) pop() (uint32, bool) {
	if q.n == 0 {
		return 0, false
	}
	v := q.buf[q.head]
	q.head = (q.head + 1) % len(q.buf)
	q.n--
	return v, true
}

// tokenBucket limits a rate of events.
type tokenBucket struct {
	tokens float64
	last   int64
}

func (b *tokenBucket) take(now int64, rate float64, burst int) bool {
	if rate < 0 {
		return true
	}
	if now > b.last {
		b.tokens = math.Min(float64(burst), b.tokens+float64(now-b.last)/1e9*rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// requesterState is the per-client state behind the RFC 6535 §6.3 limits.
type requesterState struct {
	bucket tokenBucket
	owned  int
}

// Pool is the address mapper. All methods are safe for concurrent use.
type Pool struct {
	cfg    Config
	log    *slog.Logger
	now    atomic.Int64 // coarse clock for the data path, Unix ns
	ranges []addrRange
	// static4 holds static mappings outside the pools; read-only after New.
	static4 map[[4]byte]*entry
	tab     atomic.Pointer[table]

	mu         sync.Mutex
	closed     bool
	eligible   []int // ranges new mappings come from, in order
	requesters map[netip.Addr]*requesterState
	errBucket  tokenBucket
	errCount   int
	subs       []*Subscription
	st         counters
	restore    RestoreInfo

	// Persistence: records queue under mu; the writer goroutine owns j.
	j           *journal
	pending     []record
	spare       []record
	seq         uint64
	wantCompact bool
	persistErr  error
	wake        chan struct{}
	dmu         sync.Mutex
	dcond       *sync.Cond
	durable     uint64
	closeErr    error

	stop chan struct{}
	wg   sync.WaitGroup
}

// refreshSlack is added to the expiry written to the journal so that DNS
// refreshes within it need no write.
const refreshSlack = 5 * time.Minute

// maxRequesters bounds the per-requester state kept between sweeps.
const maxRequesters = 1 << 16

// persistRetry is how soon a failed journal write is retried.
const persistRetry = time.Second

// New builds a Pool, restores the journal from cfg.StateDir (if any) and
// starts the clock, sweeper and journal writer. It fails only on an invalid
// configuration: an unusable or damaged state file is logged and left behind.
func New(cfg Config) (*Pool, error) {
	cfg.fill()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("pool config: %w", err)
	}
	p := &Pool{
		cfg:        cfg,
		log:        cfg.Logger,
		requesters: map[netip.Addr]*requesterState{},
		errBucket:  tokenBucket{tokens: float64(cfg.ErrorSourceBurst)},
		wake:       make(chan struct{}, 1),
		stop:       make(chan struct{}),
	}
	p.dcond = sync.NewCond(&p.dmu)
	capacity := 0
	for _, pf := range cfg.Pools {
		size := uint32(1) << (32 - pf.Bits())
		p.ranges = append(p.ranges, addrRange{
			prefix: pf,
			base:   be32(pf.Addr().As4()),
			size:   size,
			slots:  make([]atomic.Pointer[entry], size),
		})
		capacity += int(size)
	}
	p.tab.Store(newTable(2*(capacity+len(cfg.Static)), rand.Uint64()))
	now := p.tick()
	if err := p.addStatic(now); err != nil {
		return nil, fmt.Errorf("pool config: %w", err)
	}
	if cfg.StateDir != "" {
		p.j = p.openJournal(now)
	}
	for i := range p.ranges {
		rg := &p.ranges[i]
		rg.free.buf = make([]uint32, rg.size)
		for off := uint32(1); off+1 < rg.size; off++ {
			if rg.slots[off].Load() == nil {
				rg.free.push(off)
			}
		}
		p.eligible = append(p.eligible, i)
	}
	p.wg.Add(1)
	go p.clockLoop()
	if p.j != nil {
		p.wg.Add(1)
		go p.writeLoop()
	}
	return p, nil
}

func be32(a [4]byte) uint32 { return binary.BigEndian.Uint32(a[:]) }

// rangeOf returns the range holding v4 and the offset in it, or -1.
func (p *Pool) rangeOf(v4 [4]byte) (int, uint32) {
	u := be32(v4)
	for i := range p.ranges {
		if off := u - p.ranges[i].base; off < p.ranges[i].size {
			return i, off
		}
	}
	return -1, 0
}

func (p *Pool) addStatic(now int64) error {
	seen4 := map[netip.Addr]bool{}
	t := p.tab.Load()
	for _, s := range p.cfg.Static {
		v4, v6 := s.V4.Unmap(), s.V6.WithZone("")
		if !v4.Is4() || !v6.Is6() || v6.Is4In6() || v6.IsUnspecified() || v6.IsMulticast() {
			return fmt.Errorf("static mapping %v→%v: want a unicast IPv4 and IPv6 address", s.V4, s.V6)
		}
		k6 := v6.As16()
		if seen4[v4] || t.find(&k6) != nil {
			return fmt.Errorf("static mapping %v→%v: address listed twice", s.V4, s.V6)
		}
		seen4[v4] = true
		e := &entry{v4: v4.As4(), v6: k6, kind: Static, rng: -1, created: now, expiry: math.MaxInt64}
		e.lastUse.Store(now)
		if i, off := p.rangeOf(e.v4); i >= 0 {
			rg := &p.ranges[i]
			if off == 0 || off == rg.size-1 {
				return fmt.Errorf("static mapping %v→%v: network or broadcast address of pool %v", s.V4, s.V6, rg.prefix)
			}
			e.rng = int8(i)
			rg.slots[off].Store(e)
			rg.static++
		} else {
			if p.static4 == nil {
				p.static4 = map[[4]byte]*entry{}
			}
			p.static4[e.v4] = e
		}
		t.insert(e)
	}
	return nil
}

// tick reads the clock and advances the coarse clock (never backwards).
func (p *Pool) tick() int64 {
	now := p.cfg.Clock().UnixNano()
	for {
		old := p.now.Load()
		if now <= old || p.now.CompareAndSwap(old, now) {
			return now
		}
	}
}

func (p *Pool) clockLoop() {
	defer p.wg.Done()
	t := time.NewTicker(p.cfg.ClockResolution)
	defer t.Stop()
	sweepEvery := max(1, int(p.cfg.SweepInterval/p.cfg.ClockResolution))
	for n := 1; ; n++ {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.tick()
			if n%sweepEvery == 0 {
				p.Sweep()
			}
		}
	}
}

// mappable reports whether a remote IPv6 address may get a pool address.
// Link-local is allowed only for ICMPv6 error sources (an on-link router).
func mappable(a netip.Addr, linkLocal bool) bool {
	if !a.Is6() || a.Is4In6() || a.IsUnspecified() || a.IsLoopback() || a.IsMulticast() {
		return false
	}
	return linkLocal || !a.IsLinkLocalUnicast()
}

// MapIPv6 returns the pool address for v6, creating the mapping if needed
// (RFC 6535 §2.4 cases 1 and 2), and extends its DNS lifetime to at least
// ttl (capped at MaxTTL) plus the grace period. Mappings are
// endpoint-independent (RFC 6535 §6.2): the same v6 gets the same IPv4
// address whoever asks, while the mapping lives. A new mapping is charged to
// requester (the client that asked, for the RFC 6535 §6.3 limits). When the
// state is persisted, MapIPv6 returns only after the mapping is on disk.
func (p *Pool) MapIPv6(v6, requester netip.Addr, ttl time.Duration) (netip.Addr, error) {
	if !mappable(v6, false) {
		return netip.Addr{}, fmt.Errorf("map %v: %w", v6, ErrInvalidAddress)
	}
	k := v6.As16()
	req := requester.Unmap().WithZone("")
	ttl = min(max(ttl, 0), p.cfg.MaxTTL)
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return netip.Addr{}, fmt.Errorf("map %v: %w", v6, ErrClosed)
	}
	now := p.tick()
	exp := now + int64(ttl) + int64(p.cfg.Grace)
	if e := p.tab.Load().find(&k); e != nil {
		p.refresh(e, now, exp, req)
		v4, seq := e.v4, e.seq
		p.mu.Unlock()
		p.waitDurable(seq)
		return netip.AddrFrom4(v4), nil
	}
	r := p.requesters[req]
	if r == nil {
		if len(p.requesters) >= maxRequesters {
			// Spoofed requesters must not grow memory without bound
			// (RFC 6535 §6.3); idle ones are forgotten by Sweep.
			p.st.rateLimited++
			p.mu.Unlock()
			return netip.Addr{}, fmt.Errorf("map %v for %v: too many requesters: %w", v6, requester, ErrRateLimited)
		}
		r = &requesterState{bucket: tokenBucket{tokens: float64(p.cfg.RequesterBurst), last: now}}
		p.requesters[req] = r
	}
	if !r.bucket.take(now, p.cfg.RequesterRate, p.cfg.RequesterBurst) {
		p.st.rateLimited++
		p.mu.Unlock()
		return netip.Addr{}, fmt.Errorf("map %v for %v: %w", v6, requester, ErrRateLimited)
	}
	if p.cfg.RequesterShare < 1 && r.owned >= p.shareLimit() {
		p.st.quota++
		p.mu.Unlock()
		return netip.Addr{}, fmt.Errorf("map %v for %v: %w", v6, requester, ErrQuota)
	}
	i, off, ok := p.allocate(now)
	if !ok {
		p.st.exhausted++
		p.mu.Unlock()
		return netip.Addr{}, fmt.Errorf("map %v for %v: %w", v6, requester, ErrExhausted)
	}
	e := &entry{v6: k, kind: Dynamic, created: now, expiry: exp, requester: req}
	e.lastUse.Store(now)
	p.insert(e, i, off)
	r.owned++
	p.st.allocations++
	p.journalPut(e)
	p.announce(Added, e)
	v4, seq := e.v4, e.seq
	p.mu.Unlock()
	p.waitDurable(seq)
	return netip.AddrFrom4(v4), nil
}

// refresh extends e's DNS lifetime to exp; an error-source mapping named in
// a DNS answer becomes an ordinary one.
func (p *Pool) refresh(e *entry, now, exp int64, req netip.Addr) {
	switch e.kind {
	case Static:
		return
	case ErrorSource:
		e.kind = Dynamic
		e.requester = req
		p.errCount--
		r := p.requesters[req]
		if r == nil {
			r = &requesterState{bucket: tokenBucket{tokens: float64(p.cfg.RequesterBurst), last: now}}
			p.requesters[req] = r
		}
		r.owned++
		e.journaled, e.announced = 0, 0
	}
	if exp > e.expiry {
		e.expiry = exp
		p.st.refreshes++
	}
	// Every answer moves the expiry on by a little; subscribers (a
	// netlink transaction each for the nft set) hear of it once per slack.
	if exp > e.announced {
		p.announce(Refreshed, e)
	}
	if exp > e.journaled {
		p.journalPut(e)
	}
}

// RequesterLimit is how many mappings one requester may hold now (RFC 6535
// §6.3); 0 when the share is the whole pool.
func (p *Pool) RequesterLimit() int {
	if p.cfg.RequesterShare >= 1 {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.shareLimit()
}

// shareLimit is how many mappings one requester may hold (RFC 6535 §6.3).
func (p *Pool) shareLimit() int {
	n := 0
	for _, i := range p.eligible {
		n += p.ranges[i].usable()
	}
	return max(1, int(p.cfg.RequesterShare*float64(n)))
}

// reclaimable: past its DNS lifetime and idle for ReclaimIdle; never a
// mapping with recent traffic (RFC 6535 §4.4).
func (p *Pool) reclaimable(e *entry, now int64) bool {
	return e.kind != Static && now >= e.expiry && now-e.lastUse.Load() >= int64(p.cfg.ReclaimIdle)
}

// expired: past its DNS lifetime and idle for IdleTimeout (ReclaimIdle for
// error-source mappings, which no DNS cache holds).
func (p *Pool) expired(e *entry, now int64) bool {
	idle := p.cfg.IdleTimeout
	switch e.kind {
	case Static:
		return false
	case ErrorSource:
		idle = p.cfg.ReclaimIdle
	}
	return now >= e.expiry && now-e.lastUse.Load() >= int64(idle)
}

// allocate picks a free address from the eligible ranges in order, or
// reclaims the least recently used reclaimable mapping among them.
func (p *Pool) allocate(now int64) (int, uint32, bool) {
	for _, i := range p.eligible {
		if off, ok := p.ranges[i].free.pop(); ok {
			return i, off, true
		}
	}
	var victim *entry
	var victimUse int64
	for _, i := range p.eligible {
		for s := range p.ranges[i].slots {
			e := p.ranges[i].slots[s].Load()
			if e == nil || !p.reclaimable(e, now) {
				continue
			}
			if u := e.lastUse.Load(); victim == nil || u < victimUse {
				victim, victimUse = e, u
			}
		}
	}
	if victim == nil {
		return 0, 0, false
	}
	p.st.reclamations++
	p.remove(victim, Reclaimed)
	i := int(victim.rng)
	off, ok := p.ranges[i].free.pop()
	return i, off, ok
}

// insert publishes e at offset off of range i.
func (p *Pool) insert(e *entry, i int, off uint32) {
	rg := &p.ranges[i]
	binary.BigEndian.PutUint32(e.v4[:], rg.base+off)
	e.rng = int8(i)
	t := p.tab.Load()
	if t.full() {
		t = t.rebuilt()
		p.tab.Store(t)
	}
	t.insert(e)
	rg.slots[off].Store(e)
}

// remove unpublishes a non-static e and frees its address.
func (p *Pool) remove(e *entry, cause Cause) {
	rg := &p.ranges[e.rng]
	off := be32(e.v4) - rg.base
	rg.slots[off].Store(nil)
	rg.free.push(off)
	p.tab.Load().remove(e)
	switch e.kind {
	case Dynamic:
		if r := p.requesters[e.requester]; r != nil {
			r.owned--
		}
		p.journal(record{op: opDel, v4: e.v4, v6: e.v6})
	case ErrorSource:
		p.errCount--
	}
	if cause == Expired {
		p.st.expirations++
	}
	p.emit(Event{Kind: Removed, Mapping: e.mapping(), Cause: cause})
}

// Sweep removes expired mappings and forgets idle requesters; it runs every
// SweepInterval and returns how many mappings it removed.
func (p *Pool) Sweep() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return 0
	}
	now := p.tick()
	n := 0
	for i := range p.ranges {
		for s := range p.ranges[i].slots {
			if e := p.ranges[i].slots[s].Load(); e != nil && p.expired(e, now) {
				p.remove(e, Expired)
				n++
			}
		}
	}
	for k, r := range p.requesters {
		if r.owned == 0 && (p.cfg.RequesterRate < 0 ||
			float64(now-r.bucket.last)/1e9*p.cfg.RequesterRate+r.bucket.tokens >= float64(p.cfg.RequesterBurst)) {
			delete(p.requesters, k)
		}
	}
	return n
}

// Flush removes every mapping except static ones (RFC 6535 §2.3.4: when BIH
// shuts down or the table is cleared, DNS caches must be flushed too, which
// subscribers do on the Flushed event; §4.5: an IPv4 interface appeared).
func (p *Pool) Flush() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	t := newTable(len(p.tab.Load().buckets), p.tab.Load().seed)
	for i := range p.ranges {
		rg := &p.ranges[i]
		rg.free = ring{buf: rg.free.buf}
		for off := uint32(1); off+1 < rg.size; off++ {
			e := rg.slots[off].Load()
			if e != nil && e.kind == Static {
				t.insert(e)
				continue
			}
			rg.slots[off].Store(nil)
			rg.free.push(off)
		}
	}
	for _, e := range p.static4 {
		t.insert(e)
	}
	p.tab.Store(t)
	for _, r := range p.requesters {
		r.owned = 0
	}
	p.errCount = 0
	p.st.flushes++
	seq := p.journal(record{op: opFlush})
	p.emit(Event{Kind: Flushed})
	p.mu.Unlock()
	p.waitDurable(seq)
}

// SetHostOverlap tells the pool the host's own IPv4 addresses and connected
// routes. New mappings avoid every pool that overlaps one of them (RFC 6535
// §4.4: the secondary pool is for hosts whose IPv4 networks conflict with the
// primary); existing mappings stay until they expire or Flush. Default routes
// (/0) are ignored: IPv4 connectivity itself is RFC 6535 §4.5's concern. If
// every pool overlaps, all are used and a warning is logged.
func (p *Pool) SetHostOverlap(host []netip.Prefix) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var eligible, avoided []int
	for i := range p.ranges {
		rg := &p.ranges[i]
		rg.avoid = false
		for _, h := range host {
			h = netip.PrefixFrom(h.Addr().Unmap(), h.Bits())
			if h.IsValid() && h.Addr().Is4() && h.Bits() > 0 && h.Overlaps(rg.prefix) {
				rg.avoid = true
				break
			}
		}
		if rg.avoid {
			avoided = append(avoided, i)
		} else {
			eligible = append(eligible, i)
		}
	}
	if len(eligible) == 0 {
		p.log.Warn("pool: every destination pool overlaps the host's IPv4 networks; using them anyway", "host", host)
		eligible = avoided
	}
	if !equalInts(eligible, p.eligible) {
		from := make([]netip.Prefix, 0, len(eligible))
		for _, i := range eligible {
			from = append(from, p.ranges[i].prefix)
		}
		p.log.Info("pool: new mappings now come from", "pools", from)
	}
	p.eligible = eligible
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// find4 returns the entry for a pool or static IPv4 address. No lock, no
// allocation.
func (p *Pool) find4(a [4]byte) *entry {
	u := be32(a)
	for i := range p.ranges {
		if off := u - p.ranges[i].base; off < p.ranges[i].size {
			return p.ranges[i].slots[off].Load()
		}
	}
	return p.static4[a]
}

// touch records use of e for the idle timers. The store is skipped when the
// coarse clock has not moved so hot entries stay shared in every CPU's cache.
func (p *Pool) touch(e *entry) {
	if now := p.now.Load(); e.lastUse.Load() < now {
		e.lastUse.Store(now)
	}
}

// To6 returns the IPv6 address mapped to IPv4 address a and records use
// (translate.Mapper; RFC 7915 §6). No lock, no allocation, no I/O.
func (p *Pool) To6(a [4]byte) ([16]byte, bool) {
	e := p.find4(a)
	if e == nil {
		return [16]byte{}, false
	}
	p.touch(e)
	return e.v6, true
}

// To4 returns the pool IPv4 address mapped to IPv6 address a and records use
// (translate.Mapper). No lock, no allocation, no I/O.
func (p *Pool) To4(a [16]byte) ([4]byte, bool) {
	e := p.tab.Load().find(&a)
	if e == nil {
		return [4]byte{}, false
	}
	p.touch(e)
	return e.v4, true
}

// ErrorSourceTo4 maps the IPv6 source of an ICMPv6 error that has no mapping
// yet, such as a router answering traceroute (RFC 6535 §2.4 case 3;
// translate.ErrorSourceMapper). The mapping lives ErrorSourceLifetime after
// its last use, is not persisted, and new ones are limited by
// ErrorSourceRate/Burst and ErrorSourceMax. Existing mappings are found
// without a lock; creating one takes the pool's mutex briefly (no I/O).
func (p *Pool) ErrorSourceTo4(a [16]byte) ([4]byte, bool) {
	if v4, ok := p.To4(a); ok {
		return v4, true
	}
	if !mappable(netip.AddrFrom16(a), true) {
		return [4]byte{}, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return [4]byte{}, false
	}
	now := p.tick()
	if e := p.tab.Load().find(&a); e != nil { // mapped meanwhile
		return e.v4, true
	}
	if p.errCount >= p.cfg.ErrorSourceMax || !p.errBucket.take(now, p.cfg.ErrorSourceRate, p.cfg.ErrorSourceBurst) {
		p.st.errorSourceLimited++
		return [4]byte{}, false
	}
	i, off, ok := p.allocate(now)
	if !ok {
		p.st.errorSourceExhausted++
		return [4]byte{}, false
	}
	e := &entry{v6: a, kind: ErrorSource, created: now, expiry: now + int64(p.cfg.ErrorSourceLifetime)}
	e.lastUse.Store(now)
	p.insert(e, i, off)
	p.errCount++
	p.st.errorSourceAllocations++
	p.announce(Added, e)
	return e.v4, true
}

// LookupIPv4 returns the IPv6 address mapped to v4, for PTR answers
// (RFC 6535 §2.3.3). It does not count as use.
func (p *Pool) LookupIPv4(v4 netip.Addr) (netip.Addr, bool) {
	v4 = v4.Unmap()
	if !v4.Is4() {
		return netip.Addr{}, false
	}
	e := p.find4(v4.As4())
	if e == nil {
		return netip.Addr{}, false
	}
	return netip.AddrFrom16(e.v6), true
}

// InPool reports whether v4 lies inside a destination pool (mapped or not).
func (p *Pool) InPool(v4 netip.Addr) bool {
	v4 = v4.Unmap()
	if !v4.Is4() {
		return false
	}
	i, _ := p.rangeOf(v4.As4())
	return i >= 0
}

// MaxTTL is the longest TTL counted toward a mapping's DNS lifetime; the ENR
// should not give synthesized answers a longer TTL.
func (p *Pool) MaxTTL() time.Duration { return p.cfg.MaxTTL }

// Close writes the journal one last time (with last-use times) and stops
// background work. The data-path methods keep answering from the final table.
func (p *Pool) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	for _, s := range p.subs {
		close(s.ch)
	}
	p.subs = nil
	p.mu.Unlock()
	close(p.stop)
	p.wg.Wait()
	return p.closeErr
}

// ---- persistence ----

// journal queues r for the writer and returns its sequence number (0 when
// nothing is persisted). Caller holds mu.
func (p *Pool) journal(r record) uint64 {
	if p.j == nil {
		return 0
	}
	p.seq++
	p.pending = append(p.pending, r)
	select {
	case p.wake <- struct{}{}:
	default: // a wake-up is already pending
	}
	return p.seq
}

// announce emits an Added or Refreshed event for e whose Expires is the
// expiry rounded up by refreshSlack, as the journal's: later refreshes
// within it are not announced. Removal is always announced, so a
// subscriber that keeps an address until then loses nothing.
func (p *Pool) announce(kind EventKind, e *entry) {
	m := e.mapping()
	if e.kind != Static {
		e.announced = e.expiry + int64(refreshSlack)
		m.Expires = unixTime(e.announced)
	}
	p.emit(Event{Kind: kind, Mapping: m})
}

// journalPut queues a put for e with an expiry rounded up by refreshSlack.
func (p *Pool) journalPut(e *entry) {
	e.journaled = e.expiry + int64(refreshSlack)
	if s := p.journal(e.record()); s != 0 {
		e.seq = s
	}
}

func (e *entry) record() record {
	r := record{op: opPut, v4: e.v4, v6: e.v6, created: e.created, expiry: e.journaled, lastUse: e.lastUse.Load()}
	if e.requester.IsValid() {
		r.requester = e.requester.As16()
	}
	return r
}

// waitDurable blocks until record seq is on disk (or its write failed, which
// is logged and counted).
func (p *Pool) waitDurable(seq uint64) {
	if seq == 0 || p.j == nil {
		return
	}
	p.dmu.Lock()
	for p.durable < seq {
		p.dcond.Wait()
	}
	p.dmu.Unlock()
}

func (p *Pool) writeLoop() {
	defer p.wg.Done()
	t := time.NewTicker(p.cfg.CompactInterval)
	defer t.Stop()
	for {
		select {
		case <-p.wake:
			p.commit(false)
		case <-t.C:
			p.commit(true) // also records last-use times
		case <-p.stop:
			p.commit(true)
			if err := p.j.close(); err != nil && p.closeErr == nil {
				p.closeErr = fmt.Errorf("close journal: %w", err)
			}
			return
		}
	}
}

// commit writes the queued records with one fsync (group commit), or
// rewrites the whole journal, then releases the waiters.
func (p *Pool) commit(compact bool) {
	p.mu.Lock()
	batch, seq := p.pending, p.seq
	p.pending = p.spare[:0]
	compact = compact || p.wantCompact || p.j.f == nil || p.j.appended+len(batch) > p.cfg.compactAfter
	var snap []record
	if compact {
		snap = p.liveRecords()
		p.wantCompact = false
	}
	p.mu.Unlock()

	var err error
	switch {
	case compact:
		err = p.j.rewrite(snap)
	case len(batch) > 0:
		err = p.j.append(batch)
	}

	p.mu.Lock()
	p.spare = batch[:0]
	switch {
	case err != nil:
		p.st.persistErrors++
		p.wantCompact = true // rewrite the whole file next time
		time.AfterFunc(persistRetry, func() {
			select {
			case p.wake <- struct{}{}:
			default:
			}
		})
		if p.persistErr == nil {
			p.log.Error("pool: cannot persist mappings; serving them from memory", "err", err)
		}
		p.persistErr = err
	default:
		if p.persistErr != nil {
			p.log.Info("pool: persisting mappings again", "file", p.j.path)
			p.persistErr = nil
		}
		if compact {
			p.st.compactions++
		} else if len(batch) > 0 {
			p.st.journalSyncs++
			p.st.journalRecords += uint64(len(batch))
		}
	}
	if p.closed && compact {
		p.closeErr = err
	}
	p.mu.Unlock()

	p.dmu.Lock()
	p.durable = seq
	p.dcond.Broadcast()
	p.dmu.Unlock()
}

// liveRecords returns a put for every persisted mapping. Caller holds mu.
func (p *Pool) liveRecords() []record {
	var out []record
	for i := range p.ranges {
		for s := range p.ranges[i].slots {
			if e := p.ranges[i].slots[s].Load(); e != nil && e.kind == Dynamic {
				out = append(out, e.record())
			}
		}
	}
	return out
}

// openJournal restores the table from the state directory and rewrites the
// journal compactly. Any problem is logged; nil means "no persistence".
func (p *Pool) openJournal(now int64) *journal {
	dir := p.cfg.StateDir
	j := &journal{dir: dir, path: filepath.Join(dir, journalName), sync: !p.cfg.noSync}
	p.restore.File = j.path
	if err := os.MkdirAll(dir, 0o700); err != nil {
		p.log.Error("pool: state directory unusable; mappings will not survive a restart", "dir", dir, "err", err)
		return nil
	}
	if err := os.Remove(j.path + ".tmp"); err != nil && !errors.Is(err, os.ErrNotExist) {
		p.log.Warn("pool: cannot remove leftover temporary journal", "err", err)
	}
	data, err := os.ReadFile(j.path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		p.log.Error("pool: cannot read journal; starting empty", "file", j.path, "err", err)
		data = nil
		err = fmt.Errorf("read: %w", err)
	} else {
		err = nil
	}
	st, n, damage := readJournal(data)
	if damage == nil {
		damage = err
	}
	if damage != nil {
		p.restore.Damaged = true
		dst, merr := j.moveAside(time.Unix(0, now))
		if merr != nil {
			p.log.Error("pool: journal damaged and could not be moved aside; it will be overwritten",
				"file", j.path, "damage", damage, "err", merr)
		} else {
			p.log.Warn("pool: journal damaged; restored its valid prefix and moved the file aside",
				"file", j.path, "moved_to", dst, "valid_records", n, "damage", damage)
			p.restore.MovedTo = dst
		}
	}
	for _, r := range st.by6 {
		i, off := p.rangeOf(r.v4)
		v6 := netip.AddrFrom16(r.v6)
		e := &entry{v6: r.v6, kind: Dynamic, created: r.created, expiry: r.expiry, journaled: r.expiry, announced: r.expiry}
		if r.requester != ([16]byte{}) {
			e.requester = netip.AddrFrom16(r.requester).Unmap()
		}
		e.lastUse.Store(max(r.lastUse, r.created))
		switch {
		case i < 0 || off == 0 || off == p.ranges[i].size-1 || !mappable(v6, false):
			p.restore.DroppedOutside++
			continue
		case p.ranges[i].slots[off].Load() != nil || p.tab.Load().find(&e.v6) != nil:
			p.restore.DroppedConflict++ // a static mapping took the address
			continue
		case p.expired(e, now):
			p.restore.DroppedExpired++
			continue
		}
		p.insert(e, i, off)
		rq := p.requesters[e.requester]
		if rq == nil {
			rq = &requesterState{bucket: tokenBucket{tokens: float64(p.cfg.RequesterBurst), last: now}}
			p.requesters[e.requester] = rq
		}
		rq.owned++
		p.restore.Restored++
	}
	p.log.Info("pool: restored mappings", "file", j.path, "restored", p.restore.Restored,
		"dropped_expired", p.restore.DroppedExpired, "dropped_conflict", p.restore.DroppedConflict,
		"dropped_outside_pools", p.restore.DroppedOutside)
	if err := j.rewrite(p.liveRecords()); err != nil {
		p.log.Error("pool: cannot write journal; mappings will not survive a restart", "err", err)
		return nil
	}
	return j
}
