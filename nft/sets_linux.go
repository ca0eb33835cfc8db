package nft

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// AddPrefix implements Sets.
func (r *Ruleset) AddPrefix(p netip.Prefix) error {
	if err := r.prefixOp(p, true); err != nil {
		return fmt.Errorf("add %v to set %s: %w", p, SetPool4, err)
	}
	return nil
}

// RemovePrefix implements Sets.
func (r *Ruleset) RemovePrefix(p netip.Prefix) error {
	if err := r.prefixOp(p, false); err != nil {
		return fmt.Errorf("remove %v from set %s: %w", p, SetPool4, err)
	}
	return nil
}

func (r *Ruleset) prefixOp(p netip.Prefix, add bool) error {
	els, err := prefixElements(p)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	c, err := r.opt.conn()
	if err != nil {
		return err
	}
	if add {
		err = c.SetAddElements(r.pool4, els)
	} else {
		err = c.SetDeleteElements(r.pool4, els)
	}
	if err != nil {
		return err
	}
	return c.Flush()
}

func mappedKey(a netip.Addr) ([]byte, error) {
	if !a.Is6() || a.Is4In6() {
		return nil, fmt.Errorf("%v is not an IPv6 address", a)
	}
	k := a.As16()
	return k[:], nil
}

// AddMapped implements Sets.
func (r *Ruleset) AddMapped(a netip.Addr, ttl time.Duration) error {
	if err := r.mappedOp(a, ttl, false); err != nil {
		return fmt.Errorf("add %v to set %s: %w", a, SetMapped6, err)
	}
	return nil
}

// RefreshMapped implements Sets: delete and re-add in one batch, because
// adding an existing element does not restart its timeout on every kernel.
func (r *Ruleset) RefreshMapped(a netip.Addr, ttl time.Duration) error {
	err := r.mappedOp(a, ttl, true)
	if errors.Is(err, unix.ENOENT) {
		// It expired meanwhile: the delete failed and the batch rolled back.
		err = r.mappedOp(a, ttl, false)
	}
	if err != nil {
		return fmt.Errorf("refresh %v in set %s: %w", a, SetMapped6, err)
	}
	return nil
}

func (r *Ruleset) mappedOp(a netip.Addr, ttl time.Duration, replace bool) error {
	k, err := mappedKey(a)
	if err != nil {
		return err
	}
	if ttl < 0 || (ttl > 0 && ttl < time.Millisecond) {
		return fmt.Errorf("timeout %v out of range", ttl)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	c, err := r.opt.conn()
	if err != nil {
		return err
	}
	if replace {
		if err := c.SetDeleteElements(r.mapped6, []nftables.SetElement{{Key: k}}); err != nil {
			return err
		}
	}
	if err := c.SetAddElements(r.mapped6, []nftables.SetElement{{Key: k, Timeout: ttl}}); err != nil {
		return err
	}
	return c.Flush()
}

// MappedElement is one address for set mapped6 and its timeout (0: none).
type MappedElement struct {
	Addr netip.Addr
	TTL  time.Duration
}

// mappedChunk bounds one batch of AddMappedAll, keeping netlink messages far
// below the socket buffer.
const mappedChunk = 512

// AddMappedAll adds many addresses to set mapped6 over one connection, a
// batch per mappedChunk elements: the start-up load of a restored pool would
// otherwise cost a netlink round trip (and a socket) per mapping. Elements
// are checked before anything is sent.
func (r *Ruleset) AddMappedAll(elems []MappedElement) error {
	batch := make([]nftables.SetElement, 0, len(elems))
	for _, e := range elems {
		k, err := mappedKey(e.Addr)
		if err == nil && (e.TTL < 0 || (e.TTL > 0 && e.TTL < time.Millisecond)) {
			err = fmt.Errorf("timeout %v out of range", e.TTL)
		}
		if err != nil {
			return fmt.Errorf("add %v to set %s: %w", e.Addr, SetMapped6, err)
		}
		batch = append(batch, nftables.SetElement{Key: k, Timeout: e.TTL})
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	c, err := r.opt.conn()
	if err != nil {
		return fmt.Errorf("add to set %s: %w", SetMapped6, err)
	}
	for start := 0; start < len(batch); start += mappedChunk {
		chunk := batch[start:min(start+mappedChunk, len(batch))]
		if err := c.SetAddElements(r.mapped6, chunk); err != nil {
			return fmt.Errorf("add %d elements to set %s: %w", len(chunk), SetMapped6, err)
		}
		if err := c.Flush(); err != nil {
			return fmt.Errorf("add %d elements to set %s: %w", len(chunk), SetMapped6, err)
		}
	}
	return nil
}

// RemoveMapped implements Sets.
func (r *Ruleset) RemoveMapped(a netip.Addr) error {
	k, err := mappedKey(a)
	if err != nil {
		return fmt.Errorf("remove %v from set %s: %w", a, SetMapped6, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	c, err := r.opt.conn()
	if err == nil {
		err = c.SetDeleteElements(r.mapped6, []nftables.SetElement{{Key: k}})
	}
	if err == nil {
		err = c.Flush()
	}
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove %v from set %s: %w", a, SetMapped6, err)
	}
	return nil
}

// Mapped lists set mapped6: each address with the time it has left (0 for
// elements without timeout).
func (r *Ruleset) Mapped() (map[netip.Addr]time.Duration, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, err := r.opt.conn()
	if err != nil {
		return nil, fmt.Errorf("list set %s: %w", SetMapped6, err)
	}
	els, err := c.GetSetElements(r.mapped6)
	if err != nil {
		return nil, fmt.Errorf("list set %s: %w", SetMapped6, err)
	}
	m := make(map[netip.Addr]time.Duration, len(els))
	for _, e := range els {
		if a, ok := netip.AddrFromSlice(e.Key); ok {
			m[a] = e.Expires
		}
	}
	return m, nil
}
