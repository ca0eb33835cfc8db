package enr

import (
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

// FuzzRewriteResponse feeds arbitrary upstream A responses (and AAAA
// results) to the response rewriter: it must not panic, and whatever it
// produces must parse, answer the application's question and fit the
// client's UDP size.
func FuzzRewriteResponse(f *testing.F) {
	q := withEDNS(query("wWw.bih.test.", dns.TypeA), 512, true)
	seeds := []*dns.Msg{
		reply(q, dns.RcodeSuccess, nil, []string{soa}),
		reply(q, dns.RcodeSuccess, []string{"www.bih.test. 300 IN A 127.0.0.1"}, nil),
		reply(q, dns.RcodeSuccess, []string{"www.bih.test. 300 IN A 192.0.2.1"}, nil),
		reply(q, dns.RcodeSuccess, []string{"www.bih.test. 1 IN CNAME a.bih.test.", "a.bih.test. 1 IN CNAME www.bih.test."}, nil),
		reply(q, dns.RcodeSuccess, []string{"bih.test. 1 IN DNAME www.bih.test."}, nil),
		reply(q, dns.RcodeNameError, nil, []string{soa}),
	}
	side := reply(withQ(q, dns.TypeAAAA), dns.RcodeSuccess, []string{
		"www.bih.test. 300 IN AAAA 2001:db8::1",
		"www.bih.test. 300 IN AAAA 2001:db8::2",
	}, nil)
	sb, err := side.Pack()
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range seeds {
		b, err := s.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, sb)
	}
	f.Fuzz(func(t *testing.T, resp, sideWire []byte) {
		e, err := New(DefaultConfig(), newFakeMapper(4), newFakeUpstream(), nil)
		if err != nil {
			t.Fatal(err)
		}
		var s *dns.Msg
		if m := new(dns.Msg); m.Unpack(sideWire) == nil {
			s = m
		}
		plan := e.Plan(q)
		out := e.RewriteWire(q, plan, resp, s, netip.MustParseAddr("127.0.0.1"))
		if out == nil {
			return
		}
		var m dns.Msg
		if err := m.Unpack(out); err != nil {
			t.Fatalf("output does not parse: %v", err)
		}
		if len(out) > clientUDPSize(q) {
			t.Fatalf("output %d bytes, client takes %d", len(out), clientUDPSize(q))
		}
		if m.Id != q.Id || len(m.Question) != 1 || m.Question[0] != q.Question[0] {
			t.Fatalf("output answers %v, want %v", m.Question, q.Question)
		}
		for _, rr := range m.Answer {
			if a, ok := rr.(*dns.A); ok {
				addr, _ := netip.AddrFromSlice(a.A.To4())
				if e.rules.excludedA(addr) && !e.rules.mapper.InPool(addr) {
					t.Fatalf("excluded address %v in the answer", addr)
				}
			}
		}
	})
}

// FuzzInterceptPackets feeds arbitrary datagrams to both intercept entry
// points: no panic, and any produced datagram has consistent lengths.
func FuzzInterceptPackets(f *testing.F) {
	q := query("v6only.bih.test.", dns.TypeA)
	qb, _ := q.Pack()
	rb, _ := reply(q, dns.RcodeSuccess, nil, []string{soa}).Pack()
	f.Add(udp(app4, resolver4, qb), udp(resolver4, app4, rb))
	f.Add(udp(app6, resolver6, qb), udp(resolver6, app6, rb))
	f.Fuzz(func(t *testing.T, qp, rp []byte) {
		z := newFakeUpstream()
		z.set("v6only.bih.test.", dns.TypeAAAA, dns.RcodeSuccess, []string{"v6only.bih.test. 300 IN AAAA 2001:db8::1"}, nil)
		e, err := New(DefaultConfig(), newFakeMapper(4), z, nil)
		if err != nil {
			t.Fatal(err)
		}
		ic := NewInterceptor(e, InterceptOptions{Synchronous: true})
		defer ic.Close()
		for _, r := range []Result{ic.Query(qp), ic.Response(rp, nil)} {
			for _, p := range [][]byte{r.Packet, r.Inject} {
				if p == nil {
					continue
				}
				if _, reason := parseUDP(p); reason != 0 {
					t.Fatalf("produced datagram does not parse: %v", reason)
				}
			}
		}
	})
}
