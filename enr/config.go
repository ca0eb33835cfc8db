package enr

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/miekg/dns"
)

// Mapper is the address mapper (RFC 6535 §2.4) as the ENR sees it.
type Mapper interface {
	// MapIPv6 returns the pool IPv4 address for v6, creating the mapping if
	// needed, to live at least ttl. Any error means "cannot map"
	// (exhaustion, rate limit, quota).
	MapIPv6(v6, requester netip.Addr, ttl time.Duration) (netip.Addr, error)
	// LookupIPv4 returns the IPv6 address mapped to pool address v4.
	LookupIPv4(v4 netip.Addr) (netip.Addr, bool)
	// InPool reports whether v4 belongs to a destination pool.
	InPool(v4 netip.Addr) bool
}

// Default exclusion sets (RFC 6535 §2.3.1, pointing at RFC 6147 §5.1.4 and
// RFC 5735). Pool addresses are excluded from A answers in addition.
var (
	DefaultExcludeA = []netip.Prefix{
		netip.MustParsePrefix("0.0.0.0/8"),
		netip.MustParsePrefix("127.0.0.0/8"),
		netip.MustParsePrefix("169.254.0.0/16"),
		netip.MustParsePrefix("255.255.255.255/32"),
	}
	DefaultExcludeAAAA = []netip.Prefix{
		netip.MustParsePrefix("::/128"),
		netip.MustParsePrefix("::1/128"),
		netip.MustParsePrefix("::ffff:0:0/96"),
		netip.MustParsePrefix("fe80::/10"),
		netip.MustParsePrefix("ff00::/8"),
	}
)

// Config holds the ENR rules. The zero value is not ready: start from
// DefaultConfig and change fields.
type Config struct {
	// ExcludeA lists real IPv4 ranges treated as absent from A answers
	// (RFC 6535 §2.3.1). Pool addresses are always excluded too.
	ExcludeA []netip.Prefix
	// ExcludeAAAA lists IPv6 ranges never mapped (RFC 6147 §5.1.4 analogue).
	ExcludeAAAA []netip.Prefix
	// MaxTTL caps the TTL of synthesized A records (and of cached lookups).
	MaxTTL time.Duration
	// NoSOATTL bounds the TTL when the negative A answer carries no SOA
	// (RFC 6147 §5.1.7: "or 600 seconds, whichever is shorter").
	NoSOATTL time.Duration
	// MaxSynthesized bounds the A records synthesized for one answer, so
	// one response cannot claim a large part of the pool (RFC 6535 §6.3).
	MaxSynthesized int
	// PoolErrorRcode answers a query whose synthesis the pool refused
	// entirely (default SERVFAIL).
	PoolErrorRcode int
	// LookupTimeout bounds each AAAA/PTR lookup upstream.
	LookupTimeout time.Duration
	// ATimeoutSynthesis is how long after an intercepted A query, with no A
	// response seen, the ENR answers from a positive AAAA result (RFC 6535
	// §2.3 MAY). Zero disables it.
	ATimeoutSynthesis time.Duration
	// MaxOutstanding bounds the intercepted queries remembered at once.
	MaxOutstanding int
	// OutstandingLifetime bounds how long an intercepted query is remembered.
	OutstandingLifetime time.Duration
	// CacheEntries bounds the AAAA/PTR cache; zero disables caching.
	CacheEntries int
	// Now is the clock; replay sets a deterministic one.
	Now func() time.Time
}

// DefaultConfig returns the defaults documented in README.md.
func DefaultConfig() Config {
	return Config{
		ExcludeA:            append([]netip.Prefix(nil), DefaultExcludeA...),
		ExcludeAAAA:         append([]netip.Prefix(nil), DefaultExcludeAAAA...),
		MaxTTL:              10 * time.Minute,
		NoSOATTL:            10 * time.Minute,
		MaxSynthesized:      64,
		PoolErrorRcode:      dns.RcodeServerFailure,
		LookupTimeout:       2 * time.Second,
		ATimeoutSynthesis:   1500 * time.Millisecond,
		MaxOutstanding:      4096,
		OutstandingLifetime: 10 * time.Second,
		CacheEntries:        4096,
		Now:                 time.Now,
	}
}

func (c *Config) validate() error {
	if c.MaxTTL <= 0 {
		return fmt.Errorf("max ttl %v: must be positive", c.MaxTTL)
	}
	if c.NoSOATTL <= 0 {
		return fmt.Errorf("no-soa ttl %v: must be positive", c.NoSOATTL)
	}
	if c.LookupTimeout <= 0 {
		return fmt.Errorf("lookup timeout %v: must be positive", c.LookupTimeout)
	}
	if c.MaxSynthesized <= 0 {
		return fmt.Errorf("max synthesized %d: must be positive", c.MaxSynthesized)
	}
	if c.MaxOutstanding <= 0 {
		return fmt.Errorf("max outstanding %d: must be positive", c.MaxOutstanding)
	}
	if c.OutstandingLifetime <= 0 {
		return fmt.Errorf("outstanding lifetime %v: must be positive", c.OutstandingLifetime)
	}
	if c.ATimeoutSynthesis < 0 || c.CacheEntries < 0 {
		return fmt.Errorf("negative a-timeout synthesis or cache size")
	}
	if _, ok := dns.RcodeToString[c.PoolErrorRcode]; !ok || c.PoolErrorRcode > 15 {
		return fmt.Errorf("pool error rcode %d: not a 4-bit rcode", c.PoolErrorRcode)
	}
	if err := checkExclusions(c.ExcludeA, c.ExcludeAAAA); err != nil {
		return err
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}
