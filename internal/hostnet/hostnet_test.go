package hostnet

import (
	"net/netip"
	"strings"
	"testing"
)

func TestDeriveSource6(t *testing.T) {
	p := netip.MustParsePrefix("2001:db8:1:2::/64")
	a1, err := DeriveSource6(p, []byte("0123456789abcdef0123456789abcdef\n"))
	if err != nil {
		t.Fatal(err)
	}
	a2, _ := DeriveSource6(p, []byte("0123456789abcdef0123456789abcdef\n"))
	b, _ := DeriveSource6(p, []byte("fedcba9876543210fedcba9876543210\n"))
	if a1 != a2 {
		t.Fatalf("not stable: %v vs %v", a1, a2)
	}
	if a1 == b {
		t.Fatalf("two machine ids gave %v", a1)
	}
	for _, a := range []netip.Addr{a1, b} {
		if !p.Contains(a) || a == p.Addr() {
			t.Fatalf("%v not a host address in %v", a, p)
		}
	}
	// Host bits of the prefix are ignored.
	c, err := DeriveSource6(netip.MustParsePrefix("2001:db8:1:2::5/64"), []byte("x"))
	if err != nil || !p.Contains(c) {
		t.Fatalf("unmasked prefix: %v %v", c, err)
	}
	for _, bad := range []string{"10.0.0.0/8", "2001:db8::/96", "::ffff:0:0/96"} {
		if _, err := DeriveSource6(netip.MustParsePrefix(bad), []byte("x")); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	if _, err := DeriveSource6(p, nil); err == nil {
		t.Error("empty machine id accepted")
	}
}

func TestDeriveSource6AvoidsReserved(t *testing.T) {
	p := netip.MustParsePrefix("2001:db8::/64")
	for i := range 2000 {
		a, err := DeriveSource6(p, []byte{byte(i), byte(i >> 8)})
		if err != nil {
			t.Fatal(err)
		}
		iid := a.As16()
		if iid[8] == 0xfd && iid[9] == 0xff && iid[10] == 0xff && iid[11] == 0xff &&
			iid[12] == 0xff && iid[13] == 0xff && iid[14] == 0xff && iid[15] >= 0x80 {
			t.Fatalf("reserved anycast identifier %v", a)
		}
		if a == p.Addr() {
			t.Fatalf("subnet-router anycast %v", a)
		}
	}
}

func TestLinkMTU(t *testing.T) {
	for _, tc := range [][2]int{{1500, 1480}, {1280, 1260}, {9000, 8980}, {1000, 1260}} {
		if got := LinkMTU(tc[0]); got != tc[1] {
			t.Errorf("LinkMTU(%d) = %d, want %d", tc[0], got, tc[1])
		}
	}
}

func TestChoosePool(t *testing.T) {
	primary, secondary := netip.MustParsePrefix("10.170.160.0/20"), netip.MustParsePrefix("172.21.80.0/20")
	pools := []netip.Prefix{primary, secondary}
	cs := overlapping(pools, netip.MustParsePrefix("10.0.0.0/8"), "eth0", "route")
	cs = append(cs, overlapping(pools, netip.MustParsePrefix("0.0.0.0/0"), "eth0", "route")...)
	if len(cs) != 1 || cs[0].Pool != primary || !strings.Contains(cs[0].String(), "10.0.0.0/8") {
		t.Fatalf("conflicts %v", cs)
	}
	if p, err := ChoosePool(pools, nil); err != nil || p != primary {
		t.Fatalf("no conflict: %v %v", p, err)
	}
	if p, err := ChoosePool(pools, cs); err != nil || p != secondary {
		t.Fatalf("primary in use: %v %v", p, err)
	}
	cs = append(cs, overlapping(pools, netip.MustParsePrefix("172.21.81.7/32"), "wlan0", "address")...)
	if _, err := ChoosePool(pools, cs); err == nil {
		t.Fatal("both pools in use, no error")
	}
}

func TestValidate(t *testing.T) {
	ok := Config{Pools: []netip.Prefix{netip.MustParsePrefix("10.170.160.0/20")}}.WithDefaults()
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*Config){
		"LinkName": func(c *Config) { c.LinkName = "a-very-long-link-name" },
		"Source4":  func(c *Config) { c.Source4 = netip.MustParsePrefix("2001:db8::1/128") },
		"Pools":    func(c *Config) { c.Pools = []netip.Prefix{netip.MustParsePrefix("172.21.112.0/20")} },
		"Source6":  func(c *Config) { c.Source6 = netip.MustParseAddr("fe80::1") },
	} {
		c := ok
		mod(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: got %v", name, err)
		}
	}
}
