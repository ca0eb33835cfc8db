package enr

import (
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// cache keeps AAAA and PTR lookup results, and the answers to the
// applications' A queries (stub mode: forwarded; intercept mode: the
// resolver's responses), for their TTL. It holds upstream answers only; every
// synthesized answer is rebuilt from it, so dropping it (Flush) drops every
// synthesized answer the ENR could repeat (RFC 6535 §2.3.4).
type cache struct {
	mu      sync.Mutex
	max     int
	maxTTL  uint32
	entries map[cacheKey]*cacheEntry
}

type cacheKey struct {
	server netip.AddrPort // side lookups: the resolver asked (zero: the default)
	client netip.Addr     // intercepted answers: the application's address
	name   string         // lower case
	qtype  uint16
	qclass uint16
	flags  uint8 // keyForwarded and the query bits that shape the answer
}

const (
	keyForwarded uint8 = 1 << iota // an application's query, forwarded as it was
	keyDO
	keyCD
	keyAD
	keyEDNS
)

// sideKey is the key of the ENR's own AAAA/PTR lookups at server: two
// resolvers may hold different views of a name (a router's LAN hosts may
// use different ones), so one's answer never stands for another's.
func sideKey(server netip.AddrPort, name string, qtype uint16) cacheKey {
	return cacheKey{server: server, name: strings.ToLower(name), qtype: qtype, qclass: dns.ClassINET}
}

// forwardKey returns the key under which the answer to an application's
// query may be cached, and whether it may be: a recursive standard query
// with one question and no EDNS options (a cookie or client subnet makes the
// answer the asker's own, RFC 7873 and RFC 7871). DO, CD and AD (RFC 6840
// §5.7), and whether the query had EDNS at all, are part of the key.
func forwardKey(q *dns.Msg) (cacheKey, bool) {
	if q.Response || q.Opcode != dns.OpcodeQuery || !q.RecursionDesired || len(q.Question) != 1 {
		return cacheKey{}, false
	}
	k := cacheKey{name: strings.ToLower(q.Question[0].Name), qtype: q.Question[0].Qtype,
		qclass: q.Question[0].Qclass, flags: keyForwarded}
	if q.CheckingDisabled {
		k.flags |= keyCD
	}
	if q.AuthenticatedData {
		k.flags |= keyAD
	}
	if opt := q.IsEdns0(); opt != nil {
		if len(opt.Option) > 0 || opt.Version() != 0 {
			return cacheKey{}, false
		}
		k.flags |= keyEDNS
		if opt.Do() {
			k.flags |= keyDO
		}
	}
	return k, true
}

type cacheEntry struct {
	msg     *dns.Msg
	stored  time.Time
	expires time.Time
	// view is msg with TTLs aged by viewAge seconds, built once per second
	// of age and shared by every get in that second.
	view    *dns.Msg
	viewAge uint32
}

func newCache(max int, maxTTL uint32) *cache {
	return &cache{max: max, maxTTL: maxTTL, entries: make(map[cacheKey]*cacheEntry)}
}

// cacheTTL is how long a lookup result may be reused: the smallest record
// TTL of a positive answer, the negative TTL of NXDOMAIN/NODATA with a SOA
// (RFC 2308 §5), nothing for errors or unproven negatives.
func cacheTTL(m *dns.Msg, maxTTL uint32) uint32 {
	if m.Truncated {
		return 0
	}
	switch m.Rcode {
	case dns.RcodeSuccess, dns.RcodeNameError:
	default:
		return 0
	}
	ttl := maxTTL
	n := 0
	for _, rr := range m.Answer {
		ttl = min(ttl, rr.Header().Ttl)
		n++
	}
	if m.Rcode == dns.RcodeNameError || n == 0 {
		neg, ok := negativeTTL(m)
		if !ok {
			return 0
		}
		ttl = min(ttl, neg)
	}
	return ttl
}

// get returns the cached message for k with its TTLs aged, or nil. The
// message's header, question and additional section are its own; the
// records, and the answer and authority arrays (capped, so append copies),
// are shared with other callers: copy a record before changing it.
func (c *cache) get(k cacheKey, now time.Time) *dns.Msg {
	v := c.view(k, now)
	if v == nil {
		return nil
	}
	m := &dns.Msg{MsgHdr: v.MsgHdr, Compress: v.Compress}
	m.Question = slices.Clone(v.Question)
	m.Answer = v.Answer[:len(v.Answer):len(v.Answer)]
	m.Ns = v.Ns[:len(v.Ns):len(v.Ns)]
	m.Extra = slices.Clone(v.Extra)
	return m
}

// view is get without the copy, for callers that only read the message.
func (c *cache) view(k cacheKey, now time.Time) *dns.Msg {
	if c == nil || c.max == 0 {
		return nil
	}
	c.mu.Lock()
	e, ok := c.entries[k]
	if ok && !now.Before(e.expires) {
		delete(c.entries, k)
		ok = false
	}
	if !ok {
		c.mu.Unlock()
		return nil
	}
	age := uint32(now.Sub(e.stored) / time.Second)
	if e.view == nil || e.viewAge != age {
		e.view, e.viewAge = aged(e.msg, age), age
	}
	v := e.view
	c.mu.Unlock()
	return v
}

// aged returns a copy of m with the TTLs of its answer and authority
// records lowered by age seconds (RFC 1035 §7.4, RFC 2308 §5).
func aged(m *dns.Msg, age uint32) *dns.Msg {
	m = m.Copy()
	for _, sec := range [][]dns.RR{m.Answer, m.Ns} {
		for _, rr := range sec {
			h := rr.Header()
			if h.Ttl > age {
				h.Ttl -= age
			} else {
				h.Ttl = 0
			}
		}
	}
	return m
}

func (c *cache) put(k cacheKey, m *dns.Msg, now time.Time) {
	if c == nil || c.max == 0 {
		return
	}
	ttl := cacheTTL(m, c.maxTTL)
	if ttl == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		for key, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, key)
			}
		}
		// Still full: evict one entry (map order is arbitrary, which is
		// good enough to keep the bound).
		for key := range c.entries {
			if len(c.entries) < c.max {
				break
			}
			delete(c.entries, key)
		}
	}
	m = m.Copy()
	if m.Rcode == dns.RcodeNameError || len(m.Answer) == 0 {
		// RFC 2308 §3, §5: a negative answer's SOA lives min(TTL, MINIMUM)
		// and, cached, ages like any record; the answers built from it then
		// carry the remaining negative TTL.
		for _, rr := range m.Ns {
			if soa, ok := rr.(*dns.SOA); ok {
				soa.Hdr.Ttl = min(soa.Hdr.Ttl, soa.Minttl)
			}
		}
	}
	c.entries[k] = &cacheEntry{msg: m, stored: now, expires: now.Add(time.Duration(ttl) * time.Second)}
}

func (c *cache) flush() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.entries)
	clear(c.entries)
	return n
}
