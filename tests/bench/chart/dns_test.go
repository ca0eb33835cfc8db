package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeDnsperf(t *testing.T, dir, c string, run int, qps float64, lat []float64) {
	t.Helper()
	d := filepath.Join(dir, c)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	txt := fmt.Sprintf(`Statistics:

  Queries sent:         1000
  Queries completed:    990 (99.00%%)
  Queries lost:         10 (1.00%%)

  Queries per second:   %f

  Average Latency (s):  0.000500 (min 0.000020, max 0.004000)
`, qps)
	if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("run%d.txt", run)), []byte(txt), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []byte("server_cpu_ticks=99\n") // 0.99 s at 100 ticks/s for 990 answers
	if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("run%d.env", run)), env, 0o644); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, v := range lat {
		fmt.Fprintf(&b, "%.6f\n", v)
	}
	if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("run%d.lat", run)), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestSummarizeDNS: medians, percentiles, per-round ratios and targets from
// files shaped like dns.sh's.
func TestSummarizeDNS(t *testing.T) {
	dir := t.TempDir()
	if s, err := summarizeDNS(dir); err != nil || s != nil {
		t.Fatalf("no DNS runs: %v %v", s, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "meta.env"), []byte("date=d\nruns=3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	lat := make([]float64, 100)
	for i := range lat {
		lat[i] = float64(i+1) / 1e6 // 1..100 µs
	}
	qps := map[string][]float64{
		"direct":      {100, 200, 300},
		"stub":        {90, 150, 240}, // ratios 0.9, 0.75, 0.8
		"intercept":   {50, 100, 210}, // 0.5, 0.5, 0.7
		"synth-stub":  {100, 100, 100},
		"synth-dns64": {100, 200, 50}, // 1, 0.5, 2
	}
	for c, v := range qps {
		for i, q := range v {
			writeDnsperf(t, dir, c, i+1, q, lat)
		}
	}
	s, err := summarizeDNS(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Problems) != 0 {
		t.Errorf("problems: %v", s.Problems)
	}
	st := s.Cases["stub"]
	if st.QPS != 150 || st.P50us != 50 || st.P99us != 99 || st.P90us != 90 || math.Abs(st.AvgUs-500) > 1e-6 || st.MaxUs != 4000 || st.LostPct != 1 {
		t.Errorf("stub figures %+v", st)
	}
	if math.Abs(st.CPUus-1000) > 1e-6 {
		t.Errorf("server CPU %v µs/query, want 1000", st.CPUus)
	}
	want := map[string]float64{"stub_over_direct": 0.8, "intercept_over_direct": 0.5, "synth_stub_over_unbound_dns64": 1}
	for k, v := range want {
		if math.Abs(s.Ratios[k]-v) > 1e-9 {
			t.Errorf("%s = %v, want %v", k, s.Ratios[k], v)
		}
	}
	met := []bool{true, false, true}
	for i, tg := range s.Targets {
		if tg.Met != met[i] {
			t.Errorf("target %q met %v", tg.Goal, tg.Met)
		}
	}
	md := dnsMarkdown(s, "##")
	if !strings.Contains(md, "| bih-nfq stub mode | mix | 150 | 50 | 90 | 99 |") {
		t.Errorf("table:\n%s", md)
	}
	// A missing run leaves the ratio out rather than pairing wrong rounds.
	os.Remove(filepath.Join(dir, "stub", "run2.txt"))
	if s, _ = summarizeDNS(dir); s.Ratios["stub_over_direct"] != 0 || len(s.Problems) == 0 {
		t.Errorf("with a run missing: ratio %v, problems %v", s.Ratios["stub_over_direct"], s.Problems)
	}
}
