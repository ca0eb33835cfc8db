package config

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/bih-nfq/bih-nfq/translate"
)

func TestParseGood(t *testing.T) {
	full := `# every translation key
translation:
  map:
    - 172.21.112.1/32=2001:db8:b1a5::1/128
    - 10.170.160.0/24=2001:db8:ca5a::/120
  pref64: 64:ff9b::/96
  icmp-source4: 192.0.0.8
  icmp-source6: 2001:db8::8
  mode: router
  lowest-ipv6-mtu: 1400
  ipv6-mtu: 9000
  ipv4-mtu: 576
  udp-zero-checksum: drop
  ignore-tos: true
`
	withDefaults := func(f func(*Translation)) Config {
		c := Default()
		f(&c.Translation)
		return c
	}
	cases := []struct {
		name string
		in   string
		want Config
	}{
		{"empty", "", Default()},
		{"comments only", "# nothing set\n", Default()},
		{"empty section", "translation:\n", Default()},
		{"null value keeps default", "translation:\n  lowest-ipv6-mtu:\n  map: [\"192.0.2.1=2001:db8::1\"]\n",
			withDefaults(func(t *Translation) { t.Map = []string{"192.0.2.1=2001:db8::1"} })},
		{"full", full, withDefaults(func(t *Translation) {
			*t = Translation{
				Map:             []string{"172.21.112.1/32=2001:db8:b1a5::1/128", "10.170.160.0/24=2001:db8:ca5a::/120"},
				Pref64:          netip.MustParsePrefix("64:ff9b::/96"),
				ICMPSource4:     netip.MustParseAddr("192.0.0.8"),
				ICMPSource6:     netip.MustParseAddr("2001:db8::8"),
				Mode:            ModeRouter,
				LowestIPv6MTU:   1400,
				IPv6MTU:         9000,
				IPv4MTU:         576,
				UDPZeroChecksum: UDPZeroDrop,
				IgnoreTOS:       true,
			}
		})},
		{"alias", "translation:\n  ipv6-mtu: &mtu 1400\n  ipv4-mtu: *mtu\n",
			withDefaults(func(t *Translation) { t.IPv6MTU, t.IPv4MTU = 1400, 1400 })},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Parse("bih-nfq.yaml", []byte(c.in))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func TestDefaultIsValid(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestParseBad(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{
		{"unknown top-level key", "translation: {}\npool2: {}\n",
			"f.yaml:2: pool2: unknown key (known here: mode, translation, pool, host, nft, queue, daemon, dns, router)"},
		{"unknown nested key", "translation:\n  map: []\n  pref46: 64:ff9b::/96\n",
			"f.yaml:3: translation.pref46: unknown key (known here: map, pref64, icmp-source4, icmp-source6, mode, lowest-ipv6-mtu, ipv6-mtu, ipv4-mtu, udp-zero-checksum, ignore-tos)"},
		{"not an integer", "translation:\n  ipv6-mtu: big\n",
			`f.yaml:2: translation.ipv6-mtu: want an integer, got "big"`},
		{"not a bool", "translation:\n  ignore-tos: maybe\n",
			`f.yaml:2: translation.ignore-tos: want true or false, got "maybe"`},
		{"map not a list", "translation:\n  map: 192.0.2.1=2001:db8::1\n",
			`f.yaml:2: translation.map: want a list of strings, got "192.0.2.1=2001:db8::1"`},
		{"mtu is a list", "translation:\n  ipv4-mtu: [1500]\n",
			`f.yaml:2: translation.ipv4-mtu: want an integer, got a list`},
		{"section not a mapping", "translation:\n  - map\n",
			"f.yaml:2: translation: want a mapping of keys"},
		{"top level not a mapping", "- translation\n",
			"f.yaml:1: (top level): want a mapping of keys"},
		{"bad map entry", "translation:\n  map:\n    - 192.0.2.1=2001:db8::1\n    - 192.0.2.2-2001:db8::2\n",
			`f.yaml:4: translation.map[1]: explicit address mapping "192.0.2.2-2001:db8::2": want V4PFX=V6PFX`},
		{"map suffix too long", "translation:\n  map: [192.0.2.0/24=2001:db8::1/128]\n",
			"f.yaml:2: translation.map[0]: explicit address mapping 192.0.2.0/24=2001:db8::1/128: suffix length mismatch"},
		{"map overlap", "translation:\n  map:\n    - 192.0.2.0/24=2001:db8::/120\n    - 192.0.2.1=2001:db8:1::1\n",
			"f.yaml:2: translation.map: explicit address mappings 192.0.2.0/24=2001:db8::/120 and 192.0.2.1/32=2001:db8:1::1/128: IPv4 prefixes overlap"},
		{"pref64 length", "translation:\n  pref64: 64:ff9b::/80\n",
			"f.yaml:2: translation.pref64: RFC 6052 prefix 64:ff9b::/80: length must be"},
		{"icmp-source4 family", "translation:\n  icmp-source4: 2001:db8::1\n",
			"f.yaml:2: translation.icmp-source4: 2001:db8::1 is not an IPv4 address"},
		{"icmp-source6 garbage", "translation:\n  icmp-source6: router\n",
			`f.yaml:2: translation.icmp-source6: want an IP address, got "router"`},
		{"pref64 garbage", "translation:\n  pref64: nat64\n",
			`f.yaml:2: translation.pref64: want an IP prefix, got "nat64"`},
		{"icmp-source6 link-local", "translation:\n  icmp-source6: fe80::1\n",
			"f.yaml:2: translation.icmp-source6: fe80::1 is not a unicast address"},
		{"mode", "translation:\n\n  mode: bridge\n",
			`f.yaml:3: translation.mode: "bridge" is not host or router`},
		{"lowest-ipv6-mtu", "translation:\n  lowest-ipv6-mtu: 1000\n",
			"f.yaml:2: translation.lowest-ipv6-mtu: 1000 is outside 1280..65535"},
		{"ipv4-mtu", "translation:\n  ipv4-mtu: 70000\n",
			"f.yaml:2: translation.ipv4-mtu: 70000 is outside 68..65535"},
		{"negative ipv6-mtu", "translation:\n  ipv6-mtu: -1\n",
			"f.yaml:2: translation.ipv6-mtu: -1 is outside 1280..65535"},
		{"udp-zero-checksum", "translation:\n  udp-zero-checksum: ignore\n",
			`f.yaml:2: translation.udp-zero-checksum: "ignore" is not compute or drop`},
		{"duplicate key", "translation:\n  mode: host\n  mode: router\n",
			"f.yaml:3: translation.mode: duplicate key (first set at line 2)"},
		{"syntax", "translation:\n\tmode: host\n",
			"f.yaml: line 2: found character that cannot start any token"},
		{"two documents", "translation: {}\n---\ntranslation: {}\n",
			"f.yaml: more than one YAML document"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(c.in))
			if err == nil {
				t.Fatalf("no error, want %q", c.want)
			}
			if !strings.HasPrefix(err.Error(), c.want) {
				t.Errorf("error\n %q\nwant prefix\n %q", err, c.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
		})
	}
}

func TestTranslateConfig(t *testing.T) {
	c, err := Parse("f.yaml", []byte(`translation:
  map: [172.21.112.1/32=2001:db8:b1a5::1/128]
  pref64: 2001:db8:64::/96
  icmp-source4: 192.0.0.8
  icmp-source6: 2001:db8::8
  mode: router
  udp-zero-checksum: drop
  ignore-tos: true
  ipv4-mtu: 1400
`))
	if err != nil {
		t.Fatal(err)
	}
	tc, err := c.Translation.TranslateConfig()
	if err != nil {
		t.Fatal(err)
	}
	if tc.ICMPSource4 != netip.MustParseAddr("192.0.0.8") || tc.ICMPSource6 != netip.MustParseAddr("2001:db8::8") ||
		!tc.Router || !tc.IgnoreTOS || tc.UDPZeroChecksum != translate.UDPZeroDrop ||
		tc.LowestIPv6MTU != 1280 || tc.IPv6MTU != 1500 || tc.IPv4MTU != 1400 {
		t.Errorf("config %+v", tc)
	}
	// The explicit mapping wins over the prefix (RFC 7757 §3.3); the prefix
	// serves the rest.
	for _, m := range []struct{ v4, v6 string }{
		{"172.21.112.1", "2001:db8:b1a5::1"},
		{"192.0.2.33", "2001:db8:64::c000:221"},
	} {
		a6, ok := tc.Mapper.To6(netip.MustParseAddr(m.v4).As4())
		if !ok || netip.AddrFrom16(a6) != netip.MustParseAddr(m.v6) {
			t.Errorf("To6(%s) = %v, %v; want %s", m.v4, netip.AddrFrom16(a6), ok, m.v6)
		}
		a4, ok := tc.Mapper.To4(netip.MustParseAddr(m.v6).As16())
		if !ok || netip.AddrFrom4(a4) != netip.MustParseAddr(m.v4) {
			t.Errorf("To4(%s) = %v, %v; want %s", m.v6, netip.AddrFrom4(a4), ok, m.v4)
		}
	}
	if _, ok := tc.Mapper.To4(netip.MustParseAddr("2001:db8:ffff::1").As16()); ok {
		t.Error("an address outside both mappings was mapped")
	}
	if _, err := translate.New(tc); err != nil {
		t.Errorf("translate.New refuses the built config: %v", err)
	}

	d := Default()
	if _, err := d.Translation.TranslateConfig(); !errors.Is(err, ErrNoMapping) {
		t.Errorf("defaults: %v, want ErrNoMapping", err)
	}
	d.Translation.Mode = "bridge"
	if _, err := d.Translation.TranslateConfig(); err == nil || err.Error() != `translation.mode: "bridge" is not host or router` {
		t.Errorf("invalid section: %v", err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "bih-nfq.yaml")
	if err := os.WriteFile(p, []byte("translation:\n  ipv6-mtu: 1280\n  bogus: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err == nil || !strings.HasPrefix(err.Error(), p+":3: translation.bogus: unknown key") {
		t.Errorf("Load: %v", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil || !strings.HasPrefix(err.Error(), "read config: ") {
		t.Errorf("Load missing: %v", err)
	}
}

func TestRouterSection(t *testing.T) {
	c, err := Parse("r.yaml", []byte("mode: router\nrouter:\n  lan: [lan0]\n  hosts: [192.168.1.0/24, 10.9.0.7]\n  prefix: 2001:db8:1:64::/96\n  map: [\"192.168.1.9=2001:db8::9\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !c.RouterMode() || c.HostMode() {
		t.Fatalf("mode %q: router %v host %v", c.Mode, c.RouterMode(), c.HostMode())
	}
	p, err := c.Router.Plan()
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Hosts) != 2 || p.Hosts[1].String() != "10.9.0.7/32" || p.Prefix.String() != "2001:db8:1:64::/96" || len(p.Map) != 1 {
		t.Fatalf("plan %+v", p)
	}
	if c, err := Parse("b.yaml", []byte("mode: host+router\nrouter:\n  lan: [lan0]\n  prefix: 2001:db8:1:64::/96\n")); err != nil || !c.HostMode() || !c.RouterMode() {
		t.Fatalf("host+router: %v", err)
	}
	// Host mode does not read the router section.
	if _, err := Parse("h.yaml", []byte("router:\n  lan: []\n")); err != nil {
		t.Fatalf("host mode refused an empty router section: %v", err)
	}
	for body, key := range map[string]string{
		"mode: bridge\n":                         "mode",
		"mode: router\n":                         "router.lan",
		"mode: router\nrouter:\n  lan: [lan0]\n": "router.prefix",
		"mode: router\nrouter:\n  lan: [\"a b\"]\n  prefix: 2001:db8::/96\n":                         "router.lan[0]",
		"mode: router\nrouter:\n  lan: [lan0]\n  prefix: 64:ff9b::/96\n":                             "router.prefix",
		"mode: router\nrouter:\n  lan: [lan0]\n  prefix: 2001:db8::/80\n":                            "router.prefix",
		"mode: router\nrouter:\n  lan: [lan0]\n  prefix: 2001:db8::/96\n  hosts: [192.168.1.1/24]\n": "router.hosts[0]",
		"mode: router\nrouter:\n  lan: [lan0]\n  map: [\"x\"]\n":                                     "router.map[0]",
		"mode: router\nrouter:\n  lan: [lan0]\n  prefix: 2001:db8::/96\n  proxy-ndp: maybe\n":        "router.proxy-ndp",
		"mode: router\nrouter:\n  lan: [lan0]\n  prefix: 2001:db8::/96\nqueue:\n  router: 32\n":      "queue.router",
		"mode: host+router\nrouter:\n  lan: [lan0]\n  prefix: 2001:db8::/96\nqueue:\n  router: 0\n":  "queue.router",
	} {
		_, err := Parse("f.yaml", []byte(body))
		if err == nil || !strings.Contains(err.Error(), key+":") {
			t.Errorf("%q: error %v, want one naming %s", body, err, key)
		}
	}
}
