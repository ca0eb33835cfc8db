package enr

import (
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

// BenchmarkRewriteNODATA rewrites a NODATA response into a synthesized
// answer of 4 A records (the mappings already exist, as on a warm host).
func BenchmarkRewriteNODATA(b *testing.B) {
	e, err := New(DefaultConfig(), newFakeMapper(100), newFakeUpstream(), nil)
	if err != nil {
		b.Fatal(err)
	}
	q := withEDNS(query("www.bih.test.", dns.TypeA), 1232, false)
	resp := reply(q, dns.RcodeSuccess, nil, []string{soa})
	resp.SetEdns0(1232, false)
	wire, err := resp.Pack()
	if err != nil {
		b.Fatal(err)
	}
	side := reply(withQ(q, dns.TypeAAAA), dns.RcodeSuccess, []string{
		"www.bih.test. 300 IN AAAA 2001:db8::1",
		"www.bih.test. 300 IN AAAA 2001:db8::2",
		"www.bih.test. 300 IN AAAA 2001:db8::3",
		"www.bih.test. 300 IN AAAA 2001:db8::4",
	}, nil)
	plan := e.Plan(q)
	requester := netip.MustParseAddr("127.0.0.1")
	out := e.RewriteWire(q, plan, wire, side, requester)
	var m dns.Msg
	if err := m.Unpack(out); err != nil || len(m.Answer) != 4 {
		b.Fatalf("setup: %v %v", err, m.Answer)
	}
	b.ReportAllocs()
	for b.Loop() {
		if e.RewriteWire(q, plan, wire, side, requester) == nil {
			b.Fatal("not rewritten")
		}
	}
}

// BenchmarkInterceptResponse is the whole packet path for one matched
// NODATA response: parse, match, synthesize 4 records, rebuild the datagram.
func BenchmarkInterceptResponse(b *testing.B) {
	up := newFakeUpstream()
	up.set("www.bih.test.", dns.TypeAAAA, dns.RcodeSuccess, []string{
		"www.bih.test. 300 IN AAAA 2001:db8::1",
		"www.bih.test. 300 IN AAAA 2001:db8::2",
		"www.bih.test. 300 IN AAAA 2001:db8::3",
		"www.bih.test. 300 IN AAAA 2001:db8::4",
	}, nil)
	e, err := New(DefaultConfig(), newFakeMapper(100), up, nil)
	if err != nil {
		b.Fatal(err)
	}
	ic := NewInterceptor(e, InterceptOptions{Synchronous: true})
	defer ic.Close()
	q := query("www.bih.test.", dns.TypeA)
	qp := udp(app4, resolver4, packMsg(b, q))
	rp := udp(resolver4, app4, packMsg(b, reply(q, dns.RcodeSuccess, nil, []string{soa})))
	b.ReportAllocs()
	for b.Loop() {
		ic.Query(qp)
		if r := ic.Response(rp, nil); r.Packet == nil {
			b.Fatal("not rewritten")
		}
	}
}
