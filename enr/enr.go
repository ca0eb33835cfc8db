package enr

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/miekg/dns"

	"github.com/bih-nfq/bih-nfq/internal/drop"
)

// ENR holds the rules, the AAAA/PTR cache and the pass-through switch shared
// by the intercept and stub modes. It is safe for concurrent use.
type ENR struct {
	cfg      Config
	rules    rules
	up       Upstream
	counters *drop.Counters
	cache    *cache
	packed   *packedCache // the stub's answers as sent
	pass     atomic.Bool
}

// New returns an ENR asking up for AAAA and PTR records and m for pool
// addresses. counters may be nil (then the ENR keeps its own).
func New(cfg Config, m Mapper, up Upstream, counters *drop.Counters) (*ENR, error) {
	if m == nil || up == nil {
		return nil, errors.New("new enr: mapper and upstream are required")
	}
	cfg.ExcludeA = append([]netip.Prefix(nil), cfg.ExcludeA...)
	cfg.ExcludeAAAA = append([]netip.Prefix(nil), cfg.ExcludeAAAA...)
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("new enr: %w", err)
	}
	if counters == nil {
		counters = new(drop.Counters)
	}
	e := &ENR{cfg: cfg, up: up, counters: counters}
	e.rules = newRules(&e.cfg, m)
	e.cache = newCache(cfg.CacheEntries, e.rules.maxTTL)
	e.packed = newPackedCache()
	return e, nil
}

// Counters returns the drop counters the ENR adds to.
func (e *ENR) Counters() *drop.Counters { return e.counters }

// SetPassThrough turns synthesis off (true) or on. RFC 6535 §4.5: once the
// host has IPv4 connectivity BIH "MUST stop initiating protocol translation
// sessions for new connections", so every query then passes untouched.
func (e *ENR) SetPassThrough(on bool) {
	e.pass.Store(on)
	e.packed.flush()
}

// PassThrough reports the pass-through switch.
func (e *ENR) PassThrough() bool { return e.pass.Load() }

// Flush drops every cached AAAA/PTR result, hence every synthesized answer
// the ENR could repeat (RFC 6535 §2.3.4: cache entries for synthetic
// addresses MUST be flushed when mappings are cleared). It returns how many
// entries were dropped. See FlushHostCaches for the host's own stub.
func (e *ENR) Flush() int {
	e.packed.flush()
	return e.cache.flush()
}

// Plan decides what to do with a query (see planQuery) and counts the reason
// when it is not considered.
func (e *ENR) Plan(q *dns.Msg) QueryPlan {
	if e.pass.Load() {
		return QueryPlan{}
	}
	p, reason := e.rules.planQuery(q)
	e.counters.Add(reason)
	return p
}

// Lookup makes the side lookup of plan (AAAA for an A query, PTR for the
// ip6.arpa name) at server (zero: the upstream's default), from the cache
// when a result is still fresh. A failed lookup is counted.
func (e *ENR) Lookup(ctx context.Context, plan QueryPlan, server netip.AddrPort) (*dns.Msg, error) {
	if plan.Type == 0 {
		return nil, errors.New("lookup: plan has no side lookup")
	}
	now := e.cfg.Now()
	if m := e.cache.get(sideKey(server, plan.Name, plan.Type), now); m != nil {
		return m, nil
	}
	ctx, cancel := context.WithTimeout(ctx, e.cfg.LookupTimeout)
	defer cancel()
	q := new(dns.Msg)
	q.SetQuestion(plan.Name, plan.Type)
	q.SetEdns0(serverUDPSize, false)
	resp, err := e.up.Exchange(ctx, q, server)
	if err == nil {
		err = checkReply(q, resp)
	}
	if err != nil {
		e.counters.Add(drop.DNSUpstreamFailed)
		return nil, fmt.Errorf("lookup %s %s: %w", plan.Name, dns.TypeToString[plan.Type], err)
	}
	e.cache.put(sideKey(server, plan.Name, plan.Type), resp, e.cfg.Now())
	return resp, nil
}

// checkReply verifies resp answers q (RFC 5452 §9.1: ID and question).
func checkReply(q, resp *dns.Msg) error {
	if resp == nil {
		return errors.New("no response")
	}
	if resp.Id != q.Id || !resp.Response {
		return errors.New("response does not match the query id")
	}
	if len(resp.Question) != 1 || !sameQuestion(resp.Question[0], q.Question[0]) {
		return errors.New("response does not match the question")
	}
	return nil
}

func sameQuestion(a, b dns.Question) bool {
	return a.Qtype == b.Qtype && a.Qclass == b.Qclass && strings.EqualFold(a.Name, b.Name)
}

// Answer builds what the application receives for query, given the
// response to its own query (resp, nil when it timed out) and the side
// lookup result (side, nil when it failed). It returns nil when resp must be
// delivered untouched. The answer fits in size bytes (TC set when cut).
// requester is the application's address, for the pool's quotas.
func (e *ENR) Answer(query *dns.Msg, plan QueryPlan, resp, side *dns.Msg, requester netip.Addr, size int) *dns.Msg {
	out, _ := e.answer(query, plan, resp, side, requester, size)
	return out
}

// answer is Answer, also returning the reason it counted.
func (e *ENR) answer(query *dns.Msg, plan QueryPlan, resp, side *dns.Msg, requester netip.Addr, size int) (*dns.Msg, drop.Reason) {
	var out *dns.Msg
	var reason drop.Reason
	switch plan.Kind {
	case QueryA:
		out, reason = e.rules.synthesizeA(query, resp, side, requester)
		e.counters.Add(reason)
	case QueryPTRMapped:
		out = e.rules.rewritePTR(query, side, plan.Name)
	case QueryPTRUnmapped:
		out = localAnswer(query, dns.RcodeNameError)
	}
	if out != nil {
		fitMessage(out, size)
	}
	return out, reason
}

// Resolve answers query the way the stub mode does: the query goes to the
// upstream unchanged while the side lookup runs in parallel (RFC 6147 §5.1.8
// analogue), then Answer decides. size is the largest answer the client
// takes (clientUDPSize for UDP, 65535 for TCP).
func (e *ENR) Resolve(ctx context.Context, query *dns.Msg, requester netip.Addr, size int) (*dns.Msg, error) {
	return e.resolvePlanned(ctx, query, e.Plan(query), requester, size)
}

// resolveCached is Resolve for an A or passed query whose answer, and side
// lookup, are both in the cache; it returns nil when anything is missing,
// without asking anyone. synthesized reports an answer synthesized with
// nothing counted against it (every address mapped).
func (e *ENR) resolveCached(query *dns.Msg, plan QueryPlan, requester netip.Addr, size int) (out *dns.Msg, synthesized bool) {
	if plan.Kind != QueryPass && plan.Kind != QueryA {
		return nil, false
	}
	key, ok := forwardKey(query)
	if !ok {
		return nil, false
	}
	return e.fromCache(query, plan, key, netip.AddrPort{}, requester, size)
}

// fromCache builds the answer to query from the cached answer under key
// and, for an A query, the cached side result asked at server; nil when
// either is missing. synthesized is as for resolveCached.
func (e *ENR) fromCache(query *dns.Msg, plan QueryPlan, key cacheKey, server netip.AddrPort, requester netip.Addr, size int) (out *dns.Msg, synthesized bool) {
	now := e.cfg.Now()
	var side *dns.Msg
	if plan.Kind == QueryA {
		// Answer only reads the side result.
		if side = e.cache.view(sideKey(server, plan.Name, plan.Type), now); side == nil {
			return nil, false
		}
	}
	resp := e.cache.get(key, now)
	if resp == nil {
		return nil, false
	}
	resp.Authoritative = false // from a cache (RFC 1035 §4.1.1)
	if plan.Kind == QueryA {
		if out, reason := e.answer(query, plan, resp, side, requester, size); out != nil {
			return out, reason == drop.None
		}
	}
	return fitted(restoreQuestion(resp, query), size), false
}

func (e *ENR) resolvePlanned(ctx context.Context, query *dns.Msg, plan QueryPlan, requester netip.Addr, size int) (*dns.Msg, error) {
	switch plan.Kind {
	case QueryPTRUnmapped:
		return e.Answer(query, plan, nil, nil, requester, size), nil
	case QueryPTRMapped:
		side, err := e.Lookup(ctx, plan, netip.AddrPort{})
		if err == nil {
			if out := e.Answer(query, plan, nil, side, requester, size); out != nil {
				return out, nil
			}
		}
		// §2.3.3 leaves nothing to forward: the pool address has no real name.
		return fitted(localAnswer(query, dns.RcodeServerFailure), size), nil
	}

	var (
		side    *dns.Msg
		sideErr error
		wg      sync.WaitGroup
	)
	if plan.Kind == QueryA {
		// A cached side result needs no goroutine.
		if side = e.cache.view(sideKey(netip.AddrPort{}, plan.Name, plan.Type), e.cfg.Now()); side == nil {
			wg.Go(func() { side, sideErr = e.Lookup(ctx, plan, netip.AddrPort{}) })
		}
	}
	resp, err := e.forward(ctx, query)
	wg.Wait()
	if plan.Kind == QueryPass {
		if err != nil {
			return nil, err
		}
		return fitted(restoreQuestion(resp, query), size), nil
	}
	if sideErr != nil {
		side = nil
	}
	if err != nil {
		// RFC 6535 §2.3: the A query timed out; a positive AAAA is enough.
		if out := e.Answer(query, plan, nil, side, requester, size); out != nil {
			return out, nil
		}
		return nil, err
	}
	if out := e.Answer(query, plan, resp, side, requester, size); out != nil {
		return out, nil
	}
	return fitted(restoreQuestion(resp, query), size), nil
}

// forward sends the application's query upstream as it is, or answers it
// from the cache (stub mode is the host's caching resolver).
func (e *ENR) forward(ctx context.Context, query *dns.Msg) (*dns.Msg, error) {
	key, cacheable := forwardKey(query)
	if cacheable {
		if m := e.cache.get(key, e.cfg.Now()); m != nil {
			m.Authoritative = false // from a cache (RFC 1035 §4.1.1)
			return m, nil
		}
	}
	ctx, cancel := context.WithTimeout(ctx, e.cfg.LookupTimeout)
	defer cancel()
	fwd := query.Copy()
	fwd.Id = dns.Id()
	resp, err := e.up.Exchange(ctx, fwd, netip.AddrPort{})
	if err == nil {
		err = checkReply(fwd, resp)
	}
	if err != nil {
		return nil, fmt.Errorf("forward %s: %w", query.Question[0].Name, err)
	}
	if cacheable {
		e.cache.put(key, resp, e.cfg.Now())
	}
	return resp, nil
}

// restoreQuestion gives resp the ID and question of query (0x20 case as the
// application sent it).
func restoreQuestion(resp, query *dns.Msg) *dns.Msg {
	resp.Id = query.Id
	resp.Question = append(resp.Question[:0], query.Question...)
	if query.IsEdns0() == nil {
		// RFC 6891 §7: no OPT towards a client that sent none.
		extra := resp.Extra[:0]
		for _, rr := range resp.Extra {
			if rr.Header().Rrtype != dns.TypeOPT {
				extra = append(extra, rr)
			}
		}
		resp.Extra = extra
	}
	return resp
}

func fitted(m *dns.Msg, size int) *dns.Msg {
	fitMessage(m, size)
	return m
}

// RewriteWire is Answer for a packed upstream response, as the intercept
// path sees it: it returns the packed answer, or nil when resp must be
// delivered untouched (including when it does not parse: counted as
// DNSMalformed).
func (e *ENR) RewriteWire(query *dns.Msg, plan QueryPlan, resp []byte, side *dns.Msg, requester netip.Addr) []byte {
	m := new(dns.Msg)
	if err := m.Unpack(resp); err != nil {
		e.counters.Add(drop.DNSMalformed)
		return nil
	}
	if !m.Response || m.Id != query.Id || len(m.Question) != 1 || !sameQuestion(m.Question[0], query.Question[0]) {
		e.counters.Add(drop.DNSUnmatched)
		return nil
	}
	out := e.Answer(query, plan, m, side, requester, clientUDPSize(query))
	if out == nil {
		return nil
	}
	b, err := out.Pack()
	if err != nil {
		e.counters.Add(drop.DNSMalformed)
		return nil
	}
	return b
}
