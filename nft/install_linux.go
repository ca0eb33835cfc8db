package nft

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/google/nftables/xt"
	"golang.org/x/sys/unix"
)

// Options are the run-time settings that are not part of the ruleset.
type Options struct {
	// NetNS is an open network namespace fd to work in; 0 means the
	// current one.
	NetNS int
	// Backend forces a queue backend; zero means probe the kernel.
	Backend Backend
	Logger  *slog.Logger
}

func (o *Options) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.Default()
	}
	return o.Logger
}

func (o *Options) conn() (*nftables.Conn, error) {
	var opts []nftables.ConnOption
	if o.NetNS != 0 {
		opts = append(opts, nftables.WithNetNSFd(o.NetNS))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("open nftables netlink: %w", err)
	}
	return c, nil
}

// Ruleset is an installed (or, in external mode, verified) ruleset. Its set
// methods are safe for concurrent use.
type Ruleset struct {
	cfg      Config
	opt      Options
	backend  Backend
	external bool

	mu      sync.Mutex // serialises batches on the sets
	pool4   *nftables.Set
	mapped6 *nftables.Set
}

var _ Sets = (*Ruleset)(nil)

// Backend reports which queue backend the rules use (Unknown in external
// mode: the sysadmin's rules decide).
func (r *Ruleset) Backend() Backend { return r.backend }

// testHookMidBatch, when set, runs after the first table has been queued in
// the install batch (tests use it to make the batch fail half-way).
var testHookMidBatch func(c *nftables.Conn, t *nftables.Table)

// Install installs both tables in one netlink batch. A table of the same name
// left by an earlier run (every rule tagged with Tag) is replaced in the same
// batch; a foreign table of that name is an error. On error nothing changed.
func Install(cfg Config, opt Options) (*Ruleset, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("install ruleset: %w", err)
	}
	log := opt.logger()
	be := opt.Backend
	if be == BackendUnknown {
		var err error
		if be, err = Probe(opt); err != nil {
			return nil, fmt.Errorf("install ruleset: %w", err)
		}
	}
	c, err := opt.conn()
	if err != nil {
		return nil, fmt.Errorf("install ruleset: %w", err)
	}
	r := &Ruleset{cfg: cfg, opt: opt, backend: be}
	specs := ruleset(&r.cfg)
	for i := range specs {
		old, err := findTable(c, &specs[i])
		if err != nil {
			return nil, fmt.Errorf("install ruleset: %w", err)
		}
		if old != nil {
			if err := checkOurs(c, old); err != nil {
				return nil, fmt.Errorf("install ruleset: %w", err)
			}
			log.Warn("replacing table left by an earlier run", "family", specs[i].family, "table", old.Name)
			c.DelTable(old)
		}
	}
	for i := range specs {
		t, sets, err := addTable(c, &specs[i], be)
		if err != nil {
			return nil, fmt.Errorf("install ruleset: %w", err)
		}
		if s := sets[SetPool4]; s != nil {
			r.pool4 = s
		}
		if s := sets[SetMapped6]; s != nil {
			r.mapped6 = s
		}
		if i == 0 && testHookMidBatch != nil {
			testHookMidBatch(c, t)
		}
	}
	if err := c.Flush(); err != nil {
		return nil, fmt.Errorf("install ruleset: %w", err)
	}
	log.Info("nftables ruleset installed", "table4", cfg.Table4, "table6", cfg.Table6, "queue_backend", be)
	return r, nil
}

// Remove deletes both tables in one batch. In external mode it does nothing.
func (r *Ruleset) Remove() error {
	if r.external {
		return nil
	}
	c, err := r.opt.conn()
	if err != nil {
		return fmt.Errorf("remove ruleset: %w", err)
	}
	n := 0
	for _, s := range ruleset(&r.cfg) {
		t, err := findTable(c, &s)
		if err != nil {
			return fmt.Errorf("remove ruleset: %w", err)
		}
		if t != nil {
			c.DelTable(t)
			n++
		}
	}
	if n == 0 {
		return nil
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("remove ruleset: %w", err)
	}
	return nil
}

func nfFamily(f family) nftables.TableFamily {
	if f == familyIP6 {
		return nftables.TableFamilyIPv6
	}
	return nftables.TableFamilyIPv4
}

// findTable returns the named table of the spec's family, or nil.
func findTable(c *nftables.Conn, s *tableSpec) (*nftables.Table, error) {
	ts, err := c.ListTablesOfFamily(nfFamily(s.family))
	if err != nil {
		return nil, fmt.Errorf("list %s tables: %w", s.family, err)
	}
	for _, t := range ts {
		if t.Name == s.name {
			return t, nil
		}
	}
	return nil, nil
}

// checkOurs accepts a table whose rules all carry our tag.
func checkOurs(c *nftables.Conn, t *nftables.Table) error {
	chains, err := c.ListChainsOfTableFamily(t.Family)
	if err != nil {
		return fmt.Errorf("list chains: %w", err)
	}
	for _, ch := range chains {
		if ch.Table.Name != t.Name {
			continue
		}
		rules, err := c.GetRules(t, ch)
		if err != nil {
			return fmt.Errorf("list rules of %s: %w", ch.Name, err)
		}
		for _, rl := range rules {
			if cm, _ := userdata.GetString(rl.UserData, userdata.TypeComment); !strings.HasPrefix(cm, Tag) {
				return fmt.Errorf("table %s exists and is not bih-nfq's (untagged rule in chain %s); rename ours or remove it",
					t.Name, ch.Name)
			}
		}
	}
	return nil
}

// addTable queues the table, its sets, chains and rules on c.
func addTable(c *nftables.Conn, s *tableSpec, be Backend) (*nftables.Table, map[string]*nftables.Set, error) {
	t := c.AddTable(&nftables.Table{Family: nfFamily(s.family), Name: s.name})
	sets := make(map[string]*nftables.Set, len(s.sets))
	for _, ss := range s.sets {
		set := &nftables.Set{Table: t, Name: ss.name, Interval: ss.interval, HasTimeout: ss.timeout}
		set.KeyType = nftables.TypeIPAddr
		if ss.keyType == "ipv6_addr" {
			set.KeyType = nftables.TypeIP6Addr
		}
		var els []nftables.SetElement
		for _, p := range ss.prefixes {
			e, err := prefixElements(p)
			if err != nil {
				return nil, nil, fmt.Errorf("set %s: %w", ss.name, err)
			}
			els = append(els, e...)
		}
		if err := c.AddSet(set, els); err != nil {
			return nil, nil, fmt.Errorf("set %s: %w", ss.name, err)
		}
		sets[ss.name] = set
	}
	chains := make(map[string]*nftables.Chain, len(s.chains))
	for _, cs := range s.chains {
		accept := nftables.ChainPolicyAccept
		chains[cs.name] = c.AddChain(&nftables.Chain{
			Name:     cs.name,
			Table:    t,
			Type:     nftables.ChainTypeFilter,
			Hooknum:  nfHook(cs.hook),
			Priority: nftables.ChainPriorityRef(nftables.ChainPriority(cs.prio)),
			Policy:   &accept,
		})
	}
	for i := range s.rules {
		rs := &s.rules[i]
		ex, err := rs.exprs(be, sets)
		if err != nil {
			return nil, nil, fmt.Errorf("rule %s: %w", rs.tag, err)
		}
		c.AddRule(&nftables.Rule{
			Table:    t,
			Chain:    chains[rs.chain],
			Exprs:    ex,
			UserData: userdata.AppendString(nil, userdata.TypeComment, Tag+rs.tag),
		})
	}
	return t, sets, nil
}

func nfHook(h hook) *nftables.ChainHook {
	switch h {
	case hookPrerouting:
		return nftables.ChainHookPrerouting
	case hookInput:
		return nftables.ChainHookInput
	case hookForward:
		return nftables.ChainHookForward
	}
	return nftables.ChainHookOutput
}

// exprs builds the rule's expressions exactly as nft compiles its text
// (compare `nft --debug=netlink`).
func (r *ruleSpec) exprs(be Backend, sets map[string]*nftables.Set) ([]expr.Any, error) {
	var ex []expr.Any
	for _, n := range []struct {
		name string
		key  expr.MetaKey
	}{{r.iifname, expr.MetaKeyIIFNAME}, {r.oifname, expr.MetaKeyOIFNAME}} {
		if n.name == "" {
			continue
		}
		// iifname "lan0": the name padded with NULs to IFNAMSIZ
		name := make([]byte, unix.IFNAMSIZ)
		copy(name, n.name)
		ex = append(ex,
			&expr.Meta{Key: n.key, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: name})
	}
	if r.mark != 0 {
		// meta mark 0x62696800
		ex = append(ex,
			&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(r.mark)})
	}
	for _, m := range []struct {
		set         string
		offset, len uint32
	}{{r.saddrSet, 12, 4}, {r.daddrSet, 16, 4}, {r.daddr6Set, 24, 16}} {
		if m.set == "" {
			continue
		}
		// ip saddr @lan4, ip daddr @pool4, ip6 daddr @lan6
		s := sets[m.set]
		if s == nil {
			return nil, fmt.Errorf("no set %s in this table", m.set)
		}
		ex = append(ex,
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: m.offset, Len: m.len},
			&expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID})
	}
	if r.daddr6.IsValid() {
		// ip6 daddr 2001:db8::1
		a := r.daddr6.As16()
		ex = append(ex,
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 24, Len: 16},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a[:]})
	}
	if r.icmp6ND {
		// icmpv6 type 133-137 (implies meta l4proto ipv6-icmp)
		ex = append(ex,
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_ICMPV6}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
			&expr.Cmp{Op: expr.CmpOpGte, Register: 1, Data: []byte{133}},
			&expr.Cmp{Op: expr.CmpOpLte, Register: 1, Data: []byte{137}})
	}
	for _, p := range []struct {
		port   uint16
		offset uint32
	}{{r.dport, 2}, {r.sport, 0}} {
		if p.port == 0 {
			continue
		}
		// udp dport 53 / udp sport 53 (implies meta l4proto udp)
		ex = append(ex,
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_UDP}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: p.offset, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(p.port)})
	}
	if r.queue == nil {
		return append(ex, &expr.Verdict{Kind: expr.VerdictAccept}), nil
	}
	// counter queue num N[-M] [fanout,bypass]
	ex = append(ex, &expr.Counter{})
	q, err := queueExpr(*r.queue, be)
	if err != nil {
		return nil, err
	}
	return append(ex, q), nil
}

// xt_NFQ_info_v3 flags (linux/netfilter/xt_NFQUEUE.h).
const (
	nfqFlagBypass    = 0x01
	nfqFlagCPUFanout = 0x02
)

func queueExpr(q Queue, be Backend) (expr.Any, error) {
	fanout := q.count() > 1 && q.CPUFanout
	switch be {
	case BackendNative:
		var f expr.QueueFlag
		if q.Bypass {
			f |= expr.QueueFlagBypass
		}
		if fanout {
			f |= expr.QueueFlagFanout
		}
		return &expr.Queue{Num: q.Num, Total: q.count(), Flag: f}, nil
	case BackendCompat:
		var f uint16
		if q.Bypass {
			f |= nfqFlagBypass
		}
		if fanout {
			f |= nfqFlagCPUFanout
		}
		return &expr.Target{Name: "NFQUEUE", Rev: 3, Info: nfqInfoV3(q.Num, q.count(), f)}, nil
	}
	return nil, fmt.Errorf("no queue backend (%v)", be)
}

// nfqInfoV3 is struct xt_NFQ_info_v3 {u16 queuenum, queues_total, flags} in
// host byte order, padded to XT_ALIGN (8) as nft_compat expects.
func nfqInfoV3(num, total, flags uint16) *xt.Unknown {
	b := make([]byte, 0, 8)
	b = append(b, binaryutil.NativeEndian.PutUint16(num)...)
	b = append(b, binaryutil.NativeEndian.PutUint16(total)...)
	b = append(b, binaryutil.NativeEndian.PutUint16(flags)...)
	b = append(b, 0, 0)
	u := xt.Unknown(b)
	return &u
}

// prefixElements is an interval set's [start, end) pair for p.
func prefixElements(p netip.Prefix) ([]nftables.SetElement, error) {
	if p.Addr().Is6() {
		return prefixElements6(p)
	}
	if !p.Addr().Is4() {
		return nil, fmt.Errorf("%v is not an IPv4 prefix", p)
	}
	p = p.Masked()
	start := p.Addr().As4()
	n := uint64(1) << (32 - p.Bits())
	end := uint64(binaryutil.BigEndian.Uint32(start[:])) + n
	if end > 0xffffffff {
		return nil, errors.New("prefixes reaching 255.255.255.255 are not supported")
	}
	return []nftables.SetElement{
		{Key: start[:]},
		{Key: binaryutil.BigEndian.PutUint32(uint32(end)), IntervalEnd: true},
	}, nil
}

// prefixElements6 is prefixElements for an IPv6 prefix.
func prefixElements6(p netip.Prefix) ([]nftables.SetElement, error) {
	p = p.Masked()
	start := p.Addr().As16()
	end := start
	// Add 2^(128-bits): one bit set at position bits, carried leftwards.
	bit := p.Bits()
	if bit == 0 {
		return nil, errors.New("::/0 is not supported")
	}
	i := (bit - 1) / 8
	carry := uint16(1) << (7 - uint((bit-1)%8))
	for ; i >= 0 && carry != 0; i-- {
		v := uint16(end[i]) + carry
		end[i], carry = byte(v), v>>8
	}
	if carry != 0 {
		return nil, errors.New("prefixes reaching ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff are not supported")
	}
	return []nftables.SetElement{
		{Key: start[:]},
		{Key: end[:], IntervalEnd: true},
	}, nil
}
