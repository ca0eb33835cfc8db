package nft

import (
	"fmt"
	"net/netip"
	"strings"
)

// The ruleset is described once, as data: render.go turns it into nft text
// and install_linux.go into netlink expressions, so the two cannot drift
// (and the tests load both and compare them).

type family uint8

const (
	familyIP family = iota
	familyIP6
)

func (f family) String() string {
	if f == familyIP6 {
		return "ip6"
	}
	return "ip"
}

type hook uint8

const (
	hookPrerouting hook = iota
	hookInput
	hookOutput
	hookForward
)

func (h hook) String() string {
	return [...]string{"prerouting", "input", "output", "forward"}[h]
}

// Chain priorities (nf_ip_hook_priorities).
const (
	prioRaw    = -300 // before conntrack: translated packets never create state
	prioMangle = -150 // forward: ahead of the usual filter chains
	prioFilter = 0
)

type chainSpec struct {
	name string
	hook hook
	prio int32
}

type setSpec struct {
	name     string
	keyType  string // nft type name: ipv4_addr or ipv6_addr
	interval bool
	timeout  bool
	prefixes []netip.Prefix // initial elements of interval sets
}

// ruleSpec is one rule: its matches (all must hold) and its verdict.
type ruleSpec struct {
	chain string
	tag   string // after Tag; goes into the rule's comment

	iifname   string     // meta iifname == name
	oifname   string     // meta oifname == name
	mark      uint32     // meta mark == mark (0: no match)
	saddrSet  string     // ip saddr @set
	daddrSet  string     // ip daddr @set
	daddr6Set string     // ip6 daddr @set
	daddr6    netip.Addr // ip6 daddr == addr
	icmp6ND   bool       // icmpv6 type 133-137 (RS, RA, NS, NA, redirect)
	dport     uint16     // udp dport
	sport     uint16     // udp sport

	queue *Queue // queue verdict (with a counter); nil: accept
}

type tableSpec struct {
	family family
	name   string
	sets   []setSpec
	chains []chainSpec
	rules  []ruleSpec
}

// ruleset returns both tables; cfg must be valid.
func ruleset(cfg *Config) []tableSpec {
	xl, dns := cfg.Xlat, cfg.DNS
	own := func(chain string) ruleSpec {
		// nft: meta mark 0x62696800 accept comment "bih-nfq:own"
		return ruleSpec{chain: chain, tag: "own", mark: cfg.Mark}
	}
	ip := tableSpec{
		family: familyIP,
		name:   cfg.Table4,
		sets: []setSpec{
			// nft: set pool4 { type ipv4_addr; flags interval; elements = { 10.170.160.0/20 } }
			{name: SetPool4, keyType: "ipv4_addr", interval: true, prefixes: cfg.Pools},
		},
		chains: []chainSpec{
			{name: chainOutput, hook: hookOutput, prio: prioRaw},
			// After conntrack and NAT so responses are seen as the socket will.
			{name: chainInput, hook: hookInput, prio: prioFilter},
		},
		rules: []ruleSpec{own(chainOutput)},
	}
	hostDNS := !cfg.NoHost && !cfg.NoHostDNS
	if !cfg.NoHost {
		// nft: ip daddr @pool4 counter queue num 0 comment "bih-nfq:xlat-out"
		ip.rules = append(ip.rules, ruleSpec{chain: chainOutput, tag: "xlat-out", daddrSet: SetPool4, queue: &xl})
	}
	if hostDNS {
		// nft: udp dport 53 counter queue num 32 bypass comment "bih-nfq:dns-query"
		ip.rules = append(ip.rules, ruleSpec{chain: chainOutput, tag: "dns-query", dport: 53, queue: &dns})
	}
	ip.rules = append(ip.rules, own(chainInput))
	if hostDNS {
		// nft: udp sport 53 counter queue num 32 bypass comment "bih-nfq:dns-response"
		ip.rules = append(ip.rules, ruleSpec{chain: chainInput, tag: "dns-response", sport: 53, queue: &dns})
	}
	ip6 := tableSpec{
		family: familyIP6,
		name:   cfg.Table6,
		sets: []setSpec{
			// nft: set mapped6 { type ipv6_addr; flags timeout; }
			{name: SetMapped6, keyType: "ipv6_addr", timeout: true},
		},
	}
	if !cfg.NoHost {
		ip6.chains = []chainSpec{
			{name: chainPrerouting, hook: hookPrerouting, prio: prioRaw},
			{name: chainOutput, hook: hookOutput, prio: prioRaw},
			{name: chainInput, hook: hookInput, prio: prioFilter},
		}
		ip6.rules = []ruleSpec{
			own(chainPrerouting),
			// ND for the translation address is the kernel's job.
			// nft: ip6 daddr 2001:db8::1 icmpv6 type 133-137 accept comment "bih-nfq:nd"
			{chain: chainPrerouting, tag: "nd", daddr6: cfg.Source6, icmp6ND: true},
			// nft: ip6 daddr 2001:db8::1 counter queue num 0 comment "bih-nfq:xlat-in"
			{chain: chainPrerouting, tag: "xlat-in", daddr6: cfg.Source6, queue: &xl},
		}
		if hostDNS {
			ip6.rules = append(ip6.rules,
				own(chainOutput),
				// nft: udp dport 53 counter queue num 32 bypass comment "bih-nfq:dns-query"
				ruleSpec{chain: chainOutput, tag: "dns-query", dport: 53, queue: &dns},
				own(chainInput),
				// nft: udp sport 53 counter queue num 32 bypass comment "bih-nfq:dns-response"
				ruleSpec{chain: chainInput, tag: "dns-response", sport: 53, queue: &dns})
		} else {
			// Without DNS rules the ip6 output and input chains would be
			// empty: leave them out.
			ip6.chains = ip6.chains[:1]
		}
	}
	if r := cfg.Router; r != nil {
		routerRules(r, &ip, &ip6, &dns)
	}
	return []tableSpec{ip, ip6}
}

// routerRules adds router mode: the kernel forwards LAN packets to the pools
// and IPv6 packets to the LAN hosts' addresses (decrementing TTL and hop
// limit, sending Time Exceeded), and the forward hook hands them to the
// router translation queues (RFC 7915 §4, §5 as a router). DNS of the LAN
// hosts is queued wherever it goes: to this machine's resolver (input, and
// its answers at output) or through it (forward; answers of a resolver
// reached through translation are emitted by the daemon and meet the output
// rule).
func routerRules(r *Router, ip, ip6 *tableSpec, dns *Queue) {
	xl := r.Xlat
	ip.sets = append(ip.sets,
		// nft: set lan4 { type ipv4_addr; flags interval; elements = { 192.168.1.0/24 } }
		setSpec{name: SetLAN4, keyType: "ipv4_addr", interval: true, prefixes: r.Hosts})
	ip.chains = append(ip.chains,
		// DNS goes first, in its own chain: a queue verdict of accept
		// resumes at the next chain, where the packet may be translated.
		chainSpec{name: chainForwardDNS, hook: hookForward, prio: prioMangle - 10},
		chainSpec{name: chainForward, hook: hookForward, prio: prioMangle})
	ip6.sets = append(ip6.sets,
		// nft: set lan6 { type ipv6_addr; flags interval; elements = { 2001:db8:1:64::/96 } }
		setSpec{name: SetLAN6, keyType: "ipv6_addr", interval: true, prefixes: r.Addrs})
	ip6.chains = append(ip6.chains, chainSpec{name: chainForward, hook: hookForward, prio: prioMangle})
	for _, lan := range r.LAN {
		ip.rules = append(ip.rules,
			// nft: iifname "lan0" ip saddr @lan4 udp dport 53 counter queue num 32 bypass comment "bih-nfq:lan-dns-query"
			ruleSpec{chain: chainForwardDNS, tag: "lan-dns-query", iifname: lan, saddrSet: SetLAN4, dport: 53, queue: dns},
			// nft: iifname "lan0" ip saddr @lan4 ip daddr @pool4 counter queue num 16 comment "bih-nfq:lan-xlat-out"
			ruleSpec{chain: chainForward, tag: "lan-xlat-out", iifname: lan, saddrSet: SetLAN4, daddrSet: SetPool4, queue: &xl},
			// nft: iifname "lan0" ip saddr @lan4 udp dport 53 counter queue num 32 bypass comment "bih-nfq:lan-dns-local"
			ruleSpec{chain: chainInput, tag: "lan-dns-local", iifname: lan, saddrSet: SetLAN4, dport: 53, queue: dns},
			// nft: oifname "lan0" ip daddr @lan4 udp sport 53 counter queue num 32 bypass comment "bih-nfq:lan-dns-answer"
			ruleSpec{chain: chainOutput, tag: "lan-dns-answer", oifname: lan, daddrSet: SetLAN4, sport: 53, queue: dns})
	}
	// nft: ip6 daddr @lan6 counter queue num 16 comment "bih-nfq:lan-xlat-in"
	ip6.rules = append(ip6.rules, ruleSpec{chain: chainForward, tag: "lan-xlat-in", daddr6Set: SetLAN6, queue: &xl})
}

// text is the rule as one nft statement line.
func (r *ruleSpec) text() string {
	var b strings.Builder
	if r.iifname != "" {
		fmt.Fprintf(&b, "iifname %q ", r.iifname)
	}
	if r.oifname != "" {
		fmt.Fprintf(&b, "oifname %q ", r.oifname)
	}
	if r.mark != 0 {
		fmt.Fprintf(&b, "meta mark 0x%08x ", r.mark)
	}
	if r.saddrSet != "" {
		fmt.Fprintf(&b, "ip saddr @%s ", r.saddrSet)
	}
	if r.daddrSet != "" {
		fmt.Fprintf(&b, "ip daddr @%s ", r.daddrSet)
	}
	if r.daddr6Set != "" {
		fmt.Fprintf(&b, "ip6 daddr @%s ", r.daddr6Set)
	}
	if r.daddr6.IsValid() {
		fmt.Fprintf(&b, "ip6 daddr %s ", r.daddr6)
	}
	if r.icmp6ND {
		b.WriteString("icmpv6 type 133-137 ")
	}
	if r.dport != 0 {
		fmt.Fprintf(&b, "udp dport %d ", r.dport)
	}
	if r.sport != 0 {
		fmt.Fprintf(&b, "udp sport %d ", r.sport)
	}
	if r.queue != nil {
		b.WriteString("counter ")
		b.WriteString(r.queue.text())
	} else {
		b.WriteString("accept")
	}
	fmt.Fprintf(&b, " comment %q", Tag+r.tag)
	return b.String()
}

// text is the queue statement in the syntax every nft since 0.9 reads.
func (q Queue) text() string {
	s := fmt.Sprintf("queue num %d", q.Num)
	if q.count() > 1 {
		s = fmt.Sprintf("queue num %d-%d", q.Num, q.last())
	}
	var flags []string
	if q.count() > 1 && q.CPUFanout {
		flags = append(flags, "fanout")
	}
	if q.Bypass {
		flags = append(flags, "bypass")
	}
	if len(flags) > 0 {
		s += " " + strings.Join(flags, ",")
	}
	return s
}

func prioText(p int32) string {
	switch p {
	case prioRaw:
		return "raw"
	case prioFilter:
		return "filter"
	case prioMangle:
		return "mangle"
	}
	return fmt.Sprint(p)
}
