package enr

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/bih-nfq/bih-nfq/internal/testenv"
)

var (
	dnsperfSent = regexp.MustCompile(`Queries sent:\s+(\d+)`)
	dnsperfLost = regexp.MustCompile(`Queries lost:\s+(\d+)`)
)

// BenchmarkStubDnsperf measures stub-mode throughput with dnsperf against
// the same unbound queried directly; ns/op is per query. The query mix is
// half synthesized (AAAA-only), half passed (A-only). Compare the two
// sub-benchmarks for the stub's cost.
func BenchmarkStubDnsperf(b *testing.B) {
	dnsperf := testenv.RequireCommand(b, "dnsperf")
	unbound := startUnbound(b)
	e := newTestENR(b, DefaultConfig(), newFakeMapper(1000), &DNSUpstream{Servers: []netip.AddrPort{unbound}})
	s := startStub(b, e, StubConfig{})
	data := filepath.Join(b.TempDir(), "queries")
	if err := os.WriteFile(data, []byte("v6only.bih.example A\nv4only.bih.example A\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	for _, target := range []struct {
		name string
		port int
	}{{"direct", int(unbound.Port())}, {"stub", int(s.Addr().Port())}} {
		b.Run(target.name, func(b *testing.B) {
			runs := b.N/2 + 1
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			b.ResetTimer()
			out, err := exec.CommandContext(ctx, dnsperf, "-s", "127.0.0.1", "-p", strconv.Itoa(target.port),
				"-d", data, "-n", strconv.Itoa(runs), "-c", "4", "-q", "64", "-t", "2").CombinedOutput()
			b.StopTimer()
			if err != nil {
				b.Fatalf("dnsperf: %v\n%s", err, out)
			}
			sm, lm := dnsperfSent.FindSubmatch(out), dnsperfLost.FindSubmatch(out)
			if sm == nil || lm == nil {
				b.Fatalf("cannot read dnsperf output:\n%s", out)
			}
			sent, _ := strconv.Atoi(string(sm[1])) // the regexp matched digits
			lost, _ := strconv.Atoi(string(lm[1]))
			// A loaded machine may lose a few to the 2 s timeout; more is a bug.
			if sent == 0 || lost*100 > sent {
				b.Fatalf("dnsperf lost %d of %d queries:\n%s", lost, sent, out)
			}
			b.ReportMetric(float64(lost)/float64(sent), "lost/query")
		})
	}
}
