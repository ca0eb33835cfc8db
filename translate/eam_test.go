package translate

import (
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"testing"
)

// rfc7757Figure1 is the example EAMT of RFC 7757 §3.2, Figure 1, written as
// the RFC writes it (entry 1 without prefix lengths).
var rfc7757Figure1 = []string{
	"192.0.2.1=2001:db8:aaaa::",
	"192.0.2.2/32=2001:db8:bbbb::b/128",
	"192.0.2.16/28=2001:db8:cccc::/124",
	"192.0.2.128/26=2001:db8:dddd::/64",
	"192.0.2.192/29=2001:db8:eeee:8::/62",
	"192.0.2.224/31=64:ff9b::/127",
}

// rfc7757Figure7 holds the rows of RFC 7757 Appendix B, Figure 7 that the
// EAMT of Figure 1 translates (the last row is RFC 6052's, see chain_test).
var rfc7757Figure7 = []struct{ v4, v6 string }{
	{"192.0.2.1", "2001:db8:aaaa::"},
	{"192.0.2.2", "2001:db8:bbbb::b"},
	{"192.0.2.16", "2001:db8:cccc::"},
	{"192.0.2.24", "2001:db8:cccc::8"},
	{"192.0.2.31", "2001:db8:cccc::f"},
	{"192.0.2.128", "2001:db8:dddd::"},
	{"192.0.2.152", "2001:db8:dddd:0:6000::"},
	{"192.0.2.183", "2001:db8:dddd:0:dc00::"},
	{"192.0.2.191", "2001:db8:dddd:0:fc00::"},
	{"192.0.2.195", "2001:db8:eeee:9:8000::"},
	{"192.0.2.225", "64:ff9b::1"},
}

func mustEAMTable(t testing.TB, specs ...string) *EAMTable {
	t.Helper()
	m, err := ParseEAMTable(specs)
	if err != nil {
		t.Fatalf("ParseEAMTable(%q): %v", specs, err)
	}
	return m
}

func TestEAMRFC7757Figure7(t *testing.T) {
	m := mustEAMTable(t, rfc7757Figure1...)
	for _, r := range rfc7757Figure7 {
		v4 := netip.MustParseAddr(r.v4).As4()
		v6 := netip.MustParseAddr(r.v6).As16()
		got6, ok := m.To6(v4)
		if !ok || got6 != v6 {
			t.Errorf("To6(%s) = %v, %v; want %s (RFC 7757 Figure 7)", r.v4, netip.AddrFrom16(got6), ok, r.v6)
		}
		got4, ok := m.To4(v6)
		if !ok || got4 != v4 {
			t.Errorf("To4(%s) = %v, %v; want %s (RFC 7757 Figure 7)", r.v6, netip.AddrFrom4(got4), ok, r.v4)
		}
	}
}

func TestEAMUnmatched(t *testing.T) {
	m := mustEAMTable(t, rfc7757Figure1...)
	// RFC 7757 §3.3.1 step 2: no match aborts the EAM algorithm.
	for _, s := range []string{"192.0.2.248", "192.0.2.0", "192.0.2.3", "192.0.2.32", "192.0.2.200", "192.0.2.226", "0.0.0.0", "255.255.255.255"} {
		if got, ok := m.To6(netip.MustParseAddr(s).As4()); ok {
			t.Errorf("To6(%s) = %v, want no mapping", s, netip.AddrFrom16(got))
		}
	}
	for _, s := range []string{"2001:db8:aaaa::1", "2001:db8:bbbb::a", "2001:db8:cccc::10", "2001:db8:dddd:1::", "2001:db8:eeee:c::", "64:ff9b::2", "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"} {
		if got, ok := m.To4(netip.MustParseAddr(s).As16()); ok {
			t.Errorf("To4(%s) = %v, want no mapping", s, netip.AddrFrom4(got))
		}
	}
}

// RFC 7757 §3.3.2 step 5: bits beyond 32 are discarded, so every address of
// a shorter IPv6 prefix maps.
func TestEAMTo4DiscardsTrailingBits(t *testing.T) {
	m := mustEAMTable(t, rfc7757Figure1...)
	for _, r := range []struct{ v6, v4 string }{
		{"2001:db8:dddd:0:6000::1", "192.0.2.152"},
		{"2001:db8:dddd:0:63ff:ffff:ffff:ffff", "192.0.2.152"},
		{"2001:db8:eeee:b:ffff::", "192.0.2.199"},
	} {
		got, ok := m.To4(netip.MustParseAddr(r.v6).As16())
		if want := netip.MustParseAddr(r.v4).As4(); !ok || got != want {
			t.Errorf("To4(%s) = %v, %v; want %s", r.v6, netip.AddrFrom4(got), ok, r.v4)
		}
	}
}

// RFC 7757 Appendix A.2 (IVI) and §5: a 0.0.0.0/0 entry carries all 32 bits.
func TestEAMWholeIPv4Space(t *testing.T) {
	m := mustEAMTable(t, "0.0.0.0/0=2001:db8:ff00::/40")
	v4 := netip.MustParseAddr("198.51.100.64").As4()
	v6 := netip.MustParseAddr("2001:db8:ffc6:3364:4000::").As16()
	if got, ok := m.To6(v4); !ok || got != v6 {
		t.Errorf("To6 = %v, %v; want 2001:db8:ffc6:3364:4000:: (RFC 7757 §5)", netip.AddrFrom16(got), ok)
	}
	if got, ok := m.To4(v6); !ok || got != v4 {
		t.Errorf("To4 = %v, %v; want 198.51.100.64 (RFC 7757 §5)", netip.AddrFrom4(got), ok)
	}
}

func TestEAMParseDefaultsToHostPrefixes(t *testing.T) {
	e, err := ParseEAMEntry(" 192.0.2.1 = 2001:db8:aaaa:: ")
	if err != nil {
		t.Fatal(err)
	}
	if e.V4.Bits() != 32 || e.V6.Bits() != 128 {
		t.Errorf("ParseEAMEntry without lengths = %v, want /32=/128 (RFC 7757 §3.2)", e)
	}
	if got := e.String(); got != "192.0.2.1/32=2001:db8:aaaa::/128" {
		t.Errorf("String() = %q", got)
	}
}

func TestEAMValidation(t *testing.T) {
	for _, tc := range []struct {
		specs []string
		want  string
	}{
		{[]string{"192.0.2.0/24=2001:db8::/124"}, "suffix length mismatch"},
		{[]string{"0.0.0.0/0=2001:db8::/100"}, "suffix length mismatch"},
		{[]string{"192.0.2.1/24=2001:db8::/120"}, "IPv4 prefix 192.0.2.1/24 has host bits set"},
		{[]string{"192.0.2.0/24=2001:db8::1/120"}, "IPv6 prefix 2001:db8::1/120 has host bits set"},
		{[]string{"2001:db8::/120=192.0.2.0/24"}, "is not an IPv4 prefix"},
		{[]string{"192.0.2.0/24=192.0.2.0/24"}, "is not an IPv6 prefix"},
		{[]string{"192.0.2.0/24"}, "want V4PFX=V6PFX"},
		{[]string{"192.0.2.0/33=2001:db8::/120"}, "IPv4 side"},
		{[]string{"192.0.2.0/24=bogus"}, "IPv6 side"},
		// RFC 7757 §5 Figure 2: overlapping IPv4 prefixes.
		{[]string{"0.0.0.0/0=2001:db8:ff00::/40", "198.51.100.64/32=2001:db8::abcd/128"}, "IPv4 prefixes overlap"},
		// RFC 7757 §5 Figure 3: identical IPv6 prefixes.
		{[]string{"198.51.100.8/32=2001:db8::1/128", "198.51.100.9/32=2001:db8::1/128"}, "IPv6 prefixes overlap"},
		{[]string{"198.51.100.0/24=2001:db8::/120", "203.0.113.0/25=2001:db8::80/121"}, "IPv6 prefixes overlap"},
		{[]string{"198.51.100.0/24=2001:db8::/120", "198.51.100.0/24=2001:db8:1::/120"}, "IPv4 prefixes overlap"},
	} {
		_, err := ParseEAMTable(tc.specs)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseEAMTable(%q) error = %v, want it to contain %q", tc.specs, err, tc.want)
		}
	}
	// Entries built directly are checked too.
	if _, err := NewEAMTable([]EAMEntry{{}}); err == nil {
		t.Error("NewEAMTable accepted a zero entry")
	}
}

func TestEAMEmptyTable(t *testing.T) {
	m, err := NewEAMTable(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.To6([4]byte{192, 0, 2, 1}); ok {
		t.Error("empty table mapped an IPv4 address")
	}
	if _, ok := m.To4([16]byte{0x20, 0x01, 0x0d, 0xb8}); ok {
		t.Error("empty table mapped an IPv6 address")
	}
}

// Every address of every entry comes back to itself, for random prefix
// pairs of equal suffix length (a bijection, RFC 7757 §3.3).
func TestEAMRoundTripRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(7757, 1))
	for i := 0; i < 200; i++ {
		n := r.IntN(33) // suffix bits
		l6 := 128 - n - r.IntN(128-n-8+1)
		if l6 < 8 {
			l6 = 8
		}
		var a4 [4]byte
		var a6 [16]byte
		for j := range a4 {
			a4[j] = byte(r.Uint32())
		}
		for j := range a6 {
			a6[j] = byte(r.Uint32())
		}
		p4 := netip.PrefixFrom(netip.AddrFrom4(a4), 32-n).Masked()
		p6 := netip.PrefixFrom(netip.AddrFrom16(a6), l6).Masked()
		if p6.Addr().Is4In6() {
			continue
		}
		m, err := NewEAMTable([]EAMEntry{{p4, p6}})
		if err != nil {
			t.Fatalf("%v=%v: %v", p4, p6, err)
		}
		for k := 0; k < 20; k++ {
			x := addr4Uint(p4.Addr().As4()) | r.Uint32()&^prefixMask4(uint8(32-n))
			v4 := [4]byte{byte(x >> 24), byte(x >> 16), byte(x >> 8), byte(x)}
			v6, ok := m.To6(v4)
			if !ok || !p6.Contains(netip.AddrFrom16(v6)) {
				t.Fatalf("%v=%v: To6(%v) = %v, %v", p4, p6, netip.AddrFrom4(v4), netip.AddrFrom16(v6), ok)
			}
			back, ok := m.To4(v6)
			if !ok || back != v4 {
				t.Fatalf("%v=%v: To4(To6(%v)) = %v, %v", p4, p6, netip.AddrFrom4(v4), netip.AddrFrom4(back), ok)
			}
		}
	}
}

func TestEAMNoAllocs(t *testing.T) {
	m := mustEAMTable(t, rfc7757Figure1...)
	v4 := netip.MustParseAddr("192.0.2.152").As4()
	v6 := netip.MustParseAddr("2001:db8:eeee:9:8000::").As16()
	if n := testing.AllocsPerRun(1000, func() {
		m.To6(v4)
		m.To4(v6)
	}); n != 0 {
		t.Errorf("EAM lookups allocate %v times, want 0", n)
	}
}

func TestEAMConcurrentReads(t *testing.T) {
	m := mustEAMTable(t, rfc7757Figure1...)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				for _, r := range rfc7757Figure7 {
					v6, ok := m.To6(netip.MustParseAddr(r.v4).As4())
					if !ok || netip.AddrFrom16(v6) != netip.MustParseAddr(r.v6) {
						t.Errorf("concurrent To6(%s) = %v", r.v4, netip.AddrFrom16(v6))
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}

func TestEAMEntriesCopy(t *testing.T) {
	m := mustEAMTable(t, rfc7757Figure1...)
	es := m.Entries()
	if len(es) != len(rfc7757Figure1) || m.Len() != len(rfc7757Figure1) {
		t.Fatalf("Entries() has %d entries, want %d", len(es), len(rfc7757Figure1))
	}
	es[0] = EAMEntry{}
	if m.Entries()[0] == (EAMEntry{}) {
		t.Error("Entries() exposes the table's storage")
	}
}

// FuzzParseEAMEntry: no panic; an accepted entry prints back to itself and
// maps its first address both ways.
func FuzzParseEAMEntry(f *testing.F) {
	for _, s := range append(rfc7757Figure1, "0.0.0.0/0=2001:db8:ff00::/40", "1.2.3.4/24=::/0", "=", "a=b", "192.0.2.0/24=2001:db8::/124") {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := ParseEAMEntry(s)
		if err != nil {
			return
		}
		back, err := ParseEAMEntry(e.String())
		if err != nil || back != e {
			t.Fatalf("%q: String() %q parses to %v, %v", s, e.String(), back, err)
		}
		m, err := NewEAMTable([]EAMEntry{e})
		if err != nil {
			t.Fatalf("%q: accepted entry refused by NewEAMTable: %v", s, err)
		}
		v6, ok := m.To6(e.V4.Addr().As4())
		if !ok || !e.V6.Contains(netip.AddrFrom16(v6)) {
			t.Fatalf("%q: To6(%v) = %v, %v", s, e.V4.Addr(), netip.AddrFrom16(v6), ok)
		}
		if v4, ok := m.To4(v6); !ok || netip.AddrFrom4(v4) != e.V4.Addr() {
			t.Fatalf("%q: To4 = %v, %v", s, netip.AddrFrom4(v4), ok)
		}
	})
}
