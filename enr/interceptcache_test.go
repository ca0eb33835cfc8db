package enr

import (
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestInterceptCachedAnswers: a repeated A query is answered from the
// resolver's cached response and the cached side result (RFC 6535 §2.3.4),
// with its own ID, port and aged TTLs; only for the same client, within the
// TTLs, and until Flush.
func TestInterceptCachedAnswers(t *testing.T) {
	clk := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	cfg := DefaultConfig()
	cfg.Now = clk.Now
	cfg.ATimeoutSynthesis = 0
	f := newInterceptFixture(t, cfg, InterceptOptions{})
	f.up.set("v6only.bih.test.", dns.TypeAAAA, dns.RcodeSuccess, []string{"v6only.bih.test. 300 IN AAAA 2001:db8::1"}, nil)
	f.up.set("v4only.bih.test.", dns.TypeAAAA, dns.RcodeSuccess, nil, []string{soa})

	// ask sends q from app to the resolver; a miss gets the resolver's
	// response resp and returns nil, a hit returns the injected answer.
	ask := func(app netip.AddrPort, q, resp *dns.Msg) *dns.Msg {
		t.Helper()
		r := f.ic.Query(udp(app, resolver4, packMsg(t, q)))
		if r.Verdict == Drop {
			if !r.Cached || r.Inject == nil {
				t.Fatalf("query dropped without a cached answer: %+v", r)
			}
			src, dst, m := checkUDP(t, r.Inject)
			if src != resolver4 || dst != app {
				t.Fatalf("cached answer %v → %v, want %v → %v", src, dst, resolver4, app)
			}
			return m
		}
		if r.Verdict != Accept || r.Packet != nil || r.Cached {
			t.Fatalf("query result %+v, want accept untouched", r)
		}
		if resp != nil {
			respond(t, f.ic, udp(resolver4, app, packMsg(t, resp)))
		}
		return nil
	}
	v6q := query("v6only.bih.test.", dns.TypeA)
	if m := ask(app4, v6q, reply(v6q, dns.RcodeSuccess, nil, []string{soa})); m != nil {
		t.Fatal("first query answered from an empty cache")
	}
	v4q := query("v4only.bih.test.", dns.TypeA)
	v4r := reply(v4q, dns.RcodeSuccess, []string{"v4only.bih.test. 300 IN A 192.0.2.1"}, nil)
	v4r.Authoritative = true // the cached copy must not claim it
	ask(app4, v4q, v4r)

	clk.Add(10 * time.Second)
	other := netip.AddrPortFrom(app4.Addr(), 40999)
	q := query("v6only.bih.test.", dns.TypeA)
	q.Id = 0x4242
	m := ask(other, q, nil)
	if m == nil {
		t.Fatal("repeated query not answered from the cache")
	}
	// NODATA's negative TTL is 60: aged by 10 s, and capping the A record.
	sameMsg(t, m, expect(q, dns.RcodeSuccess, "v6only.bih.test. 50 IN A 10.170.160.1"))
	q = query("v4only.bih.test.", dns.TypeA)
	q.Id = 0x4343
	m = ask(other, q, nil)
	if m == nil {
		t.Fatal("repeated query for a real A not answered from the cache")
	}
	want := reply(q, dns.RcodeSuccess, []string{"v4only.bih.test. 290 IN A 192.0.2.1"}, nil)
	if m.Id != 0x4343 || m.Authoritative || !m.RecursionAvailable || len(m.Answer) != 1 || m.Answer[0].String() != want.Answer[0].String() {
		t.Fatalf("cached real A:\n%v\nwant\n%v", m, want)
	}
	if got := len(f.up.questions()); got != 2 {
		t.Errorf("upstream asked %d times, want the 2 side lookups", got)
	}

	// Another client, or a query with an EDNS option, goes to the resolver.
	stranger := netip.MustParseAddrPort("127.0.0.2:40000")
	if ask(stranger, query("v6only.bih.test.", dns.TypeA), nil) != nil {
		t.Error("another client's query answered from the cache")
	}
	cq := query("v6only.bih.test.", dns.TypeA)
	cq.SetEdns0(1232, false)
	cq.IsEdns0().Option = append(cq.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0123456789abcdef"})
	if ask(app4, cq, nil) != nil {
		t.Error("query with a cookie answered from the cache")
	}

	// Past the TTL (60 s for the NODATA, and for v4only's negative AAAA),
	// and after Flush, it is asked again.
	clk.Add(51 * time.Second)
	if ask(app4, query("v6only.bih.test.", dns.TypeA), nil) != nil {
		t.Error("answered from a response older than its TTL")
	}
	v4q.Id = 0x4444
	if ask(app4, v4q, reply(v4q, dns.RcodeSuccess, []string{"v4only.bih.test. 300 IN A 192.0.2.1"}, nil)) != nil {
		t.Error("answered with a side result older than its TTL")
	}
	if ask(app4, query("v4only.bih.test.", dns.TypeA), nil) == nil {
		t.Error("real A not answered from the cache once asked again")
	}
	f.e.Flush()
	if ask(app4, query("v4only.bih.test.", dns.TypeA), nil) != nil {
		t.Error("answered from the cache after Flush")
	}
}

// TestInterceptCachesNoFailures: a failed or truncated response is not
// kept, and the synchronous (replay) mode never answers from the cache.
func TestInterceptCachesNoFailures(t *testing.T) {
	for _, name := range []string{"servfail", "truncated", "synchronous"} {
		t.Run(name, func(t *testing.T) {
			f := newInterceptFixture(t, DefaultConfig(), InterceptOptions{Synchronous: name == "synchronous"})
			f.up.set("v6only.bih.test.", dns.TypeAAAA, dns.RcodeSuccess, []string{"v6only.bih.test. 300 IN AAAA 2001:db8::1"}, nil)
			q := query("v6only.bih.test.", dns.TypeA)
			f.ic.Query(udp(app4, resolver4, packMsg(t, q)))
			resp := reply(q, dns.RcodeSuccess, nil, []string{soa})
			switch name {
			case "servfail":
				resp.Rcode = dns.RcodeServerFailure
			case "truncated":
				resp.Truncated = true
			}
			respond(t, f.ic, udp(resolver4, app4, packMsg(t, resp)))
			q.Id++
			if r := f.ic.Query(udp(app4, resolver4, packMsg(t, q))); r.Verdict != Accept || r.Cached {
				t.Fatalf("repeated query: %+v, want accept (not cached)", r)
			}
		})
	}
}
