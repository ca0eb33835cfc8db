package nft

import (
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bih-nfq/bih-nfq/internal/hostnet/nstest"
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/google/nftables/xt"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func opts(ns *nstest.NS) Options { return Options{NetNS: ns.Fd(), Logger: quiet} }

// nativeQueueLoads asks nft itself whether this kernel takes a queue rule.
func nativeQueueLoads(t *testing.T, ns *nstest.NS) bool {
	t.Helper()
	f := writeTemp(t, "table ip probe_cli {\n\tchain c {\n\t\tqueue num 0 bypass\n\t}\n}\n")
	_, err := ns.Exec("nft", "-c", "-f", f)
	return err == nil
}

func writeTemp(t *testing.T, s string) string {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "*.nft")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

func TestProbe(t *testing.T) {
	ns := nstest.New(t)
	be, err := Probe(opts(ns))
	if err != nil {
		t.Fatal(err)
	}
	want := BackendCompat
	if nativeQueueLoads(t, ns) {
		want = BackendNative
	}
	t.Logf("probe: %v", be)
	if be != want {
		t.Fatalf("probe chose %v, nft CLI says %v", be, want)
	}
	if out := ns.Run(t, "nft", "list", "tables"); out != "" {
		t.Fatalf("probe left tables behind:\n%s", out)
	}
}

func TestInstallListRemove(t *testing.T) {
	ns := nstest.New(t)
	cfg := testConfig()
	r, err := Install(cfg, opts(ns))
	if err != nil {
		t.Fatal(err)
	}
	out, _ := ns.Exec("nft", "list", "ruleset") // stderr may warn about compat targets
	for _, want := range []string{
		"table ip bih_nfq", "table ip6 bih_nfq",
		"set pool4", "flags interval", "10.170.160.0/20", "172.21.80.0/20",
		"set mapped6", "flags timeout",
		"type filter hook output priority raw; policy accept;",
		"type filter hook prerouting priority raw; policy accept;",
		"type filter hook input priority filter; policy accept;",
		`meta mark 0x62696800 accept comment "bih-nfq:own"`,
		"ip daddr @pool4 counter", `"bih-nfq:xlat-out"`,
		"udp dport 53 counter", `"bih-nfq:dns-query"`,
		"udp sport 53 counter", `"bih-nfq:dns-response"`,
		"ip6 daddr 2001:db8::b1", `"bih-nfq:nd"`, `"bih-nfq:xlat-in"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("nft list ruleset lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("ruleset:\n%s", out)
	}
	// The queue rules really send to the configured queues.
	d := dump(t, ns, cfg)
	for _, want := range []string{"queue 4 total 2 flags 2", "queue 32 total 1 flags 1"} {
		if !strings.Contains(d, want) {
			t.Errorf("rules lack %q:\n%s", want, d)
		}
	}
	if err := r.Remove(); err != nil {
		t.Fatal(err)
	}
	if out := ns.Run(t, "nft", "list", "tables"); out != "" {
		t.Fatalf("tables left after Remove:\n%s", out)
	}
	if err := r.Remove(); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
}

// queueRE matches the queue statements Render writes.
var queueRE = regexp.MustCompile(`queue num (\d+)(?:-(\d+))?(?: ((?:fanout|bypass)(?:,(?:fanout|bypass))*))?`)

// markPlaceholder rewrites queue statements as "meta mark set" carrying
// num, total and flags, for kernels that refuse nft's queue expression.
func markPlaceholder(text string) string {
	return queueRE.ReplaceAllStringFunc(text, func(s string) string {
		m := queueRE.FindStringSubmatch(s)
		num, _ := strconv.Atoi(m[1])
		total := 1
		if m[2] != "" {
			last, _ := strconv.Atoi(m[2])
			total = last - num + 1
		}
		flags := 0
		if strings.Contains(m[3], "bypass") {
			flags |= 1
		}
		if strings.Contains(m[3], "fanout") {
			flags |= 2
		}
		return fmt.Sprintf("meta mark set 0x%04x%02x%02x", num, total, flags)
	})
}

// dump describes our two tables through netlink in a canonical form.
func dump(t *testing.T, ns *nstest.NS, cfg Config) string {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(ns.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, s := range ruleset(&cfg) {
		tb, err := findTable(c, &s)
		if err != nil || tb == nil {
			t.Fatalf("table %s %s: %v", s.family, s.name, err)
		}
		fmt.Fprintf(&b, "table %s %s\n", s.family, s.name)
		sets, err := c.GetSets(tb)
		if err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(sets, func(a, b *nftables.Set) int { return strings.Compare(a.Name, b.Name) })
		for _, st := range sets {
			els, err := c.GetSetElements(st)
			if err != nil {
				t.Fatal(err)
			}
			var keys []string
			for _, e := range els {
				if !e.IntervalEnd {
					keys = append(keys, fmt.Sprintf("%x", e.Key))
				}
			}
			slices.Sort(keys)
			fmt.Fprintf(&b, " set %s key %v interval %v timeout %v elements %v\n",
				st.Name, st.KeyType.Name, st.Interval, st.HasTimeout, keys)
		}
		chains, err := c.ListChainsOfTableFamily(tb.Family)
		if err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(chains, func(a, b *nftables.Chain) int { return strings.Compare(a.Name, b.Name) })
		for _, ch := range chains {
			if ch.Table.Name != tb.Name {
				continue
			}
			fmt.Fprintf(&b, " chain %s type %s hook %d prio %d policy %d\n",
				ch.Name, ch.Type, *ch.Hooknum, *ch.Priority, *ch.Policy)
			rules, err := c.GetRules(tb, ch)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rules {
				cm, _ := userdata.GetString(r.UserData, userdata.TypeComment)
				fmt.Fprintf(&b, "  rule %q:", cm)
				for i := 0; i < len(r.Exprs); i++ {
					b.WriteString(" ")
					b.WriteString(normExpr(r.Exprs, &i))
				}
				b.WriteString("\n")
			}
		}
	}
	return b.String()
}

func normExpr(ex []expr.Any, i *int) string {
	e := ex[*i]
	if num, total, flags, ok := queueOf(e); ok {
		return fmt.Sprintf("[queue %d total %d flags %d]", num, total, flags)
	}
	switch v := e.(type) {
	case *expr.Counter:
		return "[counter]"
	case *expr.Lookup:
		return fmt.Sprintf("[lookup reg %d set %s invert %v]", v.SourceRegister, v.SetName, v.Invert)
	case *expr.Immediate:
		// The placeholder: immediate + meta set mark.
		if m, ok := at[*expr.Meta](ex, *i+1); ok && m.SourceRegister && m.Key == expr.MetaKeyMARK && len(v.Data) == 4 {
			*i++
			x := binary.NativeEndian.Uint32(v.Data)
			return fmt.Sprintf("[queue %d total %d flags %d]", x>>16, (x>>8)&0xff, x&0xff)
		}
	case *expr.Target:
		if u, ok := v.Info.(*xt.Unknown); ok {
			return fmt.Sprintf("[target %s rev %d %x]", v.Name, v.Rev, []byte(*u))
		}
	}
	return fmt.Sprintf("%T%+v", e, e)
}

func at[T any](ex []expr.Any, i int) (T, bool) {
	var zero T
	if i >= len(ex) {
		return zero, false
	}
	v, ok := ex[i].(T)
	return v, ok
}

// TestRenderedTextEquivalent loads Render's text with nft -f in one
// namespace, installs through netlink in another, and compares the two.
func TestRenderedTextEquivalent(t *testing.T) {
	cfg := testConfig()
	text, err := Render(cfg)
	if err != nil {
		t.Fatal(err)
	}
	viaNetlink, viaText := nstest.New(t), nstest.New(t)
	if _, err := Install(cfg, opts(viaNetlink)); err != nil {
		t.Fatal(err)
	}
	if !nativeQueueLoads(t, viaText) {
		t.Log("kernel lacks nft's queue expression: queue statements loaded as mark placeholders")
		text = markPlaceholder(text)
		if strings.Contains(text, "queue num") {
			t.Fatal("placeholder substitution missed a queue statement")
		}
	}
	f := writeTemp(t, text)
	viaText.Run(t, "nft", "-c", "-f", f)
	viaText.Run(t, "nft", "-f", f)
	viaText.Run(t, "nft", "-f", f) // reloading replaces, does not duplicate
	a, b := dump(t, viaNetlink, cfg), dump(t, viaText, cfg)
	if a != b {
		t.Fatalf("netlink-installed ruleset:\n%s\ndiffers from nft -f of the rendered text:\n%s", a, b)
	}
	if n := strings.Count(a, "rule "); n != 12 {
		t.Fatalf("%d rules, want 12:\n%s", n, a)
	}
	// The rendered ruleset also passes external-mode verification when nft
	// can load it as is.
	if nativeQueueLoads(t, viaText) {
		if _, err := Verify(cfg, opts(viaText)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestInstallIsAtomic(t *testing.T) {
	ns := nstest.New(t)
	cfg := testConfig()
	breakBatch := func(c *nftables.Conn, tb *nftables.Table) {
		ch := c.AddChain(&nftables.Chain{Name: "broken", Table: tb})
		c.AddRule(&nftables.Rule{Table: tb, Chain: ch, Exprs: []expr.Any{
			&expr.Target{Name: "BIH_NO_SUCH_TARGET", Rev: 0, Info: &xt.Unknown{}},
		}})
	}
	testHookMidBatch = breakBatch
	_, err := Install(cfg, opts(ns))
	testHookMidBatch = nil
	if err == nil {
		t.Fatal("install with a broken rule mid-batch succeeded")
	}
	t.Logf("forced failure: %v", err)
	if out := ns.Run(t, "nft", "list", "tables"); out != "" {
		t.Fatalf("failed install left tables:\n%s", out)
	}

	// A failed replacement keeps the running ruleset intact.
	if _, err := Install(cfg, opts(ns)); err != nil {
		t.Fatal(err)
	}
	before := dump(t, ns, cfg)
	testHookMidBatch = breakBatch
	_, err = Install(cfg, opts(ns))
	testHookMidBatch = nil
	if err == nil {
		t.Fatal("broken replacement succeeded")
	}
	if after := dump(t, ns, cfg); after != before {
		t.Fatalf("failed replacement changed the ruleset:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

func TestLeftoverTables(t *testing.T) {
	ns := nstest.New(t)
	cfg := testConfig()
	r1, err := Install(cfg, opts(ns))
	if err != nil {
		t.Fatal(err)
	}
	if err := r1.AddMapped(netip.MustParseAddr("2001:db8:1::1"), 0); err != nil {
		t.Fatal(err)
	}
	want := dump(t, ns, cfg)
	// As after a crash: install again without Remove.
	if _, err := Install(cfg, opts(ns)); err != nil {
		t.Fatalf("replacing our leftover: %v", err)
	}
	got := dump(t, ns, cfg)
	if got == want || strings.Replace(want, "elements [20010db8000100000000000000000001]", "elements []", 1) != got {
		t.Fatalf("leftover not replaced cleanly:\nbefore:\n%s\nafter:\n%s", want, got)
	}

	// A foreign table of the same name is refused and kept.
	other := nstest.New(t)
	other.Run(t, "nft", "-f", writeTemp(t, "table ip bih_nfq {\n\tchain c {\n\t\tcounter\n\t}\n}\n"))
	_, err = Install(cfg, opts(other))
	if err == nil || !strings.Contains(err.Error(), "not bih-nfq's") {
		t.Fatalf("foreign table: got %v", err)
	}
	if out := other.Run(t, "nft", "list", "tables"); out != "table ip bih_nfq\n" {
		t.Fatalf("foreign table touched: %q", out)
	}
}

func TestSetElements(t *testing.T) {
	ns := nstest.New(t)
	cfg := testConfig()
	r, err := Install(cfg, opts(ns))
	if err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddr("2001:db8:5::7")
	short := netip.MustParseAddr("2001:db8:5::8")
	if err := r.AddMapped(a, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := r.AddMapped(short, 1*time.Second); err != nil {
		t.Fatal(err)
	}
	m, err := r.Mapped()
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := m[a]; !ok || e <= 20*time.Second || e > 30*time.Second {
		t.Fatalf("after add: %v (expires %v)", m, e)
	}
	if err := r.RefreshMapped(a, time.Hour); err != nil {
		t.Fatal(err)
	}
	if m, err = r.Mapped(); err != nil || m[a] < 59*time.Minute {
		t.Fatalf("after refresh: %v, %v", m, err)
	}
	if out := ns.Run(t, "nft", "list", "set", "ip6", "bih_nfq", "mapped6"); !strings.Contains(out, "2001:db8:5::7 timeout 1h") {
		t.Fatalf("nft list set:\n%s", out)
	}
	if err := r.RemoveMapped(a); err != nil {
		t.Fatal(err)
	}
	if err := r.RemoveMapped(a); err != nil {
		t.Fatalf("removing an absent element: %v", err)
	}
	// The 1 s element expires by itself; refreshing it afterwards re-adds it.
	deadline := time.Now().Add(5 * time.Second)
	for {
		m, err := r.Mapped()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := m[a]; ok {
			t.Fatalf("removed element still listed: %v", m)
		}
		if _, ok := m[short]; !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("1s element still there after 5s: %v", m)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := r.RefreshMapped(short, time.Minute); err != nil {
		t.Fatal(err)
	}
	if m, _ := r.Mapped(); m[short] == 0 {
		t.Fatalf("refresh of expired element did not re-add it: %v", m)
	}
	if err := r.AddMapped(netip.MustParseAddr("10.0.0.1"), 0); err == nil {
		t.Fatal("IPv4 address accepted into mapped6")
	}

	p := netip.MustParsePrefix("192.0.2.0/24")
	if err := r.AddPrefix(p); err != nil {
		t.Fatal(err)
	}
	if out := ns.Run(t, "nft", "list", "set", "ip", "bih_nfq", "pool4"); !strings.Contains(out, "192.0.2.0/24") {
		t.Fatalf("prefix not in pool4:\n%s", out)
	}
	if err := r.RemovePrefix(p); err != nil {
		t.Fatal(err)
	}
	out := ns.Run(t, "nft", "list", "set", "ip", "bih_nfq", "pool4")
	if strings.Contains(out, "192.0.2.0") || !strings.Contains(out, "10.170.160.0/20") {
		t.Fatalf("after RemovePrefix:\n%s", out)
	}
}

func TestVerifyExternal(t *testing.T) {
	ns := nstest.New(t)
	cfg := testConfig()
	_, err := Verify(cfg, opts(ns))
	if err == nil {
		t.Fatal("empty ruleset verified")
	}
	for _, want := range []string{"table ip bih_nfq is missing", "table ip6 bih_nfq is missing", "DNS queue 32"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	// The sysadmin's tables without queue rules: sets found, queues missing.
	text, _ := Render(cfg)
	ns.Run(t, "nft", "-f", writeTemp(t, queueRE.ReplaceAllString(text, "accept")))
	_, err = Verify(cfg, opts(ns))
	if err == nil || !strings.Contains(err.Error(), "translation queue 4") || strings.Contains(err.Error(), "set ") {
		t.Fatalf("ruleset without queues: %v", err)
	}
	ns.Run(t, "nft", "flush", "ruleset")

	// A complete ruleset (ours, as the sysadmin might load it) verifies, and
	// its sets work; Remove leaves it alone.
	if _, err := Install(cfg, opts(ns)); err != nil {
		t.Fatal(err)
	}
	r, err := Verify(cfg, opts(ns))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.AddMapped(netip.MustParseAddr("2001:db8::9"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := r.Remove(); err != nil {
		t.Fatal(err)
	}
	if out, _ := ns.Exec("nft", "list", "set", "ip6", "bih_nfq", "mapped6"); !strings.Contains(out, "2001:db8::9") {
		t.Fatalf("external set not updated or removed:\n%s", out)
	}
	cfg.DNS.Num = 40
	if _, err := Verify(cfg, opts(ns)); err == nil || !strings.Contains(err.Error(), "DNS queue 40") {
		t.Fatalf("wrong DNS queue number: %v", err)
	}
	cfg = testConfig()
	cfg.Mark = 7
	if _, err := Verify(cfg, opts(ns)); err == nil || !strings.Contains(err.Error(), "no rule accepting mark 0x00000007") {
		t.Fatalf("other mark: %v", err)
	}
}

func TestAddMappedAll(t *testing.T) {
	ns := nstest.New(t)
	r, err := Install(testConfig(), opts(ns))
	if err != nil {
		t.Fatal(err)
	}
	// More than one chunk, half with timeouts, as a restored pool gives them.
	var elems []MappedElement
	for i := range 2*mappedChunk + 7 {
		a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 9, 14: byte(i >> 8), 15: byte(i)})
		ttl := time.Duration(0)
		if i%2 == 1 {
			ttl = time.Hour
		}
		elems = append(elems, MappedElement{Addr: a, TTL: ttl})
	}
	start := time.Now()
	if err := r.AddMappedAll(elems); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d elements in %v", len(elems), time.Since(start))
	m := settledMapped(t, r, len(elems))
	if len(m) != len(elems) {
		t.Fatalf("set holds %d elements, want %d", len(m), len(elems))
	}
	for _, e := range elems {
		left, ok := m[e.Addr]
		if !ok || (e.TTL == 0) != (left == 0) || left > e.TTL {
			t.Fatalf("%v: present %v, %v left, want timeout %v", e.Addr, ok, left, e.TTL)
		}
	}
	// A bad element refuses the whole call before anything is sent.
	bad := []MappedElement{{Addr: netip.MustParseAddr("2001:db8:9::ffff")}, {Addr: netip.MustParseAddr("10.0.0.1")}}
	if err := r.AddMappedAll(bad); err == nil {
		t.Fatal("an IPv4 address was accepted into mapped6")
	}
	if m := settledMapped(t, r, len(elems)); len(m) != len(elems) {
		t.Errorf("a refused call changed the set: %d elements", len(m))
	}
}

// settledMapped lists set mapped6 until it shows want elements, for up to
// two seconds. The kernel grows a hash set's table after a large insert in
// the background, and a listing made meanwhile can miss elements the set
// holds (nft list set shows them all a moment later).
func settledMapped(t *testing.T, r *Ruleset, want int) map[netip.Addr]time.Duration {
	t.Helper()
	for end := time.Now().Add(2 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		m, err := r.Mapped()
		if err != nil {
			t.Fatal(err)
		}
		if len(m) == want || time.Now().After(end) {
			return m
		}
	}
}
