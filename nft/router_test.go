package nft

import (
	"net/netip"
	"strings"
	"testing"
)

func routerConfig(noHost bool) Config {
	c := testConfig()
	c.NoHost = noHost
	c.Router = &Router{
		LAN:   []string{"lan0", "lan1"},
		Hosts: []netip.Prefix{netip.MustParsePrefix("192.168.1.0/24")},
		Addrs: []netip.Prefix{netip.MustParsePrefix("2001:db8:1:64::/96"), netip.MustParsePrefix("2001:db8:9::7/128")},
		Xlat:  Queue{Num: 16, Count: 2},
	}
	return c
}

func TestRenderRouter(t *testing.T) {
	for _, noHost := range []bool{false, true} {
		text, err := Render(routerConfig(noHost))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{
			"set lan4 {\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\telements = { 192.168.1.0/24 }",
			"set lan6 {\n\t\ttype ipv6_addr\n\t\tflags interval\n\t\telements = { 2001:db8:1:64::/96, 2001:db8:9::7/128 }",
			"type filter hook forward priority -160; policy accept;",
			"type filter hook forward priority mangle; policy accept;",
			`iifname "lan0" ip saddr @lan4 udp dport 53 counter queue num 32 bypass comment "bih-nfq:lan-dns-query"`,
			`iifname "lan1" ip saddr @lan4 ip daddr @pool4 counter queue num 16-17 comment "bih-nfq:lan-xlat-out"`,
			`iifname "lan0" ip saddr @lan4 udp dport 53 counter queue num 32 bypass comment "bih-nfq:lan-dns-local"`,
			`oifname "lan1" ip daddr @lan4 udp sport 53 counter queue num 32 bypass comment "bih-nfq:lan-dns-answer"`,
			`ip6 daddr @lan6 counter queue num 16-17 comment "bih-nfq:lan-xlat-in"`,
		} {
			if !strings.Contains(text, want) {
				t.Errorf("noHost=%v: rendered ruleset lacks %q:\n%s", noHost, want, text)
			}
		}
		// Router-only: the machine's own traffic is never queued for
		// translation, and no IPv6 DNS is intercepted.
		hostOnly := []string{`"bih-nfq:xlat-out"`, `"bih-nfq:xlat-in"`, `"bih-nfq:dns-response"`, `"bih-nfq:nd"`}
		for _, tag := range hostOnly {
			if got := strings.Contains(text, tag); got == noHost {
				t.Errorf("noHost=%v: rule %s present=%v", noHost, tag, got)
			}
		}
		// The DNS chain must run before the translation chain.
		if strings.Index(text, "chain forward-dns") > strings.Index(text, "chain forward {") {
			t.Error("forward-dns chain rendered after forward")
		}
	}
}

func TestValidateRouter(t *testing.T) {
	c := routerConfig(true)
	c.Source6 = netip.Addr{} // not needed without host mode
	if err := c.Validate(); err != nil {
		t.Fatalf("router-only config refused: %v", err)
	}
	for name, spoil := range map[string]func(*Config){
		"no LAN":        func(c *Config) { c.Router.LAN = nil },
		"bad LAN name":  func(c *Config) { c.Router.LAN = []string{"a b"} },
		"no hosts":      func(c *Config) { c.Router.Hosts = nil },
		"host bits":     func(c *Config) { c.Router.Hosts = []netip.Prefix{netip.MustParsePrefix("192.168.1.1/24")} },
		"v6 in hosts":   func(c *Config) { c.Router.Hosts = []netip.Prefix{netip.MustParsePrefix("2001:db8::/64")} },
		"no addrs":      func(c *Config) { c.Router.Addrs = nil },
		"v4 in addrs":   func(c *Config) { c.Router.Addrs = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")} },
		"queue overlap": func(c *Config) { c.Router.Xlat = Queue{Num: 31, Count: 2} },
		"neither mode":  func(c *Config) { c.Router = nil },
		"host overlap": func(c *Config) {
			c.NoHost = false
			c.Source6 = netip.MustParseAddr("2001:db8::1")
			c.Router.Xlat = Queue{Num: 5}
		},
		"host needs src6": func(c *Config) { c.NoHost = false },
	} {
		c := routerConfig(true)
		c.Source6 = netip.Addr{}
		spoil(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestPrefixElements6(t *testing.T) {
	for in, want := range map[string]string{
		"2001:db8:1:64::/96":   "2001:db8:1:64:0:1::",
		"2001:db8::7/128":      "2001:db8::8",
		"2001:db8:0:ffff::/64": "2001:db8:1::",
		"fe80::/10":            "fec0::",
	} {
		els, err := prefixElements(netip.MustParsePrefix(in))
		if err != nil {
			t.Fatal(err)
		}
		end := netip.AddrFrom16([16]byte(els[1].Key))
		if end.String() != want || !els[1].IntervalEnd {
			t.Errorf("%s: end %v, want %s", in, end, want)
		}
	}
	if _, err := prefixElements(netip.MustParsePrefix("ffff::/16")); err == nil {
		t.Error("prefix reaching the top accepted")
	}
}

// With the stub resolver (NoHostDNS) the host's DNS is not queued; router
// DNS rules stay.
func TestRenderNoHostDNS(t *testing.T) {
	c := testConfig()
	c.NoHostDNS = true
	text, err := Render(c)
	if err != nil {
		t.Fatal(err)
	}
	// ip: output and input; ip6: prerouting only.
	if strings.Contains(text, "dns-") || strings.Count(text, "\tchain ") != 3 {
		t.Fatalf("host DNS rules with the stub resolver:\n%s", text)
	}
	if !strings.Contains(text, `"bih-nfq:xlat-out"`) || !strings.Contains(text, `"bih-nfq:xlat-in"`) {
		t.Fatalf("translation rules missing:\n%s", text)
	}
	c = routerConfig(false)
	c.NoHostDNS = true
	if text, err = Render(c); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(text, `"bih-nfq:dns-query"`) || !strings.Contains(text, `"bih-nfq:lan-dns-query"`) {
		t.Fatalf("stub + router: want LAN DNS rules only:\n%s", text)
	}
}
