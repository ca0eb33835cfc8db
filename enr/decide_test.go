package enr

import (
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/bih-nfq/bih-nfq/internal/drop"
)

const soa = "bih.test. 3600 IN SOA ns.bih.test. host.bih.test. 1 3600 600 86400 60" // negative TTL 60

// expect builds the answer the application should get for q.
func expect(q *dns.Msg, rcode int, answer ...string) *dns.Msg {
	m := new(dns.Msg)
	m.Id = q.Id
	m.Response = true
	m.RecursionDesired = q.RecursionDesired
	m.RecursionAvailable = true
	m.Rcode = rcode
	m.Question = append([]dns.Question(nil), q.Question...)
	m.Answer = rrs(answer...)
	return m
}

func withEDNS(m *dns.Msg, size uint16, do bool) *dns.Msg {
	m.SetEdns0(size, do)
	return m
}

// TestAnswerTable covers every row of the ENR behaviour table for A queries
// with whole messages: application query, upstream A answer, AAAA lookup
// result, expected answer (nil: untouched).
func TestAnswerTable(t *testing.T) {
	qA := query("www.bih.test.", dns.TypeA)
	q0x20 := query("wWw.BiH.tEsT.", dns.TypeA)
	qDO := withEDNS(query("sec.bih.test.", dns.TypeA), 4096, true)
	aaaa := func(q *dns.Msg, owner string, addrs ...string) *dns.Msg {
		var ans []string
		for _, a := range addrs {
			ans = append(ans, owner+" 300 IN AAAA "+a)
		}
		return reply(withQ(q, dns.TypeAAAA), dns.RcodeSuccess, ans, nil)
	}
	chain := []string{
		"www.bih.test. 100 IN CNAME c1.bih.test.",
		"c1.bih.test. 100 IN CNAME c2.bih.test.",
		"c2.bih.test. 100 IN CNAME v6.bih.test.",
	}
	signedNODATA := reply(qDO, dns.RcodeSuccess, nil, []string{
		soa,
		"bih.test. 60 IN RRSIG SOA 13 2 3600 20300101000000 20200101000000 12345 bih.test. AAAA",
		"sec.bih.test. 60 IN NSEC zzz.bih.test. AAAA RRSIG NSEC",
		"sec.bih.test. 60 IN RRSIG NSEC 13 3 60 20300101000000 20200101000000 12345 bih.test. AAAA",
	})
	signedNODATA.AuthenticatedData = true
	signedNODATA.SetEdns0(1232, true)
	signedAAAA := aaaa(qDO, "sec.bih.test.", "2001:db8::5")
	signedAAAA.Answer = append(signedAAAA.Answer, rrs("sec.bih.test. 300 IN RRSIG AAAA 13 3 300 20300101000000 20200101000000 12345 bih.test. AAAA")...)
	signedAAAA.AuthenticatedData = true
	wantDO := expect(qDO, dns.RcodeSuccess, "sec.bih.test. 60 IN A 10.170.160.1")
	wantDO.SetEdns0(1232, true)

	dnameQ := query("www.old.test.", dns.TypeA)
	dnameChain := []string{
		"old.test. 300 IN DNAME new.test.",
		"www.old.test. 300 IN CNAME www.new.test.",
	}

	tests := []struct {
		name       string
		cfg        func(*Config)
		query      *dns.Msg
		a, aaaa    *dns.Msg
		want       *dns.Msg
		wantReason drop.Reason
	}{
		{
			name:  "real A untouched",
			query: qA,
			a:     reply(qA, dns.RcodeSuccess, []string{"www.bih.test. 300 IN A 192.0.2.1"}, nil),
			aaaa:  aaaa(qA, "www.bih.test.", "2001:db8::1"),
		},
		{
			name:  "NODATA with AAAA synthesizes one A per AAAA",
			query: qA,
			a:     reply(qA, dns.RcodeSuccess, nil, []string{soa}),
			aaaa:  aaaa(qA, "www.bih.test.", "2001:db8::1", "2001:db8::2"),
			want: expect(qA, dns.RcodeSuccess,
				"www.bih.test. 60 IN A 10.170.160.1",
				"www.bih.test. 60 IN A 10.170.160.2"),
		},
		{
			name:  "only excluded A synthesizes and removes them",
			query: qA,
			a: reply(qA, dns.RcodeSuccess, []string{
				"www.bih.test. 200 IN A 127.0.0.1",
				"www.bih.test. 200 IN A 0.1.2.3",
				"www.bih.test. 200 IN A 169.254.9.9",
				"www.bih.test. 200 IN A 255.255.255.255",
				"www.bih.test. 200 IN A 10.170.163.3", // a pool address
			}, nil),
			aaaa: aaaa(qA, "www.bih.test.", "2001:db8::1"),
			want: expect(qA, dns.RcodeSuccess, "www.bih.test. 200 IN A 10.170.160.1"),
		},
		{
			name:  "mixed excluded and real A untouched",
			query: qA,
			a: reply(qA, dns.RcodeSuccess, []string{
				"www.bih.test. 200 IN A 127.0.0.1",
				"www.bih.test. 200 IN A 198.51.100.7",
			}, nil),
			aaaa: aaaa(qA, "www.bih.test.", "2001:db8::1"),
		},
		{
			name:  "configured A exclusion",
			cfg:   func(c *Config) { c.ExcludeA = append(c.ExcludeA, netip.MustParsePrefix("198.51.100.0/24")) },
			query: qA,
			a:     reply(qA, dns.RcodeSuccess, []string{"www.bih.test. 200 IN A 198.51.100.7"}, nil),
			aaaa:  aaaa(qA, "www.bih.test.", "2001:db8::1"),
			want:  expect(qA, dns.RcodeSuccess, "www.bih.test. 200 IN A 10.170.160.1"),
		},
		{
			name:  "3-deep CNAME chain to AAAA only keeps the chain",
			query: qA,
			a:     reply(qA, dns.RcodeSuccess, chain, []string{soa}),
			aaaa: func() *dns.Msg {
				m := aaaa(qA, "v6.bih.test.", "2001:db8::6")
				m.Answer = append(rrs(chain...), m.Answer...)
				return m
			}(),
			want: expect(qA, dns.RcodeSuccess, append(append([]string(nil), chain...), "v6.bih.test. 60 IN A 10.170.160.1")...),
		},
		{
			name:  "DNAME chain to AAAA only",
			query: dnameQ,
			a:     reply(dnameQ, dns.RcodeSuccess, dnameChain, []string{soa}),
			aaaa: func() *dns.Msg {
				m := aaaa(dnameQ, "www.new.test.", "2001:db8::7")
				m.Answer = append(rrs(dnameChain...), m.Answer...)
				return m
			}(),
			want: expect(dnameQ, dns.RcodeSuccess, append(append([]string(nil), dnameChain...), "www.new.test. 60 IN A 10.170.160.1")...),
		},
		{
			name:  "NXDOMAIN untouched",
			query: qA,
			a:     reply(qA, dns.RcodeNameError, nil, []string{soa}),
			aaaa:  aaaa(qA, "www.bih.test.", "2001:db8::1"),
		},
		{
			name:  "SERVFAIL untouched",
			query: qA,
			a:     reply(qA, dns.RcodeServerFailure, nil, nil),
			aaaa:  aaaa(qA, "www.bih.test.", "2001:db8::1"),
		},
		{
			name:  "REFUSED untouched",
			query: qA,
			a:     reply(qA, dns.RcodeRefused, nil, nil),
			aaaa:  aaaa(qA, "www.bih.test.", "2001:db8::1"),
		},
		{
			name:  "truncated A answer untouched",
			query: qA,
			a: func() *dns.Msg {
				m := reply(qA, dns.RcodeSuccess, nil, nil)
				m.Truncated = true
				return m
			}(),
			aaaa: aaaa(qA, "www.bih.test.", "2001:db8::1"),
		},
		{
			name:  "A timed out, AAAA positive synthesizes",
			query: qA,
			aaaa:  aaaa(qA, "www.bih.test.", "2001:db8::1"),
			want:  expect(qA, dns.RcodeSuccess, "www.bih.test. 300 IN A 10.170.160.1"),
		},
		{
			name:  "AAAA lookup failed untouched",
			query: qA,
			a:     reply(qA, dns.RcodeSuccess, nil, []string{soa}),
		},
		{
			name:  "AAAA SERVFAIL untouched",
			query: qA,
			a:     reply(qA, dns.RcodeSuccess, nil, []string{soa}),
			aaaa:  reply(withQ(qA, dns.TypeAAAA), dns.RcodeServerFailure, nil, nil),
		},
		{
			name:  "AAAA only excluded untouched",
			query: qA,
			a:     reply(qA, dns.RcodeSuccess, nil, []string{soa}),
			aaaa:  aaaa(qA, "www.bih.test.", "::", "::1", "::ffff:192.0.2.1", "fe80::1", "ff02::1"),
		},
		{
			name:  "configured AAAA exclusion",
			cfg:   func(c *Config) { c.ExcludeAAAA = append(c.ExcludeAAAA, netip.MustParsePrefix("2001:db8:bad::/48")) },
			query: qA,
			a:     reply(qA, dns.RcodeSuccess, nil, []string{soa}),
			aaaa:  aaaa(qA, "www.bih.test.", "2001:db8:bad::1", "2001:db8::2"),
			want:  expect(qA, dns.RcodeSuccess, "www.bih.test. 60 IN A 10.170.160.1"),
		},
		{
			name:  "DO with signed NODATA synthesizes, strips RRSIGs, clears AD",
			query: qDO,
			a:     signedNODATA,
			aaaa:  signedAAAA,
			want:  wantDO,
		},
		{
			name:  "0x20 question case kept",
			query: q0x20,
			a:     reply(q0x20, dns.RcodeSuccess, nil, []string{soa}),
			aaaa:  aaaa(q0x20, "wWw.BiH.tEsT.", "2001:db8::1"),
			want:  expect(q0x20, dns.RcodeSuccess, "wWw.BiH.tEsT. 60 IN A 10.170.160.1"),
		},
		{
			name:  "TTL capped by configuration",
			cfg:   func(c *Config) { c.MaxTTL = 30 * time.Second },
			query: qA,
			a:     reply(qA, dns.RcodeSuccess, nil, []string{soa}),
			aaaa:  aaaa(qA, "www.bih.test.", "2001:db8::1"),
			want:  expect(qA, dns.RcodeSuccess, "www.bih.test. 30 IN A 10.170.160.1"),
		},
		{
			name:  "TTL from AAAA when lower than negative TTL",
			query: qA,
			a:     reply(qA, dns.RcodeSuccess, nil, []string{soa}),
			aaaa:  reply(withQ(qA, dns.TypeAAAA), dns.RcodeSuccess, []string{"www.bih.test. 7 IN AAAA 2001:db8::1"}, nil),
			want:  expect(qA, dns.RcodeSuccess, "www.bih.test. 7 IN A 10.170.160.1"),
		},
		{
			name:       "pool exhausted answers SERVFAIL and counts",
			cfg:        func(c *Config) {},
			query:      qA,
			a:          reply(qA, dns.RcodeSuccess, nil, []string{soa}),
			aaaa:       aaaa(qA, "www.bih.test.", "2001:db8::1"),
			want:       expect(qA, dns.RcodeServerFailure),
			wantReason: drop.DNSPoolExhausted,
		},
		{
			name:       "pool exhausted answer is configurable",
			cfg:        func(c *Config) { c.PoolErrorRcode = dns.RcodeRefused },
			query:      qA,
			a:          reply(qA, dns.RcodeSuccess, nil, []string{soa}),
			aaaa:       aaaa(qA, "www.bih.test.", "2001:db8::1"),
			want:       expect(qA, dns.RcodeRefused),
			wantReason: drop.DNSPoolExhausted,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			limit := 100
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			if tc.wantReason == drop.DNSPoolExhausted {
				limit = 0
			}
			e := newTestENR(t, cfg, newFakeMapper(limit), newFakeUpstream())
			plan := e.Plan(tc.query)
			if plan.Kind != QueryA || plan.Type != dns.TypeAAAA || plan.Name != tc.query.Question[0].Name {
				t.Fatalf("plan = %+v, want AAAA lookup for the question", plan)
			}
			got := e.Answer(tc.query, plan, tc.a, tc.aaaa, netip.MustParseAddr("127.0.0.1"), clientUDPSize(tc.query))
			sameMsg(t, got, tc.want)
			if tc.wantReason != drop.None && e.Counters().Get(tc.wantReason) != 1 {
				t.Errorf("%v counted %d times, want 1", tc.wantReason, e.Counters().Get(tc.wantReason))
			}
		})
	}
}

func withQ(q *dns.Msg, t uint16) *dns.Msg {
	m := q.Copy()
	m.Question[0].Qtype = t
	return m
}

// TestPlanTable covers the query rows: CD, PTR for mapped, unmapped and
// other addresses, other types, multi-question, pass-through.
func TestPlanTable(t *testing.T) {
	m := newFakeMapper(10)
	v6 := netip.MustParseAddr("2001:db8::1")
	v4, err := m.MapIPv6(v6, netip.Addr{}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	e := newTestENR(t, DefaultConfig(), m, newFakeUpstream())
	cd := query("www.bih.test.", dns.TypeA)
	cd.CheckingDisabled = true
	multi := query("www.bih.test.", dns.TypeA)
	multi.Question = append(multi.Question, dns.Question{Name: "x.bih.test.", Qtype: dns.TypeA, Qclass: dns.ClassINET})
	chaos := query("version.bind.", dns.TypeA)
	chaos.Question[0].Qclass = dns.ClassCHAOS
	v6arpa, err := dns.ReverseAddr(v6.String())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		q    *dns.Msg
		want QueryPlan
	}{
		{"A", query("www.bih.test.", dns.TypeA), QueryPlan{QueryA, "www.bih.test.", dns.TypeAAAA}},
		{"A with CD passes", cd, QueryPlan{}},
		{"PTR mapped pool address", query(reverse4(v4), dns.TypePTR), QueryPlan{QueryPTRMapped, v6arpa, dns.TypePTR}},
		{"PTR mapped, upper case", query("1.160.170.10.IN-ADDR.ARPA.", dns.TypePTR), QueryPlan{QueryPTRMapped, v6arpa, dns.TypePTR}},
		{"PTR unmapped pool address", query("9.160.170.10.in-addr.arpa.", dns.TypePTR), QueryPlan{Kind: QueryPTRUnmapped}},
		{"PTR other address", query("1.2.0.192.in-addr.arpa.", dns.TypePTR), QueryPlan{}},
		{"PTR partial name", query("160.170.10.in-addr.arpa.", dns.TypePTR), QueryPlan{}},
		{"PTR leading zero label", query("01.160.170.10.in-addr.arpa.", dns.TypePTR), QueryPlan{}},
		{"PTR ip6.arpa", query(v6arpa, dns.TypePTR), QueryPlan{}},
		{"AAAA", query("www.bih.test.", dns.TypeAAAA), QueryPlan{}},
		{"ANY", query("www.bih.test.", dns.TypeANY), QueryPlan{}},
		{"MX", query("www.bih.test.", dns.TypeMX), QueryPlan{}},
		{"class CH", chaos, QueryPlan{}},
		{"multi question", multi, QueryPlan{}},
		{"no question", &dns.Msg{}, QueryPlan{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := e.Plan(tc.q); got != tc.want {
				t.Fatalf("plan = %+v, want %+v", got, tc.want)
			}
		})
	}
	if n := e.Counters().Get(drop.DNSMultipleQuestion); n != 2 {
		t.Errorf("multiple-question count = %d, want 2", n)
	}
	e.SetPassThrough(true)
	if got := e.Plan(query("www.bih.test.", dns.TypeA)); got.Kind != QueryPass {
		t.Errorf("pass-through: plan = %+v, want pass", got)
	}
	if got := e.Plan(query(reverse4(v4), dns.TypePTR)); got.Kind != QueryPass {
		t.Errorf("pass-through: PTR plan = %+v, want pass", got)
	}
}

func reverse4(a netip.Addr) string {
	s, err := dns.ReverseAddr(a.String())
	if err != nil {
		panic(err) // test helper on valid input
	}
	return s
}

// TestPTRAnswers: mapped pool PTR answered under the original name from the
// ip6.arpa answer; unmapped answered NXDOMAIN.
func TestPTRAnswers(t *testing.T) {
	m := newFakeMapper(10)
	v6 := netip.MustParseAddr("2001:db8::1")
	v4, err := m.MapIPv6(v6, netip.Addr{}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	e := newTestENR(t, DefaultConfig(), m, newFakeUpstream())
	q := withEDNS(query("1.160.170.10.In-Addr.Arpa.", dns.TypePTR), 1232, false)
	plan := e.Plan(q)
	if plan.Kind != QueryPTRMapped {
		t.Fatalf("plan %+v", plan)
	}
	_ = v4
	side := reply(query(plan.Name, dns.TypePTR), dns.RcodeSuccess,
		[]string{plan.Name + " 900 IN PTR v6only.bih.test."},
		[]string{"8.b.d.0.1.0.0.2.ip6.arpa. 300 IN SOA ns.bih.test. h.bih.test. 1 1 1 1 1"})
	side.AuthenticatedData = true
	want := expect(q, dns.RcodeSuccess, "1.160.170.10.In-Addr.Arpa. 600 IN PTR v6only.bih.test.")
	want.SetEdns0(1232, false)
	sameMsg(t, e.Answer(q, plan, nil, side, netip.Addr{}, 512), want)

	// ip6.arpa NXDOMAIN stays NXDOMAIN under the original name.
	nx := reply(query(plan.Name, dns.TypePTR), dns.RcodeNameError, nil, nil)
	wantNX := expect(q, dns.RcodeNameError)
	wantNX.SetEdns0(1232, false)
	sameMsg(t, e.Answer(q, plan, nil, nx, netip.Addr{}, 512), wantNX)

	// Failed lookup: untouched (intercept) — nil.
	if got := e.Answer(q, plan, nil, nil, netip.Addr{}, 512); got != nil {
		t.Errorf("failed PTR lookup: got %v, want untouched", got)
	}

	qu := query("7.160.170.10.in-addr.arpa.", dns.TypePTR)
	pu := e.Plan(qu)
	if pu.Kind != QueryPTRUnmapped {
		t.Fatalf("plan %+v", pu)
	}
	sameMsg(t, e.Answer(qu, pu, nil, nil, netip.Addr{}, 512), expect(qu, dns.RcodeNameError))
}

// TestEDNSAndTruncation: no OPT toward a client that sent none; the client's
// UDP size is respected and TC set when the synthesized answer is cut.
func TestEDNSAndTruncation(t *testing.T) {
	var many []string
	for i := 1; i <= 30; i++ {
		many = append(many, "thirty-records.bih.test. 300 IN AAAA 2001:db8::"+itoa(i))
	}
	for _, tc := range []struct {
		name    string
		edns    uint16 // 0: no EDNS
		wantTC  bool
		wantOPT bool
	}{
		{"no EDNS, 512 bytes", 0, true, false},
		{"EDNS 512", 512, true, true},
		{"EDNS 1232", 1232, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestENR(t, DefaultConfig(), newFakeMapper(100), newFakeUpstream())
			q := query("thirty-records.bih.test.", dns.TypeA)
			if tc.edns != 0 {
				q.SetEdns0(tc.edns, false)
			}
			a := reply(q, dns.RcodeSuccess, nil, []string{soa})
			a.SetEdns0(4096, false)
			side := reply(withQ(q, dns.TypeAAAA), dns.RcodeSuccess, many, nil)
			got := e.Answer(q, e.Plan(q), a, side, netip.Addr{}, clientUDPSize(q))
			if got == nil {
				t.Fatal("untouched, want synthesized")
			}
			b, err := got.Pack()
			if err != nil {
				t.Fatal(err)
			}
			if len(b) > clientUDPSize(q) {
				t.Errorf("answer is %d bytes, client takes %d", len(b), clientUDPSize(q))
			}
			if got.Truncated != tc.wantTC {
				t.Errorf("TC = %v, want %v", got.Truncated, tc.wantTC)
			}
			if (got.IsEdns0() != nil) != tc.wantOPT {
				t.Errorf("OPT present = %v, want %v", got.IsEdns0() != nil, tc.wantOPT)
			}
			if !tc.wantTC && len(got.Answer) != 30 {
				t.Errorf("%d answers, want 30", len(got.Answer))
			}
			if tc.wantTC && (len(got.Answer) == 0 || len(got.Answer) >= 30) {
				t.Errorf("%d answers after truncation", len(got.Answer))
			}
		})
	}
}

func itoa(i int) string {
	const hex = "0123456789abcdef"
	if i < 16 {
		return string(hex[i])
	}
	return string(hex[i/16]) + string(hex[i%16])
}

// TestRewriteWire: the wire-level rewriter leaves malformed, mismatched
// and multi-question responses untouched and counts them.
func TestRewriteWire(t *testing.T) {
	e := newTestENR(t, DefaultConfig(), newFakeMapper(10), newFakeUpstream())
	q := query("www.bih.test.", dns.TypeA)
	plan := e.Plan(q)
	side := reply(withQ(q, dns.TypeAAAA), dns.RcodeSuccess, []string{"www.bih.test. 300 IN AAAA 2001:db8::1"}, nil)
	good := reply(q, dns.RcodeSuccess, nil, []string{soa})
	gb, err := good.Pack()
	if err != nil {
		t.Fatal(err)
	}
	if out := e.RewriteWire(q, plan, gb, side, netip.Addr{}); out == nil {
		t.Fatal("NODATA not rewritten")
	}
	other := reply(query("other.bih.test.", dns.TypeA), dns.RcodeSuccess, nil, []string{soa})
	ob, _ := other.Pack()
	multi := good.Copy()
	multi.Question = append(multi.Question, dns.Question{Name: "x.", Qtype: dns.TypeA, Qclass: dns.ClassINET})
	mb, _ := multi.Pack()
	for _, tc := range []struct {
		name   string
		b      []byte
		reason drop.Reason
	}{
		{"malformed", gb[:len(gb)-3], drop.DNSMalformed},
		{"empty", nil, drop.DNSMalformed},
		{"other question", ob, drop.DNSUnmatched},
		{"multi question", mb, drop.DNSUnmatched},
	} {
		before := e.Counters().Get(tc.reason)
		if out := e.RewriteWire(q, plan, tc.b, side, netip.Addr{}); out != nil {
			t.Errorf("%s: rewritten, want untouched", tc.name)
		}
		if e.Counters().Get(tc.reason) != before+1 {
			t.Errorf("%s: %v not counted", tc.name, tc.reason)
		}
	}
}

func TestConfigValidation(t *testing.T) {
	for _, mod := range []func(*Config){
		func(c *Config) { c.MaxTTL = 0 },
		func(c *Config) { c.PoolErrorRcode = 99 },
		func(c *Config) { c.ExcludeA = []netip.Prefix{netip.MustParsePrefix("::/0")} },
		func(c *Config) { c.ExcludeAAAA = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")} },
		func(c *Config) { c.MaxOutstanding = 0 },
	} {
		c := DefaultConfig()
		mod(&c)
		if _, err := New(c, newFakeMapper(1), newFakeUpstream(), nil); err == nil {
			t.Errorf("config %+v accepted", c)
		}
	}
	if _, err := New(DefaultConfig(), nil, newFakeUpstream(), nil); err == nil {
		t.Error("nil mapper accepted")
	}
}
