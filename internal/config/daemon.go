package config

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/bih-nfq/bih-nfq/internal/hostnet"
	"github.com/bih-nfq/bih-nfq/nft"
	"github.com/bih-nfq/bih-nfq/pool"
)

// Daemon is the daemon: section (`bih-nfq run`).
type Daemon struct {
	// StateDir holds the mapping journal, so mappings survive restarts.
	StateDir string `yaml:"state-dir"`
	// StatusSocket is the root-only unix socket `bih-nfq status` reads.
	StatusSocket string `yaml:"status-socket"`
	// Metrics is the Prometheus listen address (loopback only); "off"
	// disables it.
	Metrics string `yaml:"metrics"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `yaml:"log-level"`
}

// Pool is the pool: section (RFC 6535 §4.4, §6.3).
type Pool struct {
	// Pools are the destination pools in order of preference.
	Pools []string `yaml:"pools"`
	// Grace is added to a synthesized answer's TTL for the mapping's DNS
	// lifetime.
	Grace time.Duration `yaml:"grace"`
	// IdleTimeout ends a mapping past its DNS lifetime and idle this long.
	IdleTimeout time.Duration `yaml:"idle-timeout"`
	// RequesterRate is new mappings per second one client may cause
	// (negative: unlimited); RequesterShare the share of the pool it may hold.
	RequesterRate  float64 `yaml:"requester-rate"`
	RequesterShare float64 `yaml:"requester-share"`
}

// Host is the host: section: the link and addresses the daemon adds.
type Host struct {
	// Link is the TUN link that carries the pool routes.
	Link string `yaml:"link"`
	// Source4 is the IPv4 source address applications use (RFC 6535 §4.4).
	Source4 string `yaml:"source4"`
	// Uplink is the IPv6 uplink; empty: the link of the IPv6 default route.
	Uplink string `yaml:"uplink"`
	// Source6 is the IPv6 source of translated traffic; empty: derived from
	// the machine id inside the uplink's /64.
	Source6 string `yaml:"source6"`
}

// NFT is the nft: section.
type NFT struct {
	// Table names the daemon's ip and ip6 tables.
	Table string `yaml:"table"`
	// Mark is the SO_MARK of the daemon's own packets (decimal or 0x hex).
	Mark string `yaml:"mark"`
	// Rules is managed (the daemon installs and removes its tables) or
	// external (the sysadmin's ruleset provides the queues and sets).
	Rules string `yaml:"rules"`
}

// Queue is the queue: section.
type Queue struct {
	// Count is the number of translation queues and workers; 0: one per CPU.
	Count int `yaml:"count"`
	// Procs is how many threads run the daemon's Go code at once
	// (GOMAXPROCS); 0: half the CPUs (at least one), one per CPU in stub
	// mode, or the GOMAXPROCS environment variable when it is set.
	Procs int `yaml:"procs"`
	// Translation is the first translation queue number, DNS the DNS queue.
	Translation int `yaml:"translation"`
	DNS         int `yaml:"dns"`
	// Router is the first router translation queue (router mode); there
	// are as many as translation queues.
	Router int `yaml:"router"`
	// UDPGSO takes the UDP super-packets (GSO) the translation queues cannot
	// cut themselves; the kernel cuts them on the way in.
	UDPGSO int `yaml:"udp-gso"`
	// TCPGSO is how outgoing TCP super-packets, and runs of UDP datagrams
	// of one flow, leave once translated: forward (whole, into the TUN
	// link, for the kernel to forward and cut as late as the path allows)
	// or cut (into segments here; every datagram on its own; through raw
	// sockets).
	TCPGSO string `yaml:"tcp-gso"`
	// FailOpenDNS lets DNS through untouched while the daemon is not
	// reading its queue (stopped, or the queue full): names still resolve,
	// only synthesis is lost.
	FailOpenDNS bool `yaml:"fail-open-dns"`
	// FailOpenTranslation accepts packets the translator refuses, and
	// packets for the translation queue while nobody reads it, instead of
	// dropping them (counted as queue_fail_open).
	FailOpenTranslation bool `yaml:"fail-open-translation"`
}

// queue.tcp-gso settings.
const (
	TCPGSOForward = "forward"
	TCPGSOCut     = "cut"
)

// Rules settings.
const (
	RulesManaged  = "managed"
	RulesExternal = "external"
)

func defaultDaemon() Daemon {
	return Daemon{
		StateDir:     "/var/lib/bih-nfq",
		StatusSocket: "/run/bih-nfq/status.sock",
		Metrics:      "127.0.0.1:9642",
		LogLevel:     "info",
	}
}

// The defaults below come from the packages that own them.

func defaultPool() Pool {
	return Pool{
		Pools:          []string{pool.DefaultPrimary.String(), pool.DefaultSecondary.String()},
		Grace:          pool.DefaultGrace,
		IdleTimeout:    pool.DefaultIdleTimeout,
		RequesterRate:  pool.DefaultRequesterRate,
		RequesterShare: pool.DefaultRequesterShare, // 1: in host mode one stub asks for everyone
	}
}

func defaultHost() Host {
	return Host{Link: hostnet.DefaultLinkName, Source4: hostnet.DefaultSource4.Addr().String()}
}

func defaultNFT() NFT {
	return NFT{Table: nft.DefaultTable, Mark: fmt.Sprintf("%#x", nft.DefaultMark), Rules: RulesManaged}
}

func defaultQueue() Queue {
	return Queue{Translation: nft.DefaultXlatNum, DNS: nft.DefaultDNSNum, Router: nft.DefaultRouterNum, UDPGSO: nft.DefaultUDPGSONum, TCPGSO: TCPGSOForward, FailOpenDNS: true}
}

func (d *Daemon) validate() error {
	if !filepath.IsAbs(d.StateDir) {
		return keyErr("daemon.state-dir", "%q is not an absolute path", d.StateDir)
	}
	if !filepath.IsAbs(d.StatusSocket) {
		return keyErr("daemon.status-socket", "%q is not an absolute path", d.StatusSocket)
	}
	if d.Metrics != "off" && d.Metrics != "" {
		ap, err := netip.ParseAddrPort(d.Metrics)
		if err != nil || !ap.Addr().IsLoopback() {
			return keyErr("daemon.metrics", "%q is not a loopback address:port (or off)", d.Metrics)
		}
	}
	switch strings.ToLower(d.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		return keyErr("daemon.log-level", "%q: want debug, info, warn or error", d.LogLevel)
	}
	return nil
}

// Prefixes parses the pools.
func (p *Pool) Prefixes() ([]netip.Prefix, error) {
	if len(p.Pools) == 0 {
		return nil, keyErr("pool.pools", "at least one pool is needed")
	}
	var out []netip.Prefix
	for i, s := range p.Pools {
		pfx, err := netip.ParsePrefix(s)
		key := fmt.Sprintf("pool.pools[%d]", i)
		if err != nil || !pfx.Addr().Is4() {
			return nil, keyErr(key, "%q is not an IPv4 prefix", s)
		}
		if pfx.Masked() != pfx {
			return nil, keyErr(key, "%q has host bits set (did you mean %v?)", s, pfx.Masked())
		}
		if pfx.Bits() < 16 || pfx.Bits() > 30 {
			return nil, keyErr(key, "%q: a pool is a /16 to a /30", s)
		}
		for j, q := range out {
			if q.Overlaps(pfx) {
				return nil, keyErr(key, "%q overlaps pool.pools[%d]", s, j)
			}
		}
		out = append(out, pfx)
	}
	return out, nil
}

func (p *Pool) validate() error {
	if _, err := p.Prefixes(); err != nil {
		return err
	}
	if p.Grace < 0 {
		return keyErr("pool.grace", "%v is negative", p.Grace)
	}
	if p.IdleTimeout <= 0 {
		return keyErr("pool.idle-timeout", "%v: must be positive", p.IdleTimeout)
	}
	if p.RequesterShare <= 0 || p.RequesterShare > 1 {
		return keyErr("pool.requester-share", "%v: want a share in (0, 1]", p.RequesterShare)
	}
	return nil
}

// Addrs parses source4 and source6 (invalid Source6 when empty: derived).
func (h *Host) Addrs() (src4, src6 netip.Addr, err error) {
	if src4, err = netip.ParseAddr(h.Source4); err != nil || !src4.Is4() {
		return src4, src6, keyErr("host.source4", "%q is not an IPv4 address", h.Source4)
	}
	if h.Source6 != "" {
		if src6, err = netip.ParseAddr(h.Source6); err != nil || !src6.Is6() || src6.Is4In6() || !src6.IsGlobalUnicast() {
			return src4, src6, keyErr("host.source6", "%q is not a global IPv6 address", h.Source6)
		}
	}
	return src4, src6, nil
}

func (h *Host) validate() error {
	if n := len(h.Link); n == 0 || n > 15 || strings.ContainsAny(h.Link, "/ \t") {
		return keyErr("host.link", "%q is not a valid link name", h.Link)
	}
	_, _, err := h.Addrs()
	return err
}

// MarkValue parses the mark.
func (n *NFT) MarkValue() (uint32, error) {
	v, err := strconv.ParseUint(n.Mark, 0, 32)
	if err != nil || v == 0 {
		return 0, keyErr("nft.mark", "%q is not a non-zero 32-bit number", n.Mark)
	}
	return uint32(v), nil
}

func (n *NFT) validate() error {
	if len(n.Table) == 0 || len(n.Table) > 32 || strings.ContainsAny(n.Table, " \t/;{}\"") {
		return keyErr("nft.table", "%q is not a valid table name", n.Table)
	}
	if _, err := n.MarkValue(); err != nil {
		return err
	}
	if n.Rules != RulesManaged && n.Rules != RulesExternal {
		return keyErr("nft.rules", "%q: want managed or external", n.Rules)
	}
	return nil
}

func (q *Queue) validate() error {
	if q.Count < 0 || q.Count > 64 {
		return keyErr("queue.count", "%d: want 0 (one per CPU) to 64", q.Count)
	}
	if q.Procs < 0 || q.Procs > 1024 {
		return keyErr("queue.procs", "%d: want 0 (automatic) to 1024", q.Procs)
	}
	if q.Translation < 0 || q.Translation+max(q.Count, 1) > 65536 {
		return keyErr("queue.translation", "%d is not a queue number", q.Translation)
	}
	if q.DNS < 0 || q.DNS > 65535 {
		return keyErr("queue.dns", "%d is not a queue number", q.DNS)
	}
	if q.UDPGSO < 0 || q.UDPGSO > 65535 {
		return keyErr("queue.udp-gso", "%d is not a queue number", q.UDPGSO)
	}
	if q.TCPGSO != TCPGSOForward && q.TCPGSO != TCPGSOCut {
		return keyErr("queue.tcp-gso", "%q: want forward or cut", q.TCPGSO)
	}
	return nil
}
