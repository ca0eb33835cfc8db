package translate

import (
	"net/netip"
	"strings"
	"testing"
)

// RFC 7757 Appendix B, Figure 7, through the EAMT of Figure 1 and the RFC
// 6052 prefix, in the order of §3.3.
func TestChainRFC7757Figure7(t *testing.T) {
	c, err := NewChain(mustEAMTable(t, rfc7757Figure1...), mustRFC6052(t, "64:ff9b::/96"))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rfc7757Figure7 {
		v4 := netip.MustParseAddr(r.v4).As4()
		v6 := netip.MustParseAddr(r.v6).As16()
		if got, ok := c.To6(v4); !ok || got != v6 {
			t.Errorf("To6(%s) = %v, %v; want %s", r.v4, netip.AddrFrom16(got), ok, r.v6)
		}
		if got, ok := c.To4(v6); !ok || got != v4 {
			t.Errorf("To4(%s) = %v, %v; want %s", r.v6, netip.AddrFrom4(got), ok, r.v4)
		}
	}
	// The last row of Figure 7 ("According to RFC 6052") embeds a
	// documentation address in the Well-Known Prefix, which RFC 6052 §3.1
	// forbids a translator to use; the prefix's algorithm is shown by Embed.
	v4 := netip.MustParseAddr("192.0.2.248").As4()
	if got, ok := c.To6(v4); ok {
		t.Errorf("To6(192.0.2.248) = %v, want refusal (RFC 6052 §3.1)", netip.AddrFrom16(got))
	}
	if got := mustRFC6052(t, "64:ff9b::/96").Embed(v4); netip.AddrFrom16(got) != netip.MustParseAddr("64:ff9b::c000:2f8") {
		t.Errorf("Embed(192.0.2.248) = %v, want 64:ff9b::c000:2f8", netip.AddrFrom16(got))
	}
	// With a Network-Specific Prefix the fallback maps it.
	c2, err := NewChain(mustEAMTable(t, rfc7757Figure1...), mustRFC6052(t, "2001:db8:64::/96"))
	if err != nil {
		t.Fatal(err)
	}
	want := netip.MustParseAddr("2001:db8:64::c000:2f8").As16()
	if got, ok := c2.To6(v4); !ok || got != want {
		t.Errorf("To6(192.0.2.248) = %v, %v; want 2001:db8:64::c000:2f8", netip.AddrFrom16(got), ok)
	}
	if got, ok := c2.To4(want); !ok || got != v4 {
		t.Errorf("To4(2001:db8:64::c000:2f8) = %v, %v; want 192.0.2.248", netip.AddrFrom4(got), ok)
	}
}

// RFC 7757 §3.3: the EAMT is consulted before RFC 6052, both ways.
func TestChainEAMFirst(t *testing.T) {
	c, err := NewChain(mustEAMTable(t, "8.8.8.8=2001:db8::53"), mustRFC6052(t, "64:ff9b::/96"))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := c.To6([4]byte{8, 8, 8, 8}); netip.AddrFrom16(got) != netip.MustParseAddr("2001:db8::53") {
		t.Errorf("To6(8.8.8.8) = %v, want the EAM's 2001:db8::53", netip.AddrFrom16(got))
	}
	if got, _ := c.To6([4]byte{8, 8, 4, 4}); netip.AddrFrom16(got) != netip.MustParseAddr("64:ff9b::8.8.4.4") {
		t.Errorf("To6(8.8.4.4) = %v, want 64:ff9b::8.8.4.4", netip.AddrFrom16(got))
	}
	// An EAM IPv6 prefix inside the RFC 6052 prefix wins over the prefix.
	c2, err := NewChain(mustEAMTable(t, "192.0.2.224/31=64:ff9b::/127"), mustRFC6052(t, "64:ff9b::/96"))
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := c2.To4(netip.MustParseAddr("64:ff9b::1").As16()); !ok || got != [4]byte{192, 0, 2, 225} {
		t.Errorf("To4(64:ff9b::1) = %v, %v; want 192.0.2.225 from the EAM", netip.AddrFrom4(got), ok)
	}
	if _, ok := c2.To4(netip.MustParseAddr("2001:db8::1").As16()); ok {
		t.Error("To4 mapped an address no member covers")
	}
}

type chainFakeErrorSource struct{ Mapper }

func (chainFakeErrorSource) ErrorSourceTo4(a [16]byte) ([4]byte, bool) {
	return [4]byte{192, 0, 2, a[15]}, a[15] != 0
}

func TestChainErrorSourcePassThrough(t *testing.T) {
	p := mustRFC6052(t, "64:ff9b::/96")
	c, err := NewChain(mustEAMTable(t), chainFakeErrorSource{p})
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := c.ErrorSourceTo4([16]byte{15: 7}); !ok || got != [4]byte{192, 0, 2, 7} {
		t.Errorf("ErrorSourceTo4 = %v, %v; want the member's 192.0.2.7", got, ok)
	}
	if _, ok := c.ErrorSourceTo4([16]byte{}); ok {
		t.Error("ErrorSourceTo4 invented a mapping the member refused")
	}
	c2, err := NewChain(mustEAMTable(t), p)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c2.ErrorSourceTo4([16]byte{15: 7}); ok {
		t.Error("ErrorSourceTo4 mapped with no ErrorSourceMapper member")
	}
}

func TestChainRejectsNil(t *testing.T) {
	var e *EAMTable
	for _, ms := range [][]Mapper{nil, {nil}, {e}, {mustRFC6052(t, "64:ff9b::/96"), (*RFC6052Prefix)(nil)}} {
		if _, err := NewChain(ms...); err == nil || !strings.Contains(err.Error(), "address mapper chain") {
			t.Errorf("NewChain(%v) error = %v", ms, err)
		}
	}
}

func TestChainNoAllocs(t *testing.T) {
	c, err := NewChain(mustEAMTable(t, rfc7757Figure1...), mustRFC6052(t, "2001:db8:64::/96"))
	if err != nil {
		t.Fatal(err)
	}
	v4 := [4]byte{8, 8, 8, 8}
	v6 := netip.MustParseAddr("2001:db8:64::808:808").As16()
	e6 := netip.MustParseAddr("2001:db8:cccc::8").As16()
	if n := testing.AllocsPerRun(1000, func() {
		c.To6(v4)
		c.To4(v6)
		c.To4(e6)
		c.ErrorSourceTo4(v6)
	}); n != 0 {
		t.Errorf("Chain lookups allocate %v times, want 0", n)
	}
}

func BenchmarkChain(b *testing.B) {
	c, err := NewChain(mustEAMTable(b, rfc7757Figure1...), mustRFC6052(b, "2001:db8:64::/96"))
	if err != nil {
		b.Fatal(err)
	}
	v4 := [4]byte{192, 0, 2, 152}
	v6 := netip.MustParseAddr("2001:db8:64::808:808").As16()
	b.ReportAllocs()
	for b.Loop() {
		c.To6(v4)
		c.To4(v6)
	}
}
