package pool

import (
	"encoding/binary"
	"math/bits"
	"sync/atomic"
)

// table maps IPv6 addresses to entries for the data path's To4. Readers probe
// without locks (each bucket is an atomic pointer); writers hold Pool.mu.
// Open addressing with linear probing: a removed entry leaves a tombstone so
// probes for later keys still reach them, and the table is rebuilt (and
// swapped atomically) when tombstones pile up. It never fills: capacity is at
// least twice the number of addresses the pools can hand out.
type table struct {
	seed    uint64
	mask    uint64
	buckets []atomic.Pointer[entry]
	used    int // live entries plus tombstones; writer only
	live    int
}

// tombstone marks a removed bucket; it never matches a key.
var tombstone = &entry{}

func newTable(capacity int, seed uint64) *table {
	n := 16
	for n < capacity {
		n <<= 1
	}
	return &table{seed: seed, mask: uint64(n - 1), buckets: make([]atomic.Pointer[entry], n)}
}

// hash mixes the 128-bit key with a per-process seed: the IPv6 addresses
// come from DNS answers an attacker may choose (RFC 6535 §6.3).
func (t *table) hash(k *[16]byte) uint64 {
	a := binary.LittleEndian.Uint64(k[0:8])
	b := binary.LittleEndian.Uint64(k[8:16])
	h := (a ^ t.seed) * 0x9E3779B97F4A7C15
	h = (h ^ bits.RotateLeft64(b, 31) ^ h>>29) * 0xBF58476D1CE4E5B9
	return h ^ h>>32
}

// find returns the entry for k, or nil. Safe for concurrent use; no allocation.
func (t *table) find(k *[16]byte) *entry {
	i := t.hash(k) & t.mask
	for {
		e := t.buckets[i].Load()
		if e == nil {
			return nil
		}
		if e != tombstone && e.v6 == *k {
			return e
		}
		i = (i + 1) & t.mask
	}
}

// full reports whether one more insertion would push the load past 3/4.
func (t *table) full() bool { return (t.used+1)*4 > len(t.buckets)*3 }

// insert adds e (whose key must be absent). The caller checks full first.
func (t *table) insert(e *entry) {
	i := t.hash(&e.v6) & t.mask
	for {
		b := &t.buckets[i]
		cur := b.Load()
		if cur == nil {
			t.used++
			break
		}
		if cur == tombstone {
			break
		}
		i = (i + 1) & t.mask
	}
	t.buckets[i].Store(e)
	t.live++
}

// remove replaces e's bucket with a tombstone; false if e is not present.
func (t *table) remove(e *entry) bool {
	i := t.hash(&e.v6) & t.mask
	for {
		cur := t.buckets[i].Load()
		if cur == nil {
			return false
		}
		if cur == e {
			t.buckets[i].Store(tombstone)
			t.live--
			return true
		}
		i = (i + 1) & t.mask
	}
}

// rebuilt returns a fresh table of the same size holding the live entries.
func (t *table) rebuilt() *table {
	n := newTable(len(t.buckets), t.seed)
	for i := range t.buckets {
		if e := t.buckets[i].Load(); e != nil && e != tombstone {
			n.insert(e)
		}
	}
	return n
}
