package pool

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"
)

// Defaults (RFC 6535 §4.4 for the pools; the timers cite their sources).
var (
	// DefaultPrimary is the primary destination pool (RFC 6535 §4.4).
	DefaultPrimary = netip.MustParsePrefix("10.170.160.0/20")
	// DefaultSecondary is used when the host's IPv4 routes or addresses
	// overlap the primary (RFC 6535 §4.4).
	DefaultSecondary = netip.MustParsePrefix("172.21.80.0/20")
)

const (
	// DefaultStateDir is where the daemon keeps the mapping journal.
	DefaultStateDir = "/var/lib/bih-nfq/"

	// DefaultGrace is added to a DNS answer's TTL: applications keep
	// addresses longer than the TTL says (RFC 6535 §4.4).
	DefaultGrace = 10 * time.Minute
	// DefaultMaxTTL caps the TTL counted toward a mapping's DNS lifetime so a
	// hostile answer cannot pin an address for days (RFC 6535 §6.3).
	DefaultMaxTTL = time.Hour
	// DefaultIdleTimeout removes a mapping whose DNS lifetime has passed and
	// that carried no traffic for this long; it matches the established TCP
	// idle timeout NATs must allow (RFC 5382 REQ-5: 2 h 4 min).
	DefaultIdleTimeout = 2*time.Hour + 4*time.Minute
	// DefaultReclaimIdle is the idle time after which a mapping past its DNS
	// lifetime may be reclaimed when the pool is full (RFC 4787 REQ-5: UDP
	// mappings live at least 2 min, 5 min recommended).
	DefaultReclaimIdle = 5 * time.Minute

	// DefaultRequesterRate is new mappings per second per requester
	// (RFC 6535 §6.3); DefaultRequesterBurst is the bucket size.
	DefaultRequesterRate  = 50.0
	DefaultRequesterBurst = 200
	// DefaultRequesterShare is the share of the pool one requester may hold.
	// 1 (no limit) because in host mode every query comes from one stub
	// resolver; router mode should lower it (e.g. 0.25).
	DefaultRequesterShare = 1.0

	// DefaultErrorSourceLifetime is how long an on-demand mapping for the
	// IPv6 source of an ICMPv6 error lives (RFC 6535 §2.4 case 3).
	DefaultErrorSourceLifetime = 2 * time.Minute
	// DefaultErrorSourceRate and DefaultErrorSourceBurst limit new
	// error-source mappings per second; DefaultErrorSourceMax bounds how
	// many exist at once.
	DefaultErrorSourceRate  = 10.0
	DefaultErrorSourceBurst = 20
	DefaultErrorSourceMax   = 256

	// DefaultClockResolution is how often the coarse clock used by the data
	// path to record use is updated.
	DefaultClockResolution = time.Second
	// DefaultSweepInterval is how often expired mappings are removed.
	DefaultSweepInterval = 30 * time.Second
	// DefaultCompactInterval is how often the journal is rewritten (which
	// also records last-use times).
	DefaultCompactInterval = 5 * time.Minute

	// maxPoolBits is the shortest pool prefix (a /16) so tables stay small.
	maxPoolBits = 16
	// maxPools bounds the pool list (the data path scans it per packet).
	maxPools = 8
)

// StaticMapping is an explicit mapping from configuration (RFC 7757); it never
// expires and is never reclaimed. V4 may lie inside a pool (its address is
// then reserved) or outside.
type StaticMapping struct {
	V4 netip.Addr
	V6 netip.Addr
}

// Config configures a Pool. Zero fields take the defaults above, except
// StateDir: "" means no persistence (DefaultConfig sets DefaultStateDir).
type Config struct {
	// Pools are the destination pools in order of preference (RFC 6535 §4.4);
	// default [DefaultPrimary, DefaultSecondary]. Each is an IPv4 prefix of
	// /16 to /30; network and broadcast addresses are never handed out.
	Pools []netip.Prefix
	// Grace is added to the TTL for a mapping's DNS lifetime.
	Grace time.Duration
	// MaxTTL caps the TTL counted toward the DNS lifetime.
	MaxTTL time.Duration
	// IdleTimeout removes mappings past their DNS lifetime and idle this long.
	IdleTimeout time.Duration
	// ReclaimIdle is the minimum idle time for reclamation when full.
	ReclaimIdle time.Duration
	// RequesterRate is new mappings per second per requester; negative
	// disables the limit. RequesterBurst is the bucket size.
	RequesterRate  float64
	RequesterBurst int
	// RequesterShare (0,1] is the share of the usable pool one requester may
	// hold at once.
	RequesterShare float64
	// ErrorSourceLifetime, ErrorSourceRate (negative: unlimited),
	// ErrorSourceBurst and ErrorSourceMax govern ErrorSourceTo4.
	ErrorSourceLifetime time.Duration
	ErrorSourceRate     float64
	ErrorSourceBurst    int
	ErrorSourceMax      int
	// StateDir holds the journal; "" disables persistence.
	StateDir string
	// CompactInterval is how often the journal is rewritten.
	CompactInterval time.Duration
	// Static lists explicit mappings.
	Static []StaticMapping
	// Logger receives persistence and configuration messages; default
	// slog.Default().
	Logger *slog.Logger
	// Clock returns the current time; default time.Now. Tests inject one.
	Clock func() time.Time
	// ClockResolution is how often the data path's coarse clock is updated.
	ClockResolution time.Duration
	// SweepInterval is how often expired mappings are removed.
	SweepInterval time.Duration

	// compactAfter forces a rewrite after this many appended records (tests
	// lower it); noSync skips fsync (tests that do not test durability).
	compactAfter int
	noSync       bool
}

// DefaultConfig returns the defaults, with persistence in DefaultStateDir.
func DefaultConfig() Config {
	c := Config{StateDir: DefaultStateDir}
	c.fill()
	return c
}

func (c *Config) fill() {
	if len(c.Pools) == 0 {
		c.Pools = []netip.Prefix{DefaultPrimary, DefaultSecondary}
	}
	setDur := func(d *time.Duration, def time.Duration) {
		if *d == 0 {
			*d = def
		}
	}
	setDur(&c.Grace, DefaultGrace)
	setDur(&c.MaxTTL, DefaultMaxTTL)
	setDur(&c.IdleTimeout, DefaultIdleTimeout)
	setDur(&c.ReclaimIdle, DefaultReclaimIdle)
	setDur(&c.ErrorSourceLifetime, DefaultErrorSourceLifetime)
	setDur(&c.ClockResolution, DefaultClockResolution)
	setDur(&c.SweepInterval, DefaultSweepInterval)
	setDur(&c.CompactInterval, DefaultCompactInterval)
	if c.RequesterRate == 0 {
		c.RequesterRate = DefaultRequesterRate
	}
	if c.RequesterBurst == 0 {
		c.RequesterBurst = DefaultRequesterBurst
	}
	if c.RequesterShare == 0 {
		c.RequesterShare = DefaultRequesterShare
	}
	if c.ErrorSourceRate == 0 {
		c.ErrorSourceRate = DefaultErrorSourceRate
	}
	if c.ErrorSourceBurst == 0 {
		c.ErrorSourceBurst = DefaultErrorSourceBurst
	}
	if c.ErrorSourceMax == 0 {
		c.ErrorSourceMax = DefaultErrorSourceMax
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.compactAfter == 0 {
		c.compactAfter = 4096
	}
}

func (c *Config) validate() error {
	if len(c.Pools) > maxPools {
		return fmt.Errorf("%d pools: at most %d", len(c.Pools), maxPools)
	}
	for i, p := range c.Pools {
		if !p.IsValid() || !p.Addr().Is4() {
			return fmt.Errorf("pool %d (%v): not an IPv4 prefix", i, p)
		}
		if p.Bits() < maxPoolBits || p.Bits() > 30 {
			return fmt.Errorf("pool %v: prefix length must be /%d to /30", p, maxPoolBits)
		}
		if p.Masked() != p {
			return fmt.Errorf("pool %v: host bits set (want %v)", p, p.Masked())
		}
		for _, q := range c.Pools[:i] {
			if p.Overlaps(q) {
				return fmt.Errorf("pools %v and %v overlap", q, p)
			}
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"Grace", c.Grace}, {"MaxTTL", c.MaxTTL}, {"IdleTimeout", c.IdleTimeout},
		{"ReclaimIdle", c.ReclaimIdle}, {"ErrorSourceLifetime", c.ErrorSourceLifetime},
		{"ClockResolution", c.ClockResolution}, {"SweepInterval", c.SweepInterval},
		{"CompactInterval", c.CompactInterval},
	} {
		if d.v < 0 {
			return fmt.Errorf("%s: negative duration %v", d.name, d.v)
		}
	}
	if c.ReclaimIdle > c.IdleTimeout {
		return fmt.Errorf("ReclaimIdle %v exceeds IdleTimeout %v", c.ReclaimIdle, c.IdleTimeout)
	}
	// Use is recorded with the coarse clock: an idle threshold below two
	// ticks could reclaim a mapping that carried traffic a moment ago.
	if c.ReclaimIdle < 2*c.ClockResolution {
		return fmt.Errorf("ReclaimIdle %v must be at least twice ClockResolution %v", c.ReclaimIdle, c.ClockResolution)
	}
	if c.RequesterBurst < 0 || c.ErrorSourceBurst < 0 || c.ErrorSourceMax < 0 {
		return errors.New("RequesterBurst, ErrorSourceBurst and ErrorSourceMax must not be negative")
	}
	if c.RequesterShare < 0 || c.RequesterShare > 1 {
		return fmt.Errorf("RequesterShare %v: want (0,1]", c.RequesterShare)
	}
	return nil
}
