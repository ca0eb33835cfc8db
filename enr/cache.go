package enr

import (
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// cache keeps AAAA and PTR lookup results for their TTL. It holds upstream
// answers only; every synthesized answer is rebuilt from it, so dropping it
// (Flush) drops every synthesized answer the ENR could repeat (RFC 6535
// §2.3.4).
type cache struct {
	mu      sync.Mutex
	max     int
	maxTTL  uint32
	entries map[cacheKey]cacheEntry
}

type cacheKey struct {
	name  string // lower case
	qtype uint16
}

type cacheEntry struct {
	msg     *dns.Msg
	stored  time.Time
	expires time.Time
}

func newCache(max int, maxTTL uint32) *cache {
	return &cache{max: max, maxTTL: maxTTL, entries: make(map[cacheKey]cacheEntry)}
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

func (c *cache) get(name string, qtype uint16, now time.Time) *dns.Msg {
	if c == nil || c.max == 0 {
		return nil
	}
	k := cacheKey{strings.ToLower(name), qtype}
	c.mu.Lock()
	e, ok := c.entries[k]
	if ok && !now.Before(e.expires) {
		delete(c.entries, k)
		ok = false
	}
	c.mu.Unlock()
	if !ok {
		return nil
	}
	// Hand out a copy aged by the time spent in the cache.
	m := e.msg.Copy()
	age := uint32(now.Sub(e.stored) / time.Second)
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

func (c *cache) put(name string, qtype uint16, m *dns.Msg, now time.Time) {
	if c == nil || c.max == 0 {
		return
	}
	ttl := cacheTTL(m, c.maxTTL)
	if ttl == 0 {
		return
	}
	k := cacheKey{strings.ToLower(name), qtype}
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
	c.entries[k] = cacheEntry{msg: m.Copy(), stored: now, expires: now.Add(time.Duration(ttl) * time.Second)}
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
