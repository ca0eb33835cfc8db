package main

import (
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/bih-nfq/bih-nfq/enr"
	"github.com/bih-nfq/bih-nfq/translate"
)

// explicitFirst answers the ENR from the explicit mappings (RFC 7757) before
// the pool: an IPv6 address with an explicit IPv4 address is synthesized as
// that address, so DNS and the translator's return path (which tries the
// explicit table first) agree.
type explicitFirst struct {
	pool enr.Mapper
	eam  atomic.Pointer[translate.EAMTable] // translation.map; replaced on SIGHUP
}

func (m *explicitFirst) MapIPv6(v6, requester netip.Addr, ttl time.Duration) (netip.Addr, error) {
	if t := m.eam.Load(); t != nil && v6.Is6() {
		if v4, ok := t.To4(v6.As16()); ok {
			return netip.AddrFrom4(v4), nil
		}
	}
	return m.pool.MapIPv6(v6, requester, ttl)
}

func (m *explicitFirst) LookupIPv4(v4 netip.Addr) (netip.Addr, bool) {
	if t := m.eam.Load(); t != nil && v4.Is4() {
		if v6, ok := t.To6(v4.As4()); ok {
			return netip.AddrFrom16(v6), true
		}
	}
	return m.pool.LookupIPv4(v4)
}

func (m *explicitFirst) InPool(v4 netip.Addr) bool { return m.pool.InPool(v4) }
