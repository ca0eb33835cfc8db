package translate

import (
	"net/netip"
	"strings"
	"testing"
)

// rfc6052Table1 is RFC 6052 §2.4, Table 1.
var rfc6052Table1 = []struct{ prefix, v4, v6 string }{
	{"2001:db8::/32", "192.0.2.33", "2001:db8:c000:221::"},
	{"2001:db8:100::/40", "192.0.2.33", "2001:db8:1c0:2:21::"},
	{"2001:db8:122::/48", "192.0.2.33", "2001:db8:122:c000:2:2100::"},
	{"2001:db8:122:300::/56", "192.0.2.33", "2001:db8:122:3c0:0:221::"},
	{"2001:db8:122:344::/64", "192.0.2.33", "2001:db8:122:344:c0:2:2100::"},
	{"2001:db8:122:344::/96", "192.0.2.33", "2001:db8:122:344::192.0.2.33"},
}

func mustRFC6052(t testing.TB, s string) *RFC6052Prefix {
	t.Helper()
	p, err := ParseRFC6052Prefix(s)
	if err != nil {
		t.Fatalf("ParseRFC6052Prefix(%q): %v", s, err)
	}
	return p
}

func TestRFC6052Table1(t *testing.T) {
	for _, r := range rfc6052Table1 {
		p := mustRFC6052(t, r.prefix)
		v4 := netip.MustParseAddr(r.v4).As4()
		v6 := netip.MustParseAddr(r.v6).As16()
		if got, ok := p.To6(v4); !ok || got != v6 {
			t.Errorf("%s: To6(%s) = %v, %v; want %s (RFC 6052 Table 1)", r.prefix, r.v4, netip.AddrFrom16(got), ok, r.v6)
		}
		if got, ok := p.To4(v6); !ok || got != v4 {
			t.Errorf("%s: To4(%s) = %v, %v; want %s (RFC 6052 Table 1)", r.prefix, r.v6, netip.AddrFrom4(got), ok, r.v4)
		}
		if got := p.Prefix().String(); got != r.prefix {
			t.Errorf("Prefix() = %s, want %s", got, r.prefix)
		}
	}
}

// RFC 6052 Table 2 shows the address format; the translator itself must not
// use it, because 192.0.2.33 is not global (§3.1).
func TestRFC6052Table2(t *testing.T) {
	p := mustRFC6052(t, "64:ff9b::/96")
	v4 := netip.MustParseAddr("192.0.2.33").As4()
	v6 := netip.MustParseAddr("64:ff9b::192.0.2.33").As16()
	if got := p.Embed(v4); got != v6 {
		t.Errorf("Embed(192.0.2.33) = %v, want 64:ff9b::192.0.2.33 (RFC 6052 Table 2)", netip.AddrFrom16(got))
	}
	if got, ok := p.Extract(v6); !ok || got != v4 {
		t.Errorf("Extract(64:ff9b::192.0.2.33) = %v, %v; want 192.0.2.33 (RFC 6052 Table 2)", netip.AddrFrom4(got), ok)
	}
	if _, ok := p.To6(v4); ok {
		t.Error("To6 used the Well-Known Prefix for non-global 192.0.2.33 (RFC 6052 §3.1)")
	}
	if _, ok := p.To4(v6); ok {
		t.Error("To4 accepted the Well-Known Prefix with non-global 192.0.2.33 (RFC 6052 §3.1)")
	}
}

// RFC 6052 §3.1: Well-Known Prefix only with global IPv4 addresses; a
// Network-Specific Prefix has no such limit.
func TestRFC6052WellKnownPrefixNonGlobal(t *testing.T) {
	wkp := mustRFC6052(t, "64:ff9b::/96")
	nsp := mustRFC6052(t, "2001:db8:64::/96")
	for _, s := range []string{"0.1.2.3", "10.1.2.3", "127.0.0.1", "169.254.1.1", "172.16.0.1", "172.31.255.255",
		"192.0.0.1", "192.0.2.1", "192.88.99.1", "192.168.1.1", "198.18.0.1", "198.19.255.255", "198.51.100.1",
		"203.0.113.1", "224.0.0.1", "239.1.1.1", "240.0.0.1", "255.255.255.255"} {
		a := netip.MustParseAddr(s).As4()
		if _, ok := wkp.To6(a); ok {
			t.Errorf("WKP To6(%s) mapped a non-global address", s)
		}
		if _, ok := wkp.To4(wkp.Embed(a)); ok {
			t.Errorf("WKP To4(64:ff9b::%s) mapped a non-global address", s)
		}
		if _, ok := nsp.To6(a); !ok {
			t.Errorf("NSP To6(%s) refused", s)
		}
	}
	for _, s := range []string{"8.8.8.8", "1.1.1.1", "172.32.0.1", "192.0.3.1", "198.20.0.1", "100.64.0.1", "223.255.255.255"} {
		a := netip.MustParseAddr(s).As4()
		v6, ok := wkp.To6(a)
		if !ok {
			t.Errorf("WKP To6(%s) refused a global address", s)
			continue
		}
		if back, ok := wkp.To4(v6); !ok || back != a {
			t.Errorf("WKP To4(%v) = %v, %v; want %s", netip.AddrFrom16(v6), netip.AddrFrom4(back), ok, s)
		}
	}
}

func TestRFC6052To4Checks(t *testing.T) {
	for _, tc := range []struct {
		prefix, v6 string
		want       string // "" for no mapping
	}{
		{"2001:db8::/32", "2001:db9:c000:221::", ""},                   // other prefix
		{"2001:db8::/32", "2001:db8:c000:221:100::", ""},               // u octet set (§2.2)
		{"2001:db8:122:344::/64", "2001:db8:122:344:1c0:2:2100::", ""}, // u octet set
		{"2001:db8:122:344::/96", "2001:db8:122:345::c000:221", ""},    // other prefix
		{"2001:db8::/32", "2001:db8:c000:221::1", "192.0.2.33"},        // suffix ignored (§2.2)
		{"2001:db8:100::/40", "2001:db8:1c0:2:21:ffff:ffff:ffff", "192.0.2.33"},
		{"2001:db8:122:344::/64", "2001:db8:122:344:c0:2:21ff:ffff", "192.0.2.33"},
	} {
		p := mustRFC6052(t, tc.prefix)
		got, ok := p.To4(netip.MustParseAddr(tc.v6).As16())
		switch {
		case tc.want == "" && ok:
			t.Errorf("%s: To4(%s) = %v, want no mapping", tc.prefix, tc.v6, netip.AddrFrom4(got))
		case tc.want != "" && (!ok || netip.AddrFrom4(got) != netip.MustParseAddr(tc.want)):
			t.Errorf("%s: To4(%s) = %v, %v; want %s", tc.prefix, tc.v6, netip.AddrFrom4(got), ok, tc.want)
		}
	}
}

func TestRFC6052PrefixValidation(t *testing.T) {
	for _, tc := range []struct{ prefix, want string }{
		{"2001:db8::/33", "length must be 32, 40, 48, 56, 64 or 96"},
		{"2001:db8::/128", "length must be"},
		{"2001:db8::1/96", "bits set beyond the prefix length"},
		{"2001:db8:0:0:100::/96", "u octet"},
		{"192.0.2.0/24", "not an IPv6 prefix"},
		{"::ffff:0:0/96", "IPv4-mapped"},
		{"nonsense", "RFC 6052 prefix"},
	} {
		_, err := ParseRFC6052Prefix(tc.prefix)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseRFC6052Prefix(%q) error = %v, want it to contain %q", tc.prefix, err, tc.want)
		}
	}
}

func TestRFC6052NoAllocs(t *testing.T) {
	p := mustRFC6052(t, "2001:db8:122::/48")
	w := mustRFC6052(t, "64:ff9b::/96")
	v4 := netip.MustParseAddr("192.0.2.33").As4()
	v6 := netip.MustParseAddr("2001:db8:122:c000:2:2100::").As16()
	g := netip.MustParseAddr("64:ff9b::8.8.8.8").As16()
	if n := testing.AllocsPerRun(1000, func() {
		p.To6(v4)
		p.To4(v6)
		w.To4(g)
	}); n != 0 {
		t.Errorf("RFC 6052 mapping allocates %v times, want 0", n)
	}
}

// FuzzRFC6052: for every valid prefix, Extract undoes Embed, and To4 refuses
// addresses whose u octet is set.
func FuzzRFC6052(f *testing.F) {
	for _, r := range rfc6052Table1 {
		f.Add(r.prefix, uint32(0xc0000221))
	}
	f.Add("64:ff9b::/96", uint32(0x08080808))
	f.Fuzz(func(t *testing.T, s string, x uint32) {
		p, err := ParseRFC6052Prefix(s)
		if err != nil {
			return
		}
		a := [4]byte{byte(x >> 24), byte(x >> 16), byte(x >> 8), byte(x)}
		v6 := p.Embed(a)
		if !p.Prefix().Contains(netip.AddrFrom16(v6)) || v6[8] != 0 {
			t.Fatalf("%s: Embed(%v) = %v", s, netip.AddrFrom4(a), netip.AddrFrom16(v6))
		}
		if back, ok := p.Extract(v6); !ok || back != a {
			t.Fatalf("%s: Extract(Embed(%v)) = %v, %v", s, netip.AddrFrom4(a), netip.AddrFrom4(back), ok)
		}
		v6[8] = 1
		if _, ok := p.To4(v6); ok {
			t.Fatalf("%s: To4 accepted a set u octet", s)
		}
	})
}
