package enr

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/bih-nfq/bih-nfq/internal/testenv"
)

// The conformance zone: every case of the ENR table as real data.
const confZone = `$ORIGIN bih.example.
@        3600 IN SOA ns hostmaster 1 3600 600 86400 60
@        3600 IN NS  ns
ns       3600 IN A   127.0.0.1
v6only    300 IN AAAA 2001:db8::1
v4only    300 IN A    192.0.2.1
dual      300 IN A    192.0.2.2
dual      300 IN AAAA 2001:db8::2
c1        300 IN CNAME c2
c2        300 IN CNAME c3
c3        300 IN CNAME chained
chained   300 IN AAAA 2001:db8::3
old       300 IN DNAME new.bih.example.
www.new   300 IN AAAA 2001:db8::4
excl      300 IN A    127.0.0.1
excl      300 IN AAAA 2001:db8::5
mixed     300 IN A    127.0.0.1
mixed     300 IN A    192.0.2.6
mixed     300 IN AAAA 2001:db8::6
nodata    300 IN TXT  "no address records"
`

const thirtyName = "thirty-aaaa-records.bih.example."

func confZones() (main, reverse string) {
	var b, r strings.Builder
	b.WriteString(confZone)
	r.WriteString("$ORIGIN 8.b.d.0.1.0.0.2.ip6.arpa.\n@ 3600 IN SOA ns.bih.example. hostmaster.bih.example. 1 3600 600 86400 60\n@ 3600 IN NS ns.bih.example.\n")
	ptr := func(addr, name string) {
		arpa, err := dns.ReverseAddr(addr)
		if err != nil {
			panic(err) // constant input
		}
		fmt.Fprintf(&r, "%s 300 IN PTR %s\n", arpa, name)
	}
	for i, n := range []string{"v6only", "dual", "chained", "www.new", "excl", "mixed"} {
		ptr(fmt.Sprintf("2001:db8::%d", i+1), n+".bih.example.")
	}
	for i := 1; i <= 30; i++ {
		a := fmt.Sprintf("2001:db8:30::%x", i)
		fmt.Fprintf(&b, "%s 300 IN AAAA %s\n", thirtyName, a)
		ptr(a, thirtyName)
	}
	return b.String(), r.String()
}

// startUnbound runs unbound on 127.0.0.1 with the conformance zones and
// returns its address. Only this process is killed at cleanup.
func startUnbound(t testing.TB) netip.AddrPort {
	t.Helper()
	bin := testenv.RequireCommand(t, "unbound")
	dir := t.TempDir()
	mainZone, revZone := confZones()
	for name, data := range map[string]string{"bih.zone": mainZone, "rev.zone": revZone, "empty.zone": ""} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var lastErr error
	for attempt := range 3 {
		port := freePort(t)
		conf := fmt.Sprintf(`server:
  interface: 127.0.0.1
  port: %d
  do-ip6: no
  do-daemonize: no
  chroot: ""
  username: ""
  directory: %q
  pidfile: ""
  use-syslog: no
  logfile: ""
  verbosity: 1
  num-threads: 1
  access-control: 127.0.0.0/8 allow
  module-config: "iterator"
  minimal-responses: yes
  local-zone: "8.b.d.0.1.0.0.2.ip6.arpa." nodefault
auth-zone:
  name: "bih.example."
  zonefile: %q
  for-downstream: yes
  for-upstream: yes
  fallback-enabled: no
auth-zone:
  name: "8.b.d.0.1.0.0.2.ip6.arpa."
  zonefile: %q
  for-downstream: yes
  for-upstream: yes
  fallback-enabled: no
auth-zone:
  name: "fail.example."
  zonefile: %q
  for-downstream: yes
  for-upstream: yes
  fallback-enabled: no
`, port, dir, filepath.Join(dir, "bih.zone"), filepath.Join(dir, "rev.zone"), filepath.Join(dir, "empty.zone"))
		confPath := filepath.Join(dir, fmt.Sprintf("unbound-%d.conf", attempt))
		if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		var log bytes.Buffer
		cmd := exec.Command(bin, "-d", "-c", confPath)
		cmd.Stdout, cmd.Stderr = &log, &log
		if err := cmd.Start(); err != nil {
			t.Fatalf("start unbound: %v", err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }() // exit status is in the log
		stop := func() {
			_ = cmd.Process.Kill() // our own child only
			<-exited
		}
		addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
		if lastErr = waitReady(addr, exited); lastErr == nil {
			t.Cleanup(stop)
			return addr
		}
		stop()
		lastErr = fmt.Errorf("%w; log:\n%s", lastErr, log.String())
	}
	t.Fatalf("unbound did not start: %v", lastErr)
	return netip.AddrPort{}
}

func freePort(t testing.TB) int {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().(*net.UDPAddr).Port
}

// waitReady polls (bounded) until unbound answers the zone's SOA.
func waitReady(addr netip.AddrPort, exited <-chan struct{}) error {
	c := &dns.Client{Timeout: 200 * time.Millisecond}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("unbound exited")
		default:
		}
		q := new(dns.Msg)
		q.SetQuestion("bih.example.", dns.TypeSOA)
		if r, _, err := c.Exchange(q, addr.String()); err == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) == 1 {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("no answer from %v within 10s", addr)
}

// confCase is one query of the conformance matrix.
type confCase struct {
	name   string
	qname  string
	qtype  uint16
	cd, do bool
	edns   uint16 // 0: no EDNS0 (512-byte UDP)
	tcp    bool
	want   string // "untouched", "synth", "local-nxdomain", "ptr"
	nA     int    // synthesized A records
	tc     bool   // TC expected (UDP cut)
	rcode  int    // expected rcode for untouched cases
}

func confCases() []confCase {
	return []confCase{
		{name: "AAAA-only", qname: "v6only.bih.example.", qtype: dns.TypeA, want: "synth", nA: 1},
		{name: "AAAA-only 0x20", qname: "V6oNlY.BiH.ExAmPlE.", qtype: dns.TypeA, want: "synth", nA: 1},
		{name: "AAAA-only DO", qname: "v6only.bih.example.", qtype: dns.TypeA, do: true, edns: 1232, want: "synth", nA: 1},
		{name: "AAAA-only CD", qname: "v6only.bih.example.", qtype: dns.TypeA, cd: true, want: "untouched"},
		{name: "A-only", qname: "v4only.bih.example.", qtype: dns.TypeA, want: "untouched"},
		{name: "dual-stack", qname: "dual.bih.example.", qtype: dns.TypeA, want: "untouched"},
		{name: "3-deep CNAME to AAAA-only", qname: "c1.bih.example.", qtype: dns.TypeA, want: "synth", nA: 1},
		{name: "DNAME", qname: "www.old.bih.example.", qtype: dns.TypeA, want: "synth", nA: 1},
		{name: "excluded A only", qname: "excl.bih.example.", qtype: dns.TypeA, want: "synth", nA: 1},
		{name: "mixed excluded and real A", qname: "mixed.bih.example.", qtype: dns.TypeA, want: "untouched"},
		{name: "NXDOMAIN", qname: "nx.bih.example.", qtype: dns.TypeA, want: "untouched", rcode: dns.RcodeNameError},
		{name: "NODATA for both", qname: "nodata.bih.example.", qtype: dns.TypeA, want: "untouched"},
		{name: "SERVFAIL zone", qname: "x.fail.example.", qtype: dns.TypeA, want: "untouched", rcode: dns.RcodeServerFailure},
		{name: "30 AAAA over 512-byte UDP", qname: thirtyName, qtype: dns.TypeA, want: "synth", nA: 30, tc: true},
		{name: "30 AAAA over EDNS 4096", qname: thirtyName, qtype: dns.TypeA, edns: 4096, want: "synth", nA: 30},
		{name: "30 AAAA over TCP", qname: thirtyName, qtype: dns.TypeA, tcp: true, want: "synth", nA: 30},
		{name: "AAAA query", qname: "v6only.bih.example.", qtype: dns.TypeAAAA, want: "untouched"},
		{name: "PTR for a mapped pool address", qtype: dns.TypePTR, qname: "mapped:2001:db8::1", want: "ptr"},
		{name: "PTR for a mapped pool address (30)", qtype: dns.TypePTR, qname: "mapped:2001:db8:30::1e", want: "ptr"},
		{name: "PTR for an unmapped pool address", qtype: dns.TypePTR, qname: "250.175.170.10.in-addr.arpa.", want: "local-nxdomain"},
		{name: "PTR for an IPv6 address", qtype: dns.TypePTR, qname: "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.", want: "untouched"},
	}
}

// confEnv resolves a case's query name (mapped PTR names depend on the
// pool) and checks answers against what unbound says directly.
type confEnv struct {
	unbound netip.AddrPort
	mapper  *fakeMapper
}

func (env *confEnv) direct(t *testing.T, name string, qt uint16, cd bool) *dns.Msg {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion(name, qt)
	q.CheckingDisabled = cd
	q.SetEdns0(4096, false)
	c := &dns.Client{Net: "tcp", Timeout: 3 * time.Second}
	r, _, err := c.Exchange(q, env.unbound.String())
	if err != nil {
		t.Fatalf("direct %s %s: %v", name, dns.TypeToString[qt], err)
	}
	return r
}

// qname returns the name to ask; "mapped:V6" is the in-addr.arpa name of
// the pool address mapped to V6 (mapping it first, as an A answer would).
func (env *confEnv) qname(t *testing.T, c confCase) string {
	t.Helper()
	v6s, ok := strings.CutPrefix(c.qname, "mapped:")
	if !ok {
		return c.qname
	}
	v4, err := env.mapper.MapIPv6(netip.MustParseAddr(v6s), netip.Addr{}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return reverse4(v4)
}

// answerKey renders records without TTL for comparison, sorted (servers
// rotate RRsets) unless order matters.
func answerKey(rrs []dns.RR) string { return answerKeyOrdered(rrs, true) }

func answerKeyOrdered(rrs []dns.RR, sorted bool) string {
	var out []string
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeOPT {
			continue
		}
		c := dns.Copy(rr)
		c.Header().Ttl = 0
		out = append(out, strings.ToLower(c.String()))
	}
	if sorted {
		slices.Sort(out)
	}
	return strings.Join(out, "\n")
}

// check verifies one answer of the matrix. rcode/tc/ad come from the
// client's view (dig output or a parsed packet).
func (env *confEnv) check(t *testing.T, c confCase, qname string, got *dns.Msg) {
	t.Helper()
	if len(got.Question) == 1 && got.Question[0].Name != qname {
		t.Errorf("question %q, want %q as sent", got.Question[0].Name, qname)
	}
	if got.AuthenticatedData {
		t.Error("AD set")
	}
	switch c.want {
	case "untouched":
		d := env.direct(t, qname, c.qtype, c.cd)
		if got.Rcode != d.Rcode || got.Rcode != c.rcode {
			t.Errorf("rcode %s, unbound says %s, want %s", dns.RcodeToString[got.Rcode], dns.RcodeToString[d.Rcode], dns.RcodeToString[c.rcode])
		}
		if answerKey(got.Answer) != answerKey(d.Answer) {
			t.Errorf("answer\n%s\nunbound says\n%s", answerKey(got.Answer), answerKey(d.Answer))
		}
		for _, rr := range got.Answer {
			if a, ok := rr.(*dns.A); ok && env.mapper.InPool(netip.AddrFrom4([4]byte(a.A.To4()))) {
				t.Errorf("pool address in an untouched answer: %v", rr)
			}
		}
	case "synth":
		dA := env.direct(t, qname, dns.TypeA, false)
		d6 := env.direct(t, qname, dns.TypeAAAA, false)
		if got.Rcode != dns.RcodeSuccess {
			t.Fatalf("rcode %s, want NOERROR", dns.RcodeToString[got.Rcode])
		}
		if got.Truncated != c.tc {
			t.Errorf("TC = %v, want %v", got.Truncated, c.tc)
		}
		final, chain := followChain(qname, dA.Answer)
		var gotChain, gotA []dns.RR
		for _, rr := range got.Answer {
			switch rr.Header().Rrtype {
			case dns.TypeA:
				gotA = append(gotA, rr)
			case dns.TypeRRSIG:
				t.Errorf("RRSIG left in the answer: %v", rr)
			default:
				gotChain = append(gotChain, rr)
			}
		}
		if answerKeyOrdered(gotChain, false) != answerKeyOrdered(chain, false) {
			t.Errorf("chain\n%s\nunbound's chain\n%s", answerKey(gotChain), answerKey(chain))
		}
		if c.tc {
			if len(gotA) >= c.nA {
				t.Errorf("%d A records in a truncated answer", len(gotA))
			}
		} else if len(gotA) != c.nA {
			t.Errorf("%d A records, want %d", len(gotA), c.nA)
		}
		neg, _ := negativeTTL(dA)
		if neg == 0 {
			neg = 600
		}
		want := map[string]bool{}
		var maxTTL uint32 = neg
		for _, rr := range d6.Answer {
			if a6, ok := rr.(*dns.AAAA); ok {
				v6, _ := netip.AddrFromSlice(a6.AAAA)
				v4, ok := env.mapper.LookupV6(v6)
				if !ok {
					t.Errorf("AAAA %v never mapped", v6)
				}
				want[v4.String()] = true
				maxTTL = min(maxTTL, a6.Hdr.Ttl)
			}
		}
		for _, rr := range dA.Answer {
			if a, ok := rr.(*dns.A); ok {
				maxTTL = min(maxTTL, a.Hdr.Ttl)
			}
		}
		for _, rr := range gotA {
			a := rr.(*dns.A)
			if !want[a.A.String()] {
				t.Errorf("A %v is not the mapping of one of %s's AAAA records", a.A, qname)
			}
			delete(want, a.A.String())
			if !strings.EqualFold(a.Hdr.Name, final) {
				t.Errorf("A owned by %s, want the chain's final name %s", a.Hdr.Name, final)
			}
			if a.Hdr.Ttl == 0 || a.Hdr.Ttl > maxTTL {
				t.Errorf("TTL %d, want in (0, %d]", a.Hdr.Ttl, maxTTL)
			}
		}
	case "local-nxdomain":
		if got.Rcode != dns.RcodeNameError || len(got.Answer) != 0 {
			t.Errorf("rcode %s with %d answers, want local NXDOMAIN", dns.RcodeToString[got.Rcode], len(got.Answer))
		}
	case "ptr":
		v6 := netip.MustParseAddr(strings.TrimPrefix(c.qname, "mapped:"))
		arpa, _ := dns.ReverseAddr(v6.String())
		d := env.direct(t, arpa, dns.TypePTR, false)
		if got.Rcode != dns.RcodeSuccess || len(got.Answer) != 1 || len(d.Answer) != 1 {
			t.Fatalf("PTR answer %v (unbound says %v)", got.Answer, d.Answer)
		}
		p, ok := got.Answer[0].(*dns.PTR)
		if !ok || p.Hdr.Name != qname || p.Ptr != d.Answer[0].(*dns.PTR).Ptr {
			t.Errorf("PTR %v, want %s PTR %s", got.Answer[0], qname, d.Answer[0].(*dns.PTR).Ptr)
		}
	}
}

// LookupV6 is the reverse of MapIPv6 for checks.
func (f *fakeMapper) LookupV6(v6 netip.Addr) (netip.Addr, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v4, ok := f.byV6[v6]
	return v4, ok
}

// TestConformanceUnbound runs the matrix against a real unbound, through
// stub mode (queried with dig over IPv4) and through the intercept
// functions (real query packets, real responses from unbound).
func TestConformanceUnbound(t *testing.T) {
	unbound := startUnbound(t)
	// The SERVFAIL zone must really fail, or that row tests nothing.
	env := &confEnv{unbound: unbound}
	if r := env.direct(t, "x.fail.example.", dns.TypeA, false); r.Rcode != dns.RcodeServerFailure {
		t.Fatalf("fail.example answers %s, want SERVFAIL", dns.RcodeToString[r.Rcode])
	}

	t.Run("stub", func(t *testing.T) {
		dig := testenv.RequireCommand(t, "dig")
		env := &confEnv{unbound: unbound, mapper: newFakeMapper(1000)}
		cfg := DefaultConfig()
		e := newTestENR(t, cfg, env.mapper, &DNSUpstream{Servers: []netip.AddrPort{unbound}})
		s := startStub(t, e, StubConfig{})
		for _, c := range confCases() {
			t.Run(c.name, func(t *testing.T) {
				qname := env.qname(t, c)
				got := runDig(t, dig, s.Addr(), qname, c)
				env.check(t, c, qname, got)
			})
		}
	})

	t.Run("intercept", func(t *testing.T) {
		env := &confEnv{unbound: unbound, mapper: newFakeMapper(1000)}
		e := newTestENR(t, DefaultConfig(), env.mapper, &DNSUpstream{})
		ic := NewInterceptor(e, InterceptOptions{ResolverPort: unbound.Port()})
		defer ic.Close()
		for i, c := range confCases() {
			if c.tcp {
				continue // the queue sees UDP only
			}
			t.Run(c.name, func(t *testing.T) {
				qname := env.qname(t, c)
				q := new(dns.Msg)
				q.SetQuestion(qname, c.qtype)
				q.Id = uint16(1000 + i)
				q.CheckingDisabled = c.cd
				if c.edns != 0 {
					q.SetEdns0(c.edns, c.do)
				}
				got := interceptExchange(t, ic, unbound, q)
				env.check(t, c, qname, got)
				if t.Failed() {
					t.Logf("counters: %v", e.Counters().Snapshot())
				}
			})
		}
	})
}

// interceptExchange plays the application: the query packet goes through
// Query, its payload to unbound from the same address and port, and
// unbound's response packet through Response.
func interceptExchange(t *testing.T, ic *Interceptor, unbound netip.AddrPort, q *dns.Msg) *dns.Msg {
	t.Helper()
	conn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	app := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	payload := packMsg(t, q)
	qr := ic.Query(udp(app, unbound, payload))
	if qr.Verdict == Drop {
		if qr.Inject == nil {
			t.Fatal("query dropped with nothing injected")
		}
		src, dst, m := checkUDP(t, qr.Inject)
		if src != unbound || dst != app {
			t.Errorf("injected %v → %v, want %v → %v", src, dst, unbound, app)
		}
		return m
	}
	if qr.Verdict != Accept || qr.Packet != nil {
		t.Fatalf("query verdict %+v, want accept untouched", qr)
	}
	if _, err := conn.WriteToUDPAddrPort(payload, unbound); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65535)
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	n, from, err := conn.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("no response from unbound: %v", err)
	}
	respPkt := udp(from, app, buf[:n])
	r := respond(t, ic, respPkt)
	if r.Verdict != Accept {
		t.Fatalf("response verdict %v", r.Verdict)
	}
	pkt := respPkt
	if r.Packet != nil {
		pkt = r.Packet
	}
	src, dst, m := checkUDP(t, pkt)
	if src != unbound || dst != app {
		t.Errorf("delivered %v → %v, want %v → %v", src, dst, unbound, app)
	}
	if limit := clientUDPSize(q); len(pkt)-28 > limit {
		t.Errorf("DNS payload %d bytes, client takes %d", len(pkt)-28, limit)
	}
	return m
}

var (
	digStatus = regexp.MustCompile(`status: ([A-Z]+)`)
	digFlags  = regexp.MustCompile(`;; flags:([a-z ]*);`)
	digQuery  = regexp.MustCompile(`(?m)^;(\S+)\s+IN\s+\S+\s*$`)
)

// runDig asks the stub with dig over IPv4 and rebuilds the answer from its
// output: rcode, flags, question and answer section.
func runDig(t *testing.T, dig string, stub netip.AddrPort, qname string, c confCase) *dns.Msg {
	t.Helper()
	args := []string{"-4", "+tries=1", "+time=5", "+ignore", "+nocookie", "-p", strconv.Itoa(int(stub.Port())), "@" + stub.Addr().String()}
	if c.edns == 0 {
		args = append(args, "+noedns")
	} else {
		args = append(args, "+bufsize="+strconv.Itoa(int(c.edns)))
	}
	if c.do {
		args = append(args, "+dnssec")
	}
	if c.cd {
		args = append(args, "+cd")
	}
	if c.tcp {
		args = append(args, "+tcp")
	}
	args = append(args, qname, dns.TypeToString[c.qtype])
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, dig, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("dig %v: %v\n%s", args, err, out)
	}
	text := string(out)
	m := new(dns.Msg)
	st := digStatus.FindStringSubmatch(text)
	fl := digFlags.FindStringSubmatch(text)
	qm := digQuery.FindStringSubmatch(text)
	if st == nil || fl == nil || qm == nil {
		t.Fatalf("cannot read dig output:\n%s", text)
	}
	rcode, ok := dns.StringToRcode[st[1]]
	if !ok {
		t.Fatalf("dig status %q", st[1])
	}
	m.Rcode = rcode
	for _, f := range strings.Fields(fl[1]) {
		switch f {
		case "tc":
			m.Truncated = true
		case "ad":
			m.AuthenticatedData = true
		}
	}
	m.Question = []dns.Question{{Name: qm[1], Qtype: c.qtype, Qclass: dns.ClassINET}}
	if _, sec, ok := strings.Cut(text, ";; ANSWER SECTION:\n"); ok {
		sec, _, _ = strings.Cut(sec, "\n\n")
		for _, line := range strings.Split(sec, "\n") {
			if strings.TrimSpace(line) == "" {
				continue
			}
			rr, err := dns.NewRR(line)
			if err != nil || rr == nil {
				t.Fatalf("dig answer line %q: %v", line, err)
			}
			m.Answer = append(m.Answer, rr)
		}
	}
	return m
}
