package enr

import (
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/bih-nfq/bih-nfq/internal/drop"
)

// QueryKind says what the ENR does with an application's query.
type QueryKind uint8

const (
	// QueryPass: not for the ENR; forwarded and answered untouched.
	QueryPass QueryKind = iota
	// QueryA: A/IN query; a parallel AAAA lookup may feed a synthesized answer.
	QueryA
	// QueryPTRMapped: PTR for a mapped pool address; answered from the
	// ip6.arpa name of the mapped IPv6 address.
	QueryPTRMapped
	// QueryPTRUnmapped: PTR for a pool address with no mapping; NXDOMAIN
	// answered locally.
	QueryPTRUnmapped
)

func (k QueryKind) String() string {
	switch k {
	case QueryA:
		return "a"
	case QueryPTRMapped:
		return "ptr-mapped"
	case QueryPTRUnmapped:
		return "ptr-unmapped"
	default:
		return "pass"
	}
}

// QueryPlan is the decision for one query: the kind and the side lookup
// (Name, Type) the ENR makes upstream for it.
type QueryPlan struct {
	Kind QueryKind
	Name string // AAAA: the query name; PTR: the ip6.arpa name
	Type uint16 // dns.TypeAAAA or dns.TypePTR; zero when no lookup
}

// rules is the decision core: exclusion sets, TTL caps and the mapper. Its
// methods are pure except for the mapper calls.
type rules struct {
	excl      *atomic.Pointer[exclusions] // replaced whole by SetExclusions
	maxTTL    uint32
	noSOATTL  uint32
	poolRcode int
	maxSynth  int
	mapper    Mapper
}

func newRules(c *Config, m Mapper) rules {
	excl := new(atomic.Pointer[exclusions])
	excl.Store(&exclusions{a: c.ExcludeA, aaaa: c.ExcludeAAAA})
	return rules{
		excl:      excl,
		maxTTL:    durationTTL(c.MaxTTL),
		noSOATTL:  durationTTL(c.NoSOATTL),
		poolRcode: c.PoolErrorRcode,
		maxSynth:  c.MaxSynthesized,
		mapper:    m,
	}
}

func durationTTL(d time.Duration) uint32 {
	s := d / time.Second
	if s > 1<<31-1 {
		s = 1<<31 - 1
	}
	if s < 0 {
		s = 0
	}
	return uint32(s)
}

// planQuery decides what to do with a query.
//
//   - A/IN without CD: ask AAAA in parallel (RFC 6535 §2.3). With CD set the
//     application validates for itself, so no synthesis (RFC 6147 §5.5 item 3).
//   - PTR for a pool address: §2.3.3 "MUST initiate a corresponding reverse
//     lookup for the real IPv6 address"; unmapped pool addresses have no name
//     and are answered NXDOMAIN without asking anyone.
//   - Everything else, including PTR for addresses outside the pool, "MUST be
//     passed on unmodified" (§2.3.3; RFC 6147 §5.3.3 analogue).
//
// A message that is not a single-question standard query is passed, with the
// reason it was not considered.
func (r *rules) planQuery(q *dns.Msg) (QueryPlan, drop.Reason) {
	if q == nil || q.Response || q.Opcode != dns.OpcodeQuery {
		return QueryPlan{}, drop.None
	}
	if len(q.Question) != 1 {
		return QueryPlan{}, drop.DNSMultipleQuestion
	}
	qs := q.Question[0]
	if qs.Qclass != dns.ClassINET {
		return QueryPlan{}, drop.None
	}
	switch qs.Qtype {
	case dns.TypeA:
		if q.CheckingDisabled {
			return QueryPlan{}, drop.None
		}
		return QueryPlan{Kind: QueryA, Name: qs.Name, Type: dns.TypeAAAA}, drop.None
	case dns.TypePTR:
		v4, ok := parseInAddrArpa(qs.Name)
		if !ok || r.mapper == nil || !r.mapper.InPool(v4) {
			return QueryPlan{}, drop.None
		}
		v6, ok := r.mapper.LookupIPv4(v4)
		if !ok || !v6.Is6() {
			return QueryPlan{Kind: QueryPTRUnmapped}, drop.None
		}
		name, err := dns.ReverseAddr(v6.String())
		if err != nil {
			return QueryPlan{Kind: QueryPTRUnmapped}, drop.None
		}
		return QueryPlan{Kind: QueryPTRMapped, Name: name, Type: dns.TypePTR}, drop.None
	}
	return QueryPlan{}, drop.None
}

// parseInAddrArpa returns the address named by a full 4-label in-addr.arpa
// name (RFC 1035 §3.5), case-insensitively.
func parseInAddrArpa(name string) (netip.Addr, bool) {
	const suffix = ".in-addr.arpa."
	if len(name) <= len(suffix) || !strings.EqualFold(name[len(name)-len(suffix):], suffix) {
		return netip.Addr{}, false
	}
	labels := strings.Split(name[:len(name)-len(suffix)], ".")
	if len(labels) != 4 {
		return netip.Addr{}, false
	}
	var b [4]byte
	for i, l := range labels {
		if l == "" || len(l) > 3 || (len(l) > 1 && l[0] == '0') {
			return netip.Addr{}, false
		}
		n, err := strconv.ParseUint(l, 10, 8)
		if err != nil {
			return netip.Addr{}, false
		}
		b[3-i] = byte(n)
	}
	return netip.AddrFrom4(b), true
}

// excludedA reports whether a real IPv4 address counts as absent (RFC 6535
// §2.3.1: the configured set plus the pool, whose addresses must never
// reach an application as if they were real).
func (r *rules) excludedA(a netip.Addr) bool {
	a = a.Unmap()
	if !a.Is4() {
		return true
	}
	for _, p := range r.excl.Load().a {
		if p.Contains(a) {
			return true
		}
	}
	return r.mapper != nil && r.mapper.InPool(a)
}

// excludedAAAA reports whether an IPv6 address must not be mapped (RFC 6147
// §5.1.4 analogue: ::ffff:0:0/96 and other unusable ranges).
func (r *rules) excludedAAAA(a netip.Addr) bool {
	if !a.Is6() {
		return true
	}
	for _, p := range r.excl.Load().aaaa {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// aAnswerAllowsSynthesis reports whether an A response may be replaced.
// RFC 6535 §2.3: synthesize "if the A record query resulted in a negative
// response, all received real IPv4 addresses were excluded, or the A query
// timed out" (resp == nil), and "MUST NOT synthesize" when a non-excluded A
// is present. A negative response here is NOERROR/NODATA only: NXDOMAIN,
// SERVFAIL, REFUSED pass untouched (RFC 6147 §5.1.2 handles the error as
// normal DNS operation). A truncated answer is incomplete and passes so the
// application retries over TCP.
func (r *rules) aAnswerAllowsSynthesis(resp *dns.Msg) bool {
	if resp == nil {
		return true
	}
	if resp.Rcode != dns.RcodeSuccess || resp.Truncated {
		return false
	}
	for _, rr := range resp.Answer {
		if a, ok := rr.(*dns.A); ok {
			addr, ok := netip.AddrFromSlice(a.A.To4())
			if ok && !r.excludedA(addr) {
				return false
			}
		}
	}
	return true
}

// followChain follows CNAME and DNAME records in answer from qname (RFC 6535
// §2.3: "the CNAME or DNAME chain is followed until the first terminating A
// or AAAA record") and returns the final owner name, spelled as the chain
// spells it, and the chain records (with their RRSIGs) in answer order.
func followChain(qname string, answer []dns.RR) (string, []dns.RR) {
	cur := qname
	var used []dns.RR // at most two records per step
	for range maxChain {
		// A CNAME at cur wins; a DNAME at an ancestor gives the same
		// target through substitution and is kept with it (RFC 6672 §3.4).
		next := ""
		for _, rr := range answer {
			if v, ok := rr.(*dns.CNAME); ok && strings.EqualFold(v.Hdr.Name, cur) {
				next = v.Target
				used = append(used, rr)
				break
			}
		}
		for _, rr := range answer {
			v, ok := rr.(*dns.DNAME)
			if !ok || strings.EqualFold(v.Hdr.Name, cur) || !dns.IsSubDomain(v.Hdr.Name, cur) {
				continue
			}
			if next == "" {
				// RFC 6672 §2.2: replace the owner suffix by the target.
				prefix := cur[:len(cur)-len(v.Hdr.Name)]
				cand := prefix + v.Target
				if v.Target == "." {
					cand = prefix
				}
				if len(cand) > 255 || cand == "" {
					continue
				}
				next = cand
			}
			if !containsRR(used, rr) {
				used = append(used, rr)
			}
			break
		}
		if next == "" {
			break
		}
		cur = next
	}
	if len(used) == 0 {
		return cur, nil
	}
	// Keep answer order and the signatures of the chain RRsets.
	chain := make([]dns.RR, 0, len(used)*2)
	for _, rr := range answer {
		switch v := rr.(type) {
		case *dns.CNAME, *dns.DNAME:
			if containsRR(used, rr) {
				chain = append(chain, rr)
			}
		case *dns.RRSIG:
			if v.TypeCovered == dns.TypeCNAME || v.TypeCovered == dns.TypeDNAME {
				for _, u := range used {
					if u.Header().Rrtype == v.TypeCovered && strings.EqualFold(u.Header().Name, v.Hdr.Name) {
						chain = append(chain, rr)
						break
					}
				}
			}
		}
	}
	return cur, chain
}

// maxChain bounds the CNAME/DNAME steps followed (resolvers stop near
// there too), keeping the work linear in the size of the answer.
const maxChain = 16

func containsRR(rrs []dns.RR, x dns.RR) bool {
	for _, rr := range rrs {
		if rr == x {
			return true
		}
	}
	return false
}

// negativeTTL returns the negative-caching TTL of a response: the minimum of
// the SOA TTL and the SOA MINIMUM field (RFC 2308 §5), as RFC 6147 §5.1.7
// uses it.
func negativeTTL(resp *dns.Msg) (uint32, bool) {
	if resp == nil {
		return 0, false
	}
	for _, rr := range resp.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			return min(soa.Hdr.Ttl, soa.Minttl), true
		}
	}
	return 0, false
}

// synthesizeA builds the answer to query from the A response (nil when it
// timed out) and the AAAA response of the parallel lookup (nil when that
// failed). It returns nil when the A response must be delivered untouched,
// and the drop reason to count (DNSPoolExhausted when the pool refused some
// or all addresses).
//
// Rules (RFC 6535 §2.3, mirrored from RFC 6147 §5.1.4-§5.1.7, §5.4, §5.5):
//   - no synthesis over a non-excluded real A or an error rcode;
//   - AAAA records in the exclusion set are treated as absent; none left means
//     the A answer goes untouched;
//   - the CNAME/DNAME chain is kept and the A records are owned by its final
//     name;
//   - TTL = min(AAAA TTL, negative TTL of the A answer, configured cap); with
//     no SOA, the cap of NoSOATTL (600 s in RFC 6147 §5.1.7) applies instead;
//   - the question is the one the application sent (0x20 case kept);
//   - RRSIGs for the removed A set and negative proofs are dropped and AD is
//     cleared, since synthetic data cannot validate (RFC 6147 §5.5);
//   - the pool refusing every address gives the configured rcode.
func (r *rules) synthesizeA(query, aResp, aaaaResp *dns.Msg, requester netip.Addr) (*dns.Msg, drop.Reason) {
	if query == nil || len(query.Question) != 1 || !r.aAnswerAllowsSynthesis(aResp) {
		return nil, drop.None
	}
	if aaaaResp == nil || aaaaResp.Rcode != dns.RcodeSuccess || aaaaResp.Truncated {
		return nil, drop.None // RFC 6147 §5.1.2/§5.1.3 analogue: nothing usable
	}
	qname := query.Question[0].Name
	final6, chain6 := followChain(qname, aaaaResp.Answer)
	var addrs []netip.Addr
	aaaaTTL := r.maxTTL
	for _, rr := range aaaaResp.Answer {
		v, ok := rr.(*dns.AAAA)
		if !ok || !strings.EqualFold(v.Hdr.Name, final6) {
			continue
		}
		addr, ok := netip.AddrFromSlice(v.AAAA.To16())
		if !ok || len(v.AAAA) != net6Len || r.excludedAAAA(addr) {
			continue
		}
		if !containsAddr(addrs, addr) {
			addrs = append(addrs, addr)
		}
		aaaaTTL = min(aaaaTTL, v.Hdr.Ttl)
		if len(addrs) == r.maxSynth {
			break
		}
	}
	if len(addrs) == 0 {
		return nil, drop.None
	}

	// The chain kept is the A answer's when it leads to the same name (the
	// application's resolver got it); otherwise the AAAA answer's, so that
	// the synthesized owner is always reachable from the question.
	final, chain := final6, chain6
	if aResp != nil {
		if fa, ca := followChain(qname, aResp.Answer); strings.EqualFold(fa, final6) {
			final, chain = fa, ca
		}
	}

	ttl := aaaaTTL
	if neg, ok := negativeTTL(aResp); ok {
		ttl = min(ttl, neg)
	} else {
		ttl = min(ttl, r.noSOATTL)
		if aResp != nil {
			for _, rr := range aResp.Answer {
				if a, ok := rr.(*dns.A); ok {
					ttl = min(ttl, a.Hdr.Ttl)
				}
			}
		}
	}
	ttl = min(ttl, r.maxTTL)

	var reason drop.Reason
	synth := make([]dns.RR, 0, len(addrs))
	for _, v6 := range addrs {
		v4, err := r.mapper.MapIPv6(v6, requester, time.Duration(ttl)*time.Second)
		if err != nil || !v4.Is4() {
			reason = drop.DNSPoolExhausted
			continue
		}
		synth = append(synth, &dns.A{
			Hdr: dns.RR_Header{Name: final, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl},
			A:   v4.AsSlice(),
		})
	}
	if len(synth) == 0 {
		return localAnswer(query, r.poolRcode), drop.DNSPoolExhausted
	}

	base := aResp
	if base == nil {
		base = aaaaResp
	}
	out := responseHeader(query, base)
	out.Answer = make([]dns.RR, 0, len(chain)+len(synth))
	for _, rr := range chain {
		out.Answer = append(out.Answer, dns.Copy(rr))
	}
	out.Answer = append(out.Answer, synth...)
	// RFC 6147 §5.4: authority from the response used for synthesis; only
	// the NS set survives, negative proofs (SOA, NSEC, NSEC3) would
	// contradict the answer.
	for _, rr := range aaaaResp.Ns {
		switch v := rr.(type) {
		case *dns.NS:
			out.Ns = append(out.Ns, dns.Copy(rr))
		case *dns.RRSIG:
			if v.TypeCovered == dns.TypeNS {
				out.Ns = append(out.Ns, dns.Copy(rr))
			}
		}
	}
	copyEDNS(out, query, aResp)
	return out, reason
}

const net6Len = 16

func containsAddr(as []netip.Addr, a netip.Addr) bool {
	for _, x := range as {
		if x == a {
			return true
		}
	}
	return false
}

// rewritePTR answers a PTR query for a mapped pool address from the PTR
// response for the ip6.arpa name (RFC 6535 §2.3.3: "return the name received
// as a response to the application that initiated the IPv4 query"). The PTR
// records at the end of the ip6.arpa chain are renamed to the question name
// as the application sent it; the rcode is kept (NXDOMAIN stays NXDOMAIN).
// The ip6.arpa authority is dropped (off-tree for the question) and AD
// cleared (renamed data does not validate). It returns nil when the lookup
// gave nothing usable (nil or SERVFAIL-like).
func (r *rules) rewritePTR(query, ptrResp *dns.Msg, v6name string) *dns.Msg {
	if query == nil || len(query.Question) != 1 || ptrResp == nil {
		return nil
	}
	if ptrResp.Rcode != dns.RcodeSuccess && ptrResp.Rcode != dns.RcodeNameError {
		return nil
	}
	qname := query.Question[0].Name
	out := responseHeader(query, ptrResp)
	out.Rcode = ptrResp.Rcode
	final, _ := followChain(v6name, ptrResp.Answer)
	for _, rr := range ptrResp.Answer {
		if p, ok := rr.(*dns.PTR); ok && strings.EqualFold(p.Hdr.Name, final) {
			c := dns.Copy(p).(*dns.PTR)
			c.Hdr.Name = qname
			c.Hdr.Ttl = min(c.Hdr.Ttl, r.maxTTL)
			out.Answer = append(out.Answer, c)
		}
	}
	copyEDNS(out, query, nil)
	return out
}

// responseHeader starts a response to query with the flags of the upstream
// response base: the question as the application sent it (0x20 case kept),
// AD and AA cleared because the content is the ENR's, not the server's.
func responseHeader(query, base *dns.Msg) *dns.Msg {
	out := new(dns.Msg)
	out.Id = query.Id
	out.Response = true
	out.Opcode = query.Opcode
	out.RecursionDesired = query.RecursionDesired
	out.CheckingDisabled = query.CheckingDisabled
	out.RecursionAvailable = true
	if base != nil {
		out.RecursionAvailable = base.RecursionAvailable
	}
	out.Rcode = dns.RcodeSuccess
	out.Question = append([]dns.Question(nil), query.Question...)
	return out
}

// localAnswer is an answer the ENR gives itself (unmapped pool PTR, pool
// exhaustion): no records, the given rcode, EDNS0 mirrored.
func localAnswer(query *dns.Msg, rcode int) *dns.Msg {
	out := responseHeader(query, nil)
	out.Rcode = rcode
	copyEDNS(out, query, nil)
	return out
}

// copyEDNS adds an OPT record to out only if the query had one (RFC 6891
// §7): the server's OPT when known (its options, e.g. a cookie, belong to
// this client), else a fresh one; DO mirrors the query.
func copyEDNS(out, query, server *dns.Msg) {
	qopt := query.IsEdns0()
	if qopt == nil {
		return
	}
	var opt *dns.OPT
	if server != nil {
		if sopt := server.IsEdns0(); sopt != nil {
			opt = dns.Copy(sopt).(*dns.OPT)
		}
	}
	if opt == nil {
		opt = &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		opt.SetUDPSize(serverUDPSize)
	}
	opt.Hdr.Ttl = 0 // version 0, no extended rcode: our rcodes fit 4 bits
	opt.SetDo(qopt.Do())
	out.Extra = append(out.Extra, opt)
}

// serverUDPSize is the EDNS0 size the ENR advertises (DNS flag day 2020).
const serverUDPSize = 1232

// clientUDPSize is the largest UDP answer the client accepts (RFC 6891
// §6.2.5: at least 512).
func clientUDPSize(query *dns.Msg) int {
	if opt := query.IsEdns0(); opt != nil {
		return max(int(opt.UDPSize()), dns.MinMsgSize)
	}
	return dns.MinMsgSize
}

// fitMessage makes m fit in size bytes (RFC 1035 §4.2.1, RFC 2181 §9):
// authority and additional records go first (they are optional), then
// answer records are cut and TC is set.
func fitMessage(m *dns.Msg, size int) {
	if m.Len() <= size {
		return
	}
	m.Ns = nil
	opt := m.IsEdns0()
	m.Extra = m.Extra[:0]
	if opt != nil {
		m.Extra = append(m.Extra, opt)
	}
	m.Compress = true
	if m.Len() <= size {
		return
	}
	m.Truncate(size)
	m.Truncated = true
}
