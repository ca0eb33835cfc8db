package translate

import (
	"net/netip"
	"testing"
)

func TestHostPrefix(t *testing.T) {
	hosts := []netip.Prefix{netip.MustParsePrefix("192.168.1.0/24"), netip.MustParsePrefix("10.9.0.8/30")}
	h, err := NewHostPrefix(netip.MustParsePrefix("2001:db8:1:64::/96"), hosts)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		v4, v6 string
		ok     bool
	}{
		{"192.168.1.10", "2001:db8:1:64::c0a8:10a", true},
		{"10.9.0.11", "2001:db8:1:64::a09:b", true},
		{"10.9.0.12", "2001:db8:1:64::a09:c", false}, // outside the /30
		{"192.168.2.10", "2001:db8:1:64::c0a8:20a", false},
	} {
		a4, a6 := netip.MustParseAddr(c.v4).As4(), netip.MustParseAddr(c.v6).As16()
		got6, ok := h.To6(a4)
		if ok != c.ok || ok && got6 != a6 {
			t.Errorf("To6(%s) = %v %v, want %s %v", c.v4, netip.AddrFrom16(got6), ok, c.v6, c.ok)
		}
		got4, ok := h.To4(a6)
		if ok != c.ok || ok && got4 != a4 {
			t.Errorf("To4(%s) = %v %v, want %s %v", c.v6, netip.AddrFrom4(got4), ok, c.v4, c.ok)
		}
	}
	// Outside the IPv6 prefix nothing maps.
	if _, ok := h.To4(netip.MustParseAddr("2001:db8:1:65::c0a8:10a").As16()); ok {
		t.Error("address outside the prefix mapped")
	}
	if n := testing.AllocsPerRun(100, func() { h.To6([4]byte{192, 168, 1, 1}) }); n != 0 {
		t.Errorf("To6 allocates %v", n)
	}
	for name, args := range map[string]struct {
		p     string
		hosts []netip.Prefix
	}{
		"well-known prefix": {"64:ff9b::/96", hosts},
		"bad length":        {"2001:db8::/80", hosts},
		"no hosts":          {"2001:db8::/96", nil},
		"host bits":         {"2001:db8::/96", []netip.Prefix{netip.MustParsePrefix("192.168.1.1/24")}},
	} {
		if _, err := NewHostPrefix(netip.MustParsePrefix(args.p), args.hosts); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
