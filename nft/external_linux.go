package nft

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
)

// Verify is rules: external. It installs nothing: it checks that the
// sysadmin's ruleset has what the daemon needs and returns a Ruleset bound
// to its sets (Remove is then a no-op):
//   - table ip Table4 with set pool4 (type ipv4_addr, flags interval);
//   - table ip6 Table6 with set mapped6 (type ipv6_addr, flags timeout);
//   - a rule queueing to the translation queue in each of the two tables
//     (host mode), and to the router translation queue (router mode);
//   - a rule queueing to the DNS queue in either table;
//   - in each table, a rule accepting packets with the daemon's mark (else
//     what the daemon emits would be queued again).
//
// Every missing item is reported, not just the first.
func Verify(cfg Config, opt Options) (*Ruleset, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("verify external ruleset: %w", err)
	}
	c, err := opt.conn()
	if err != nil {
		return nil, fmt.Errorf("verify external ruleset: %w", err)
	}
	r := &Ruleset{cfg: cfg, opt: opt, external: true}
	var errs []error
	dnsSeen := false
	for _, s := range ruleset(&r.cfg) {
		t, err := findTable(c, &s)
		if err != nil {
			return nil, fmt.Errorf("verify external ruleset: %w", err)
		}
		if t == nil {
			errs = append(errs, fmt.Errorf("table %s %s is missing", s.family, s.name))
			continue
		}
		for _, ss := range s.sets {
			set, err := c.GetSetByName(t, ss.name)
			switch {
			case err != nil:
				errs = append(errs, fmt.Errorf("set %s in table %s %s: %w", ss.name, s.family, s.name, err))
			case ss.interval && !set.Interval:
				errs = append(errs, fmt.Errorf("set %s in table %s %s needs flags interval", ss.name, s.family, s.name))
			case ss.timeout && !set.HasTimeout:
				errs = append(errs, fmt.Errorf("set %s in table %s %s needs flags timeout", ss.name, s.family, s.name))
			case ss.name == SetPool4:
				r.pool4 = set
			case ss.name == SetMapped6:
				r.mapped6 = set
			}
		}
		used, markOK, err := scanRules(c, t, cfg.Mark)
		if err != nil {
			return nil, fmt.Errorf("verify external ruleset: %w", err)
		}
		if !markOK {
			errs = append(errs, fmt.Errorf("table %s %s has no rule accepting mark 0x%08x (meta mark 0x%08x accept)",
				s.family, s.name, cfg.Mark, cfg.Mark))
		}
		if !cfg.NoHost && !used[cfg.Xlat.Num] {
			errs = append(errs, fmt.Errorf("table %s %s has no rule queueing to translation queue %d", s.family, s.name, cfg.Xlat.Num))
		}
		if r := cfg.Router; r != nil && !used[r.Xlat.Num] {
			errs = append(errs, fmt.Errorf("table %s %s has no rule queueing to router translation queue %d", s.family, s.name, r.Xlat.Num))
		}
		dnsSeen = dnsSeen || used[cfg.DNS.Num]
	}
	if !dnsSeen && (cfg.Router != nil || !cfg.NoHostDNS) {
		errs = append(errs, fmt.Errorf("no rule queues to DNS queue %d", cfg.DNS.Num))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("verify external ruleset: %w", err)
	}
	opt.logger().Info("using external nftables ruleset", "table4", cfg.Table4, "table6", cfg.Table6)
	return r, nil
}

// scanRules returns every queue number a rule of t sends to, and whether a
// rule accepts packets carrying mark.
func scanRules(c *nftables.Conn, t *nftables.Table, mark uint32) (map[uint16]bool, bool, error) {
	chains, err := c.ListChainsOfTableFamily(t.Family)
	if err != nil {
		return nil, false, fmt.Errorf("list chains: %w", err)
	}
	markOK := false
	used := map[uint16]bool{}
	addQueues := func(num, total uint16) {
		for i := uint32(0); i < uint32(max(total, 1)) && uint32(num)+i <= 0xffff; i++ {
			used[num+uint16(i)] = true
		}
	}
	for _, ch := range chains {
		if ch.Table.Name != t.Name {
			continue
		}
		rules, err := c.GetRules(t, ch)
		if err != nil {
			return nil, false, fmt.Errorf("list rules of %s: %w", ch.Name, err)
		}
		for _, rl := range rules {
			for _, e := range rl.Exprs {
				if num, total, _, ok := queueOf(e); ok {
					addQueues(num, total)
				}
			}
			markOK = markOK || acceptsMark(rl.Exprs, mark)
		}
	}
	return used, markOK, nil
}

// acceptsMark recognises "meta mark M accept" (what nft compiles it to).
func acceptsMark(ex []expr.Any, mark uint32) bool {
	if len(ex) != 3 {
		return false
	}
	m, ok1 := ex[0].(*expr.Meta)
	c, ok2 := ex[1].(*expr.Cmp)
	v, ok3 := ex[2].(*expr.Verdict)
	return ok1 && ok2 && ok3 && m.Key == expr.MetaKeyMARK && !m.SourceRegister &&
		c.Op == expr.CmpOpEq && c.Register == m.Register &&
		bytes.Equal(c.Data, binaryutil.NativeEndian.PutUint32(mark)) && v.Kind == expr.VerdictAccept
}

// queueOf decodes a native queue expression or an NFQUEUE target (every
// revision starts with u16 queuenum; v1+ add u16 queues_total, v3 flags).
func queueOf(e expr.Any) (num, total, flags uint16, ok bool) {
	switch q := e.(type) {
	case *expr.Queue:
		return q.Num, q.Total, uint16(q.Flag), true
	case *expr.Target:
		if q.Name != "NFQUEUE" {
			return 0, 0, 0, false
		}
		u, isRaw := q.Info.(*xt.Unknown)
		if !isRaw || len(*u) < 2 {
			return 0, 0, 0, false
		}
		b := []byte(*u)
		num, total = binaryutil.NativeEndian.Uint16(b[0:2]), 1
		if q.Rev >= 1 && len(b) >= 4 {
			total = binaryutil.NativeEndian.Uint16(b[2:4])
		}
		if q.Rev >= 3 && len(b) >= 6 {
			flags = binaryutil.NativeEndian.Uint16(b[4:6])
		}
		return num, total, flags, true
	}
	return 0, 0, 0, false
}
