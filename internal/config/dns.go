package config

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/bih-nfq/bih-nfq/enr"
)

// maxTTL is the largest TTL a resource record may carry (RFC 2181 §8).
const maxTTL = (1<<31 - 1) * time.Second

// DNS is the dns: section: the Extension Name Resolver (RFC 6535 §2.3).
// Exclusion lists stay text so that errors can quote them.
type DNS struct {
	// ExcludeA lists real IPv4 ranges treated as absent from A answers
	// (RFC 6535 §2.3.1); the pools are excluded in addition.
	ExcludeA []string `yaml:"exclude-a"`
	// ExcludeAAAA lists IPv6 ranges never mapped into the pool (RFC 6147
	// §5.1.4 analogue).
	ExcludeAAAA []string `yaml:"exclude-aaaa"`
	// MaxTTL caps the TTL of synthesized A records.
	MaxTTL time.Duration `yaml:"max-ttl"`
	// LookupTimeout bounds each AAAA or PTR lookup upstream.
	LookupTimeout time.Duration `yaml:"lookup-timeout"`
	// ATimeoutSynthesis is how long after an A query with no answer the
	// ENR answers from a positive AAAA result (RFC 6535 §2.3); 0 disables.
	ATimeoutSynthesis time.Duration `yaml:"a-timeout-synthesis"`
	// PoolErrorRcode names the rcode of the answer when the pool refuses
	// every mapping (SERVFAIL, REFUSED, NXDOMAIN...).
	PoolErrorRcode string `yaml:"pool-error-rcode"`
	// MaxOutstanding bounds the intercepted queries remembered at once.
	MaxOutstanding int `yaml:"max-outstanding"`
	// CacheEntries bounds the AAAA/PTR cache; 0 disables it.
	CacheEntries int `yaml:"cache-entries"`
	// PassThrough turns synthesis off: every query and answer passes
	// untouched (what RFC 6535 §4.5 asks once native IPv4 is available).
	PassThrough bool `yaml:"pass-through"`
	// Mode is intercept (the programs' DNS packets are queued and
	// rewritten in flight, RFC 6535 §2.3) or stub (a resolver on
	// StubListen that the host's resolv.conf points at, RFC 6535
	// Appendix A style).
	Mode string `yaml:"mode"`
	// StubListen is the stub's UDP and TCP address.
	StubListen string `yaml:"stub-listen"`
	// StubUpstreams are the resolvers the stub forwards to; empty: the
	// nameservers of /etc/resolv.conf other than the stub itself.
	StubUpstreams []string `yaml:"stub-upstreams"`
	// StubAllowClients lists non-loopback client prefixes the stub serves;
	// everyone else outside loopback gets REFUSED.
	StubAllowClients []string `yaml:"stub-allow-clients"`
}

// DNS modes.
const (
	DNSIntercept = "intercept"
	DNSStub      = "stub"
)

// StubSettings is the parsed stub part of the section.
type StubSettings struct {
	Listen    netip.AddrPort
	Upstreams []netip.AddrPort
	Allow     []netip.Prefix
}

// Stub parses the stub keys.
func (d *DNS) Stub() (StubSettings, error) {
	var st StubSettings
	var err error
	if st.Listen, err = netip.ParseAddrPort(d.StubListen); err != nil {
		return st, keyErr("dns.stub-listen", "%q is not an address:port", d.StubListen)
	}
	for i, s := range d.StubUpstreams {
		a, err := netip.ParseAddrPort(s)
		if err != nil {
			if ip, aerr := netip.ParseAddr(s); aerr == nil {
				a, err = netip.AddrPortFrom(ip, 53), nil
			}
		}
		if err != nil {
			return st, keyErr(fmt.Sprintf("dns.stub-upstreams[%d]", i), "%q is not an address or address:port", s)
		}
		st.Upstreams = append(st.Upstreams, a)
	}
	for i, s := range d.StubAllowClients {
		p, err := netip.ParsePrefix(s)
		if err != nil || p.Masked() != p {
			return st, keyErr(fmt.Sprintf("dns.stub-allow-clients[%d]", i), "%q is not a network prefix", s)
		}
		st.Allow = append(st.Allow, p)
	}
	if !st.Listen.Addr().IsLoopback() && len(st.Allow) == 0 {
		return st, keyErr("dns.stub-listen", "%v is not a loopback address and dns.stub-allow-clients is empty (never an open resolver)", st.Listen)
	}
	return st, nil
}

// defaultDNS is enr.DefaultConfig in the file's terms.
func defaultDNS() DNS {
	e := enr.DefaultConfig()
	return DNS{
		ExcludeA:          prefixStrings(e.ExcludeA),
		ExcludeAAAA:       prefixStrings(e.ExcludeAAAA),
		MaxTTL:            e.MaxTTL,
		LookupTimeout:     e.LookupTimeout,
		ATimeoutSynthesis: e.ATimeoutSynthesis,
		PoolErrorRcode:    dns.RcodeToString[e.PoolErrorRcode],
		MaxOutstanding:    e.MaxOutstanding,
		CacheEntries:      e.CacheEntries,
		Mode:              DNSIntercept,
		StubListen:        enr.DefaultStubListen.String(),
	}
}

func prefixStrings(ps []netip.Prefix) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

// rcodeNames lists the rcodes an answer header can carry (4 bits, RFC 1035
// §4.1.1 and RFC 2136 §2.2), by name.
func rcodeNames() []string {
	var names []string
	for v, n := range dns.RcodeToString {
		if v >= 0 && v <= 15 {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// PoolErrorRcodeValue returns the numeric rcode of pool-error-rcode.
func (d *DNS) PoolErrorRcodeValue() (int, error) {
	v, ok := dns.StringToRcode[strings.ToUpper(d.PoolErrorRcode)]
	if !ok || v < 0 || v > 15 {
		return 0, keyErr("dns.pool-error-rcode", "%q: want one of %s", d.PoolErrorRcode, strings.Join(rcodeNames(), ", "))
	}
	return v, nil
}

// Exclusions parses exclude-a and exclude-aaaa. A bare address is a /32 or
// /128; a prefix must not have host bits set.
func (d *DNS) Exclusions() (a, aaaa []netip.Prefix, err error) {
	if a, err = parseExclusions("dns.exclude-a", d.ExcludeA, true); err != nil {
		return nil, nil, err
	}
	if aaaa, err = parseExclusions("dns.exclude-aaaa", d.ExcludeAAAA, false); err != nil {
		return nil, nil, err
	}
	return a, aaaa, nil
}

func parseExclusions(key string, list []string, want4 bool) ([]netip.Prefix, error) {
	family := "IPv6"
	if want4 {
		family = "IPv4"
	}
	out := make([]netip.Prefix, 0, len(list))
	for i, s := range list {
		k := fmt.Sprintf("%s[%d]", key, i)
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil || a.Zone() != "" {
				return nil, keyErr(k, "%q is not an %s prefix", s, family)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		// An IPv4-mapped IPv6 prefix is an IPv6 prefix here: it belongs in
		// exclude-aaaa (::ffff:0:0/96 is there by default).
		if p.Addr().Is4() != want4 {
			return nil, keyErr(k, "%q is not an %s prefix", s, family)
		}
		if p.Masked() != p {
			return nil, keyErr(k, "%q has host bits set (did you mean %v?)", s, p.Masked())
		}
		if j := slices.Index(out, p); j >= 0 {
			return nil, keyErr(k, "%q repeats %s[%d]", s, key, j)
		}
		out = append(out, p)
	}
	return out, nil
}

func (d *DNS) validate() error {
	if _, _, err := d.Exclusions(); err != nil {
		return err
	}
	if d.MaxTTL < time.Second || d.MaxTTL > maxTTL {
		return keyErr("dns.max-ttl", "%v is outside 1s..%v (RFC 2181 §8)", d.MaxTTL, maxTTL)
	}
	if d.LookupTimeout <= 0 {
		return keyErr("dns.lookup-timeout", "%v: must be positive", d.LookupTimeout)
	}
	if d.ATimeoutSynthesis < 0 {
		return keyErr("dns.a-timeout-synthesis", "%v is negative (0 disables it)", d.ATimeoutSynthesis)
	}
	if _, err := d.PoolErrorRcodeValue(); err != nil {
		return err
	}
	if d.MaxOutstanding <= 0 {
		return keyErr("dns.max-outstanding", "%d: must be positive", d.MaxOutstanding)
	}
	if d.CacheEntries < 0 {
		return keyErr("dns.cache-entries", "%d is negative (0 disables the cache)", d.CacheEntries)
	}
	switch d.Mode {
	case DNSIntercept:
	case DNSStub:
		if _, err := d.Stub(); err != nil {
			return err
		}
	default:
		return keyErr("dns.mode", "%q: want intercept or stub", d.Mode)
	}
	return nil
}

// ENRConfig validates the section and returns the resolver's configuration:
// enr.DefaultConfig with this section's keys applied. Pass-through is not
// part of it: it is a switch on the running resolver (enr.ENR.SetPassThrough).
func (d *DNS) ENRConfig() (enr.Config, error) {
	if err := d.validate(); err != nil {
		return enr.Config{}, err
	}
	a, aaaa, err := d.Exclusions()
	if err != nil {
		return enr.Config{}, err
	}
	rcode, err := d.PoolErrorRcodeValue()
	if err != nil {
		return enr.Config{}, err
	}
	c := enr.DefaultConfig()
	c.ExcludeA = a
	c.ExcludeAAAA = aaaa
	c.MaxTTL = d.MaxTTL
	c.LookupTimeout = d.LookupTimeout
	c.ATimeoutSynthesis = d.ATimeoutSynthesis
	c.PoolErrorRcode = rcode
	c.MaxOutstanding = d.MaxOutstanding
	c.CacheEntries = d.CacheEntries
	return c, nil
}
