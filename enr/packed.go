package enr

import (
	"net/netip"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// packedCache keeps the stub's synthesized UDP answers as they were sent,
// for at most packedLife, keyed by the client's address and the query's
// bytes after its ID. A query repeated within that time is answered without
// unpacking, planning, building or packing. Each hit still asks the mapper
// for every synthesized address with its TTL, as building the answer does:
// the mapping's DNS lifetime is extended (RFC 6535 §2.4), and an answer
// whose address changed is rebuilt instead. Flush, new exclusion sets and
// the pass-through switch empty it. The TTLs sent are those of the moment
// the answer was built: at most packedLife old.
type packedCache struct {
	mu      sync.Mutex
	entries map[string]*packedEntry // packedKey
}

// packedEntry is immutable once stored.
type packedEntry struct {
	msg   []byte // the answer, ID zero
	built time.Time
	synth []synthAddr
}

// synthAddr is one synthesized A record: the mapping it names and its TTL.
type synthAddr struct {
	v6, v4 netip.Addr
	ttl    time.Duration
}

const (
	packedLife = time.Second
	packedMax  = 4096 // entries; beyond, the expired go, then all
)

func newPackedCache() *packedCache {
	return &packedCache{entries: make(map[string]*packedEntry)}
}

// packedKey appends the key of query from client to dst.
func packedKey(dst []byte, client netip.Addr, query []byte) []byte {
	a := client.Unmap().As16()
	return append(append(dst, a[:]...), query[2:]...)
}

// answer appends to dst the stored answer for key, with query's ID, and
// reports whether there was a fresh one whose mappings still hold.
func (c *packedCache) answer(dst, key, query []byte, client netip.Addr, m Mapper, now time.Time) ([]byte, bool) {
	c.mu.Lock()
	e := c.entries[string(key)]
	c.mu.Unlock()
	if e == nil || now.Sub(e.built) >= packedLife || now.Before(e.built) {
		return dst, false
	}
	for _, s := range e.synth {
		if v4, err := m.MapIPv6(s.v6, client, s.ttl); err != nil || v4 != s.v4 {
			c.mu.Lock()
			if c.entries[string(key)] == e {
				delete(c.entries, string(key))
			}
			c.mu.Unlock()
			return dst, false
		}
	}
	dst = append(dst, e.msg...)
	dst[0], dst[1] = query[0], query[1]
	return dst, true
}

// put stores msg, the packed answer with synthesized records synth, under
// key.
func (c *packedCache) put(key, msg []byte, synth []synthAddr, now time.Time) {
	e := &packedEntry{msg: append([]byte(nil), msg...), built: now, synth: synth}
	e.msg[0], e.msg[1] = 0, 0
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= packedMax {
		for k, old := range c.entries {
			if now.Sub(old.built) >= packedLife {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= packedMax {
			clear(c.entries)
		}
	}
	c.entries[string(key)] = e
}

func (c *packedCache) flush() {
	c.mu.Lock()
	clear(c.entries)
	c.mu.Unlock()
}

// synthesized returns the synthesized A records of out, an answer built
// for a QueryA plan, when it may be stored: not truncated, every record
// living longer than packedLife, and at least one pool address, each
// mapped.
func (e *ENR) synthesized(out *dns.Msg) ([]synthAddr, bool) {
	if out.Truncated {
		return nil, false
	}
	var synth []synthAddr
	for _, sec := range [][]dns.RR{out.Answer, out.Ns} {
		for _, rr := range sec {
			h := rr.Header()
			if time.Duration(h.Ttl)*time.Second <= packedLife {
				return nil, false
			}
			a, ok := rr.(*dns.A)
			if !ok {
				continue
			}
			v4, ok := netip.AddrFromSlice(a.A.To4())
			if !ok || !e.rules.mapper.InPool(v4) {
				continue
			}
			v6, ok := e.rules.mapper.LookupIPv4(v4)
			if !ok {
				return nil, false
			}
			synth = append(synth, synthAddr{v6: v6, v4: v4, ttl: time.Duration(h.Ttl) * time.Second})
		}
	}
	return synth, len(synth) > 0
}
