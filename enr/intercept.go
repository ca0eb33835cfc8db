package enr

import (
	"context"
	"net/netip"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/bih-nfq/bih-nfq/internal/drop"
)

// Verdict is what the queue does with the packet it handed in.
type Verdict uint8

const (
	// Accept: deliver Result.Packet in place of the original, or the
	// original untouched when Packet is nil.
	Accept Verdict = iota
	// Drop: drop the original; Result.Inject, when set, answers instead.
	Drop
	// Pending: hold the original; the completion callback gives the final
	// Result (never Pending) exactly once, within the lookup timeout.
	Pending
)

func (v Verdict) String() string {
	switch v {
	case Accept:
		return "accept"
	case Drop:
		return "drop"
	case Pending:
		return "pending"
	}
	return "unknown"
}

// Result is the ENR's decision for one packet.
type Result struct {
	Verdict Verdict
	Packet  []byte      // replacement datagram (Accept), nil for untouched
	Inject  []byte      // datagram to deliver toward the application
	Cached  bool        // Inject answers the query from the cache
	Reason  drop.Reason // why the packet was not considered, or None
}

// InterceptOptions configures an Interceptor.
type InterceptOptions struct {
	// Inject delivers datagrams the ENR originates on its own: the answer
	// synthesized when the A response does not come (RFC 6535 §2.3 MAY).
	// Nil disables that timer-driven path; Sweep still returns them.
	Inject func(pkt []byte)
	// Synchronous makes Query perform the side lookup before it returns and
	// disables every timer; time advances only through Sweep. For offline
	// replay with ZoneUpstream and a fixed clock.
	Synchronous bool
	// ResolverPort is the resolvers' UDP port (default 53); the queue only
	// hands DNS traffic in, this keeps anything else out.
	ResolverPort uint16
}

// Interceptor is the network-layer ENR (RFC 6535 §2.3): it sees the
// application's DNS packets on the queue, asks AAAA (or PTR) itself, and
// rewrites only the response that answers a query it saw: same resolver
// address and port, client address and port, ID and question (compared
// case-insensitively). Everything else passes untouched and is counted.
type Interceptor struct {
	enr    *ENR
	opts   InterceptOptions
	ctx    context.Context
	cancel context.CancelFunc

	mu   sync.Mutex
	out  map[flowKey]*outstanding
	wg   sync.WaitGroup
	shut bool
}

type flowKey struct {
	client   netip.AddrPort
	resolver netip.AddrPort
	id       uint16
}

// outstanding is one intercepted query. Fields after key are guarded by
// Interceptor.mu.
type outstanding struct {
	key     flowKey
	v6      bool
	query   *dns.Msg
	plan    QueryPlan
	created time.Time

	done      bool     // side lookup finished
	side      *dns.Msg // its result; nil when it failed
	waiters   []func() // held responses waiting for the lookup
	seenResp  bool     // the resolver's response arrived
	aTimedOut bool     // the A-timeout wait passed without a response
	answered  bool     // the ENR injected its own answer
	aTimer    *time.Timer
}

// NewInterceptor returns an Interceptor using e's rules, cache and upstream.
func NewInterceptor(e *ENR, opts InterceptOptions) *Interceptor {
	if opts.ResolverPort == 0 {
		opts.ResolverPort = 53
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Interceptor{enr: e, opts: opts, ctx: ctx, cancel: cancel, out: make(map[flowKey]*outstanding)}
}

// Close stops timers and in-flight lookups and waits for them; held
// responses are completed untouched.
func (ic *Interceptor) Close() {
	ic.mu.Lock()
	ic.shut = true
	for _, o := range ic.out {
		if o.aTimer != nil {
			o.aTimer.Stop()
		}
	}
	ic.mu.Unlock()
	ic.cancel()
	ic.wg.Wait()
}

// Outstanding returns how many intercepted queries are remembered.
func (ic *Interceptor) Outstanding() int {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	return len(ic.out)
}

func (ic *Interceptor) count(r drop.Reason) drop.Reason {
	ic.enr.counters.Add(r)
	return r
}

// Query handles a datagram leaving a local application towards the
// resolver port. A query the ENR considers (plan) is remembered and its side lookup
// started at the same resolver; an unmapped pool PTR is answered locally
// (Drop plus Inject, nothing sent upstream, RFC 6535 §2.3.3). Everything else
// is accepted untouched.
func (ic *Interceptor) Query(pkt []byte) Result {
	p, reason := parseUDP(pkt)
	if reason != drop.None {
		return Result{Reason: ic.count(reason)}
	}
	if p.dst.Port() != ic.opts.ResolverPort {
		return Result{}
	}
	q := new(dns.Msg)
	if err := q.Unpack(p.payload); err != nil {
		return Result{Reason: ic.count(drop.DNSMalformed)}
	}
	if q.Response {
		return Result{}
	}
	plan := ic.enr.Plan(q)
	switch plan.Kind {
	case QueryPass:
		if len(q.Question) != 1 {
			return Result{Reason: drop.DNSMultipleQuestion}
		}
		return Result{}
	case QueryPTRUnmapped:
		ans := ic.enr.Answer(q, plan, nil, nil, p.src.Addr(), clientUDPSize(q))
		b, err := ans.Pack()
		if err != nil {
			return Result{Reason: ic.count(drop.DNSMalformed)}
		}
		return Result{Verdict: Drop, Inject: buildUDP(nil, p.v6, p.dst, p.src, b)}
	}

	if plan.Kind == QueryA && !ic.opts.Synchronous {
		if b := ic.cachedAnswer(q, plan, &p); b != nil {
			return Result{Verdict: Drop, Inject: b, Cached: true}
		}
	}

	now := ic.enr.cfg.Now()
	o := &outstanding{
		key:     flowKey{client: p.src, resolver: p.dst, id: q.Id},
		v6:      p.v6,
		query:   q,
		plan:    plan,
		created: now,
	}
	ic.mu.Lock()
	if ic.shut {
		ic.mu.Unlock()
		return Result{}
	}
	if old := ic.out[o.key]; old != nil {
		fresh := now.Sub(old.created) < ic.enr.cfg.OutstandingLifetime
		if fresh && sameQuestion(old.query.Question[0], q.Question[0]) {
			ic.mu.Unlock()
			return Result{} // a retransmission: the first lookup serves both
		}
		if len(old.waiters) > 0 {
			ic.mu.Unlock()
			return Result{} // its response is being decided; leave it be
		}
		// Stale, or the port and ID were reused for another question.
		if old.aTimer != nil {
			old.aTimer.Stop()
		}
		delete(ic.out, o.key)
	}
	if len(ic.out) >= ic.enr.cfg.MaxOutstanding {
		ic.expireLocked(now)
	}
	if len(ic.out) >= ic.enr.cfg.MaxOutstanding {
		ic.mu.Unlock()
		return Result{Reason: ic.count(drop.DNSTooManyQueries)}
	}
	ic.out[o.key] = o
	if !ic.opts.Synchronous && plan.Kind == QueryA && ic.enr.cfg.ATimeoutSynthesis > 0 && ic.opts.Inject != nil {
		o.aTimer = time.AfterFunc(ic.enr.cfg.ATimeoutSynthesis, func() { ic.aTimeout(o) })
	}
	// A cached side result is ready now: the response then never waits.
	var side *dns.Msg
	if !ic.opts.Synchronous && plan.Type != 0 {
		side = ic.enr.cache.view(sideKey(o.key.resolver, plan.Name, plan.Type), now) // only read
	}
	if !ic.opts.Synchronous && side == nil {
		ic.wg.Add(1) // under mu, so Close cannot be waiting yet
	}
	ic.mu.Unlock()

	if side != nil {
		ic.settleLookup(o, side)
		return Result{}
	}
	if ic.opts.Synchronous {
		ic.lookup(o)
		return Result{}
	}
	go func() {
		defer ic.wg.Done()
		ic.lookup(o)
	}()
	return Result{}
}

// lookup runs the side lookup of o and wakes whatever waits for it.
func (ic *Interceptor) lookup(o *outstanding) {
	side, err := ic.enr.Lookup(ic.ctx, o.plan, o.key.resolver)
	if err != nil {
		side = nil
	}
	ic.settleLookup(o, side)
}

// settleLookup records the side result of o and wakes whatever waits.
func (ic *Interceptor) settleLookup(o *outstanding, side *dns.Msg) {
	ic.mu.Lock()
	o.done, o.side = true, side
	waiters := o.waiters
	o.waiters = nil
	var inject []byte
	if o.aTimedOut && !o.seenResp && !o.answered {
		inject = ic.answerOnTimeoutLocked(o)
	}
	ic.mu.Unlock()
	for _, w := range waiters {
		w()
	}
	if inject != nil && ic.opts.Inject != nil {
		ic.opts.Inject(inject)
	}
}

// aTimeout fires ATimeoutSynthesis after the query when no response came.
func (ic *Interceptor) aTimeout(o *outstanding) {
	ic.mu.Lock()
	if ic.shut || ic.out[o.key] != o || o.seenResp || o.answered {
		ic.mu.Unlock()
		return
	}
	o.aTimedOut = true
	var inject []byte
	if o.done {
		inject = ic.answerOnTimeoutLocked(o)
	}
	ic.mu.Unlock()
	if inject != nil {
		ic.opts.Inject(inject)
	}
}

// answerOnTimeoutLocked builds the ENR's own answer from a positive AAAA
// result when the A response did not come in time (RFC 6535 §2.3: "the ENR
// MAY choose to proceed as if there were only a AAAA record available").
// It returns nil when the AAAA result gives nothing to synthesize.
func (ic *Interceptor) answerOnTimeoutLocked(o *outstanding) []byte {
	if o.plan.Kind != QueryA || o.side == nil {
		return nil
	}
	ans := ic.enr.Answer(o.query, o.plan, nil, o.side, o.key.client.Addr(), clientUDPSize(o.query))
	if ans == nil {
		return nil
	}
	b, err := ans.Pack()
	if err != nil {
		ic.count(drop.DNSMalformed)
		return nil
	}
	o.answered = true
	return buildUDP(nil, o.v6, o.key.resolver, o.key.client, b)
}

// expireLocked forgets queries older than OutstandingLifetime.
func (ic *Interceptor) expireLocked(now time.Time) {
	for k, o := range ic.out {
		if now.Sub(o.created) >= ic.enr.cfg.OutstandingLifetime && len(o.waiters) == 0 {
			if o.aTimer != nil {
				o.aTimer.Stop()
			}
			delete(ic.out, k)
		}
	}
}

// Sweep advances time to now for the Synchronous mode (and may be called in
// the asynchronous one): it answers the A queries whose wait passed with a
// positive AAAA result and no response (returning the datagrams to inject)
// and forgets expired queries.
func (ic *Interceptor) Sweep(now time.Time) [][]byte {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	var injects [][]byte
	if wait := ic.enr.cfg.ATimeoutSynthesis; wait > 0 {
		for _, o := range ic.out {
			if o.plan.Kind == QueryA && o.done && !o.seenResp && !o.answered && now.Sub(o.created) >= wait {
				o.aTimedOut = true
				if b := ic.answerOnTimeoutLocked(o); b != nil {
					injects = append(injects, b)
				}
			}
		}
	}
	ic.expireLocked(now)
	return injects
}

// Response handles a datagram from the resolver port towards a local
// application. Only a response to an outstanding query is considered; when
// its side lookup is still running and done is not nil, the result is
// Pending and done receives the final Result once the lookup ends (bounded
// by the lookup timeout). pkt is copied when held, so the caller may reuse
// its buffer.
func (ic *Interceptor) Response(pkt []byte, done func(Result)) Result {
	p, reason := parseUDP(pkt)
	if reason != drop.None {
		return Result{Reason: ic.count(reason)}
	}
	if p.src.Port() != ic.opts.ResolverPort {
		return Result{Reason: ic.count(drop.DNSUnmatched)}
	}
	m := new(dns.Msg)
	if err := m.Unpack(p.payload); err != nil {
		return Result{Reason: ic.count(drop.DNSMalformed)}
	}
	if !m.Response {
		return Result{Reason: ic.count(drop.DNSUnmatched)}
	}
	key := flowKey{client: p.dst, resolver: p.src, id: m.Id}
	ic.mu.Lock()
	o := ic.out[key]
	if o == nil || len(m.Question) != 1 || !sameQuestion(m.Question[0], o.query.Question[0]) {
		ic.mu.Unlock()
		if len(m.Question) > 1 {
			return Result{Reason: ic.count(drop.DNSMultipleQuestion)}
		}
		return Result{Reason: ic.count(drop.DNSUnmatched)}
	}
	if ic.enr.cfg.Now().Sub(o.created) >= ic.enr.cfg.OutstandingLifetime && len(o.waiters) == 0 {
		// Too old to be the answer the application still waits for.
		delete(ic.out, key)
		ic.mu.Unlock()
		return Result{Reason: ic.count(drop.DNSUnmatched)}
	}
	if o.answered {
		// The application already has the ENR's answer; a second one
		// would only confuse it.
		delete(ic.out, key)
		ic.mu.Unlock()
		return Result{Verdict: Drop, Reason: ic.count(drop.DNSLateResponse)}
	}
	o.seenResp = true
	if o.aTimer != nil {
		o.aTimer.Stop()
	}
	if o.done || done == nil {
		delete(ic.out, key)
		side, ok := o.side, o.done
		ic.mu.Unlock()
		if !ok {
			return Result{} // the caller cannot wait: deliver as it is
		}
		return ic.finish(o.query, o.plan, &p, m, side)
	}

	held := p
	held.ipHdr = append([]byte(nil), p.ipHdr...)
	var once sync.Once
	complete := func() {
		once.Do(func() {
			ic.mu.Lock()
			side := o.side
			if ic.out[key] == o {
				delete(ic.out, key)
			}
			ic.mu.Unlock()
			done(ic.finish(o.query, o.plan, &held, m, side))
		})
	}
	o.waiters = append(o.waiters, complete)
	ic.mu.Unlock()
	// Safety net: the lookup is bounded by LookupTimeout already.
	// complete is idempotent, so this timer may fire after the lookup did.
	time.AfterFunc(ic.enr.cfg.LookupTimeout+100*time.Millisecond, complete)
	return Result{Verdict: Pending}
}

// interceptKey is the cache key of the resolver's response to query, asked
// by client: a resolver may answer clients differently, so one client's
// answer never stands for another's.
func interceptKey(query *dns.Msg, resolver netip.AddrPort, client netip.Addr) (cacheKey, bool) {
	k, ok := forwardKey(query)
	k.server, k.client = resolver, client.Unmap()
	return k, ok
}

// cachedAnswer returns the datagram answering the A query q (packet p) from
// the cache, or nil when the resolver's response or the side result is not
// there. This is the DNS cache of the network-layer ENR (RFC 6535 §2.3.4):
// a query repeated within the TTLs never leaves the host, and Flush empties
// it with every synthesized answer. Timed-out, truncated and failed
// responses are never stored (cacheTTL).
func (ic *Interceptor) cachedAnswer(q *dns.Msg, plan QueryPlan, p *udpPacket) []byte {
	key, ok := interceptKey(q, p.dst, p.src.Addr())
	if !ok {
		return nil
	}
	out, _ := ic.enr.fromCache(q, plan, key, p.dst, p.src.Addr(), clientUDPSize(q))
	if out == nil {
		return nil
	}
	b, err := out.Pack()
	if err != nil {
		return nil
	}
	return buildUDP(nil, p.v6, p.dst, p.src, b)
}

// finish decides a matched response.
func (ic *Interceptor) finish(query *dns.Msg, plan QueryPlan, p *udpPacket, resp, side *dns.Msg) Result {
	if plan.Kind == QueryA && !ic.opts.Synchronous {
		// p is the response: from the resolver to the client.
		if key, ok := interceptKey(query, p.src, p.dst.Addr()); ok {
			ic.enr.cache.put(key, resp, ic.enr.cfg.Now())
		}
	}
	ans := ic.enr.Answer(query, plan, resp, side, p.dst.Addr(), clientUDPSize(query))
	if ans == nil {
		return Result{}
	}
	b, err := ans.Pack()
	if err != nil {
		return Result{Reason: ic.count(drop.DNSMalformed)}
	}
	return Result{Packet: p.withPayload(b)}
}
