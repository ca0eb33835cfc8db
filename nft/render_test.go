package nft

import (
	"net/netip"
	"strings"
	"testing"
)

func testConfig() Config {
	c := DefaultConfig()
	c.Source6 = netip.MustParseAddr("2001:db8::b1")
	c.Pools = append(c.Pools, netip.MustParsePrefix("172.21.80.0/20"))
	c.Xlat = Queue{Num: 4, Count: 2, CPUFanout: true}
	return c
}

func TestRenderContainsEveryRule(t *testing.T) {
	text, err := Render(testConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"table ip bih_nfq {",
		"table ip6 bih_nfq {",
		"delete table ip bih_nfq\n",
		"elements = { 10.170.160.0/20, 172.21.80.0/20 }",
		"flags interval",
		"flags timeout",
		"type filter hook output priority raw; policy accept;",
		"type filter hook prerouting priority raw; policy accept;",
		"type filter hook input priority filter; policy accept;",
		`meta mark 0x62696800 accept comment "bih-nfq:own"`,
		`ip daddr @pool4 counter queue num 4-5 fanout comment "bih-nfq:xlat-out"`,
		`udp dport 53 counter queue num 32 bypass comment "bih-nfq:dns-query"`,
		`udp sport 53 counter queue num 32 bypass comment "bih-nfq:dns-response"`,
		`ip6 daddr 2001:db8::b1 icmpv6 type 133-137 accept comment "bih-nfq:nd"`,
		`ip6 daddr 2001:db8::b1 counter queue num 4-5 fanout comment "bih-nfq:xlat-in"`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("rendered ruleset lacks %q:\n%s", want, text)
		}
	}
	// Own packets must be accepted before any queue rule of each chain.
	for _, blk := range strings.Split(text, "chain ")[1:] {
		q, own := strings.Index(blk, "queue num"), strings.Index(blk, "bih-nfq:own")
		if own < 0 || (q >= 0 && q < own) {
			t.Errorf("chain without own-mark accept ahead of its queue rules:\n%s", blk)
		}
	}
	// ND accept must precede the translation queue rule.
	if strings.Index(text, "bih-nfq:nd") > strings.Index(text, "bih-nfq:xlat-in") {
		t.Error("ND rule after xlat-in rule")
	}
}

func TestQueueText(t *testing.T) {
	for _, tc := range []struct {
		q    Queue
		want string
	}{
		{Queue{Num: 3}, "queue num 3"},
		{Queue{Num: 3, Count: 1, CPUFanout: true}, "queue num 3"},
		{Queue{Num: 3, Bypass: true}, "queue num 3 bypass"},
		{Queue{Num: 0, Count: 4}, "queue num 0-3"},
		{Queue{Num: 8, Count: 2, Bypass: true, CPUFanout: true}, "queue num 8-9 fanout,bypass"},
	} {
		if got := tc.q.text(); got != tc.want {
			t.Errorf("%+v: got %q, want %q", tc.q, got, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	for name, tc := range map[string]struct {
		mod  func(*Config)
		want string // substring of the error; "" means valid
	}{
		"ok":          {func(*Config) {}, ""},
		"bad table":   {func(c *Config) { c.Table4 = "bih nfq" }, "Table4"},
		"long table":  {func(c *Config) { c.Table6 = strings.Repeat("a", 33) }, "Table6"},
		"zero mark":   {func(c *Config) { c.Mark = 0 }, "Mark"},
		"no pools":    {func(c *Config) { c.Pools = nil }, "Pools"},
		"v6 pool":     {func(c *Config) { c.Pools = []netip.Prefix{netip.MustParsePrefix("2001:db8::/64")} }, "Pools"},
		"host bits":   {func(c *Config) { c.Pools = []netip.Prefix{netip.MustParsePrefix("10.170.160.1/20")} }, "Pools"},
		"no source6":  {func(c *Config) { c.Source6 = netip.Addr{} }, "Source6"},
		"v4 source6":  {func(c *Config) { c.Source6 = netip.MustParseAddr("::ffff:1.2.3.4") }, "Source6"},
		"overlap":     {func(c *Config) { c.DNS = Queue{Num: 5} }, "overlap"},
		"overflow":    {func(c *Config) { c.DNS = Queue{Num: 65535, Count: 2} }, "65535"},
		"adjacent ok": {func(c *Config) { c.DNS = Queue{Num: 6, Count: 3} }, ""},
		"below ok":    {func(c *Config) { c.DNS = Queue{Num: 0, Count: 4} }, ""},
		"below touch": {func(c *Config) { c.DNS = Queue{Num: 0, Count: 5} }, "overlap"},
	} {
		t.Run(name, func(t *testing.T) {
			c := testConfig()
			tc.mod(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
			if _, rerr := Render(c); (rerr == nil) != (err == nil) {
				t.Fatalf("Render error %v disagrees with Validate %v", rerr, err)
			}
		})
	}
}
