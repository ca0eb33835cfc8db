package config

import (
	"context"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/bih-nfq/bih-nfq/enr"
)

// TestDNSDefaultsMatchENR checks that a file without a dns: section gives
// the resolver exactly enr.DefaultConfig.
func TestDNSDefaultsMatchENR(t *testing.T) {
	c := Default()
	got, err := c.DNS.ENRConfig()
	if err != nil {
		t.Fatal(err)
	}
	want := enr.DefaultConfig()
	got.Now, want.Now = nil, nil // functions do not compare
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ENRConfig from defaults:\n got %+v\nwant %+v", got, want)
	}
	if c.DNS.PassThrough {
		t.Error("pass-through is on by default")
	}
}

func TestDNSGood(t *testing.T) {
	in := `dns:
  exclude-a: [192.0.2.0/24, 198.51.100.7]
  exclude-aaaa:
    - ::ffff:0:0/96
    - 2001:db8:bad::/48
  max-ttl: 5m
  lookup-timeout: 800ms
  a-timeout-synthesis: 0s
  pool-error-rcode: refused
  max-outstanding: 100
  cache-entries: 0
  pass-through: true
`
	c, err := Parse("f.yaml", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if !c.DNS.PassThrough {
		t.Error("pass-through not set")
	}
	got, err := c.DNS.ENRConfig()
	if err != nil {
		t.Fatal(err)
	}
	want := enr.DefaultConfig()
	want.ExcludeA = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("198.51.100.7/32")}
	want.ExcludeAAAA = []netip.Prefix{netip.MustParsePrefix("::ffff:0:0/96"), netip.MustParsePrefix("2001:db8:bad::/48")}
	want.MaxTTL = 5 * time.Minute
	want.LookupTimeout = 800 * time.Millisecond
	want.ATimeoutSynthesis = 0
	want.PoolErrorRcode = dns.RcodeRefused
	want.MaxOutstanding = 100
	want.CacheEntries = 0
	got.Now, want.Now = nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ENRConfig:\n got %+v\nwant %+v", got, want)
	}
	// The result is what enr.New accepts.
	if _, err := enr.New(got, nopMapper{}, nopUpstream{}, nil); err != nil {
		t.Errorf("enr.New refuses the built config: %v", err)
	}

	// An empty list means no exclusion at all (the pools stay excluded).
	c, err = Parse("f.yaml", []byte("dns:\n  exclude-a: []\n"))
	if err != nil {
		t.Fatal(err)
	}
	if e, err := c.DNS.ENRConfig(); err != nil || len(e.ExcludeA) != 0 || len(e.ExcludeAAAA) == 0 {
		t.Errorf("exclude-a: [] gives %v, %v, %v", e.ExcludeA, e.ExcludeAAAA, err)
	}
	for _, name := range []string{"SERVFAIL", "NXDOMAIN", "REFUSED", "NOERROR", "servfail"} {
		d := defaultDNS()
		d.PoolErrorRcode = name
		if err := d.validate(); err != nil {
			t.Errorf("pool-error-rcode %s: %v", name, err)
		}
	}
}

func TestDNSBad(t *testing.T) {
	cases := []struct{ in, want string }{
		{"dns:\n  exclude-a: [0.0.0.0/8, 127.0.0.0/8, x]\n",
			`f.yaml:2: dns.exclude-a[2]: "x" is not an IPv4 prefix`},
		{"dns:\n  exclude-a:\n    - 2001:db8::/32\n",
			`f.yaml:3: dns.exclude-a[0]: "2001:db8::/32" is not an IPv4 prefix`},
		{"dns:\n  exclude-a: [\"::ffff:192.0.2.0/120\"]\n",
			`dns.exclude-a[0]: "::ffff:192.0.2.0/120" is not an IPv4 prefix`},
		{"dns:\n  exclude-a: [192.0.2.1/24]\n",
			`dns.exclude-a[0]: "192.0.2.1/24" has host bits set (did you mean 192.0.2.0/24?)`},
		{"dns:\n  exclude-a: [192.0.2.0/24, 192.0.2.0/24]\n",
			`dns.exclude-a[1]: "192.0.2.0/24" repeats dns.exclude-a[0]`},
		{"dns:\n  exclude-a: [\"fe80::1%eth0\"]\n",
			`dns.exclude-a[0]: "fe80::1%eth0" is not an IPv4 prefix`},
		{"dns:\n  exclude-aaaa: [10.0.0.0/8]\n",
			`dns.exclude-aaaa[0]: "10.0.0.0/8" is not an IPv6 prefix`},
		{"dns:\n  exclude-aaaa: 2001:db8::/32\n",
			`dns.exclude-aaaa: want a list of strings, got "2001:db8::/32"`},
		{"dns:\n  max-ttl: 0s\n", `dns.max-ttl: 0s is outside 1s..`},
		{"dns:\n  max-ttl: 500ms\n", `dns.max-ttl: 500ms is outside 1s..`},
		{"dns:\n  max-ttl: 1000000h\n", `dns.max-ttl: 1000000h0m0s is outside 1s..`},
		{"dns:\n  max-ttl: ten\n", `dns.max-ttl: want a duration (such as 90s or 10m), got "ten"`},
		{"dns:\n  lookup-timeout: -1s\n", `dns.lookup-timeout: -1s: must be positive`},
		{"dns:\n  a-timeout-synthesis: -1ms\n", `dns.a-timeout-synthesis: -1ms is negative`},
		{"dns:\n  pool-error-rcode: SERVFAILURE\n", `dns.pool-error-rcode: "SERVFAILURE": want one of `},
		{"dns:\n  pool-error-rcode: BADSIG\n", `dns.pool-error-rcode: "BADSIG": want one of `},
		{"dns:\n  pool-error-rcode: 2\n", `dns.pool-error-rcode: "2": want one of `},
		{"dns:\n  max-outstanding: 0\n", `dns.max-outstanding: 0: must be positive`},
		{"dns:\n  cache-entries: -1\n", `dns.cache-entries: -1 is negative`},
		{"dns:\n  pass-through: maybe\n", `dns.pass-through: want true or false, got "maybe"`},
		{"dns:\n  exclude-ptr: []\n", `dns.exclude-ptr: unknown key`},
	}
	for _, c := range cases {
		_, err := Parse("f.yaml", []byte(c.in))
		if err == nil {
			t.Errorf("%q: no error, want %q", c.in, c.want)
			continue
		}
		var ke *KeyError
		if !errors.As(err, &ke) || !strings.HasPrefix(ke.Key, "dns.") {
			t.Errorf("%q: error %v does not name a dns key", c.in, err)
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q:\n got %v\nwant it to contain %q", c.in, err, c.want)
		}
	}
}

// A value set outside a file (by code) is checked by ENRConfig too.
func TestDNSENRConfigValidates(t *testing.T) {
	d := defaultDNS()
	d.ExcludeAAAA = append(d.ExcludeAAAA, "nope")
	if _, err := d.ENRConfig(); err == nil || !strings.Contains(err.Error(), `dns.exclude-aaaa[5]: "nope"`) {
		t.Errorf("ENRConfig error = %v", err)
	}
}

type nopMapper struct{}

func (nopMapper) MapIPv6(netip.Addr, netip.Addr, time.Duration) (netip.Addr, error) {
	return netip.Addr{}, errors.New("no pool")
}
func (nopMapper) LookupIPv4(netip.Addr) (netip.Addr, bool) { return netip.Addr{}, false }
func (nopMapper) InPool(netip.Addr) bool                   { return false }

type nopUpstream struct{}

func (nopUpstream) Exchange(context.Context, *dns.Msg, netip.AddrPort) (*dns.Msg, error) {
	return nil, errors.New("no upstream")
}
