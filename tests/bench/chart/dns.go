package main

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// DNS cases written by tests/bench/dns.sh, in table order.
var dnsCases = []struct{ Key, Name, Query string }{
	{"direct", "resolver directly", "mix"},
	{"stub", "bih-nfq stub mode", "mix"},
	{"intercept", "bih-nfq intercept mode", "mix"},
	{"synth-stub", "bih-nfq stub, synthesized A only", "A for AAAA-only names"},
	{"synth-dns64", "Unbound dns64, synthesized AAAA only", "AAAA for A-only names"},
}

// DNSFigures is one DNS case: medians over the runs and every run's value.
type DNSFigures struct {
	Name    string  `json:"name"`
	Queries string  `json:"queries"`
	QPS     float64 `json:"qps"`
	P50us   float64 `json:"p50_us"`
	P90us   float64 `json:"p90_us"`
	P99us   float64 `json:"p99_us"`
	AvgUs   float64 `json:"avg_us"`
	MaxUs   float64 `json:"max_us"`
	LostPct float64 `json:"lost_pct"`
	// CPUus is the server process's CPU time (user + system) per answered
	// query: the resolver, the stub, the daemon, Unbound dns64.
	CPUus   float64   `json:"server_cpu_us_per_query"`
	RunsQPS []float64 `json:"runs_qps"`
	RunsP99 []float64 `json:"runs_p99_us,omitempty"`
}

// DNSSummary is the "dns" part of results.json.
type DNSSummary struct {
	Date       string                 `json:"date"`
	Conditions map[string]string      `json:"conditions"`
	Cases      map[string]*DNSFigures `json:"cases"`
	Ratios     map[string]float64     `json:"ratios"`
	Targets    []Target               `json:"targets"`
	Problems   []string               `json:"problems,omitempty"`
}

var (
	dnsQPS     = regexp.MustCompile(`Queries per second:\s+([0-9.]+)`)
	dnsSent    = regexp.MustCompile(`Queries sent:\s+(\d+)`)
	dnsLost    = regexp.MustCompile(`Queries lost:\s+(\d+)`)
	dnsDone    = regexp.MustCompile(`Queries completed:\s+(\d+)`)
	dnsLatency = regexp.MustCompile(`Average Latency \(s\):\s+([0-9.]+) \(min ([0-9.]+), max ([0-9.]+)\)`)
)

// dnsperfRun is what one dnsperf run said.
type dnsperfRun struct {
	qps, lostPct, avgUs, maxUs, done float64
	lat                              []float64 // µs, sorted; from -v
}

func readDnsperf(txt, lat string) (*dnsperfRun, error) {
	b, err := os.ReadFile(txt)
	if err != nil {
		return nil, err
	}
	s := string(b)
	q, sent, lost, l := dnsQPS.FindStringSubmatch(s), dnsSent.FindStringSubmatch(s), dnsLost.FindStringSubmatch(s), dnsLatency.FindStringSubmatch(s)
	if q == nil || sent == nil || lost == nil || l == nil {
		return nil, fmt.Errorf("%s: no dnsperf statistics", txt)
	}
	r := &dnsperfRun{}
	r.qps, _ = strconv.ParseFloat(q[1], 64) // the regexps matched numbers
	ns, _ := strconv.ParseFloat(sent[1], 64)
	nl, _ := strconv.ParseFloat(lost[1], 64)
	if ns == 0 || r.qps == 0 {
		return nil, fmt.Errorf("%s: no query answered", txt)
	}
	r.lostPct = 100 * nl / ns
	if d := dnsDone.FindStringSubmatch(s); d != nil {
		r.done, _ = strconv.ParseFloat(d[1], 64)
	}
	avg, _ := strconv.ParseFloat(l[1], 64)
	mx, _ := strconv.ParseFloat(l[3], 64)
	r.avgUs, r.maxUs = avg*1e6, mx*1e6
	f, err := os.Open(lat)
	if err != nil {
		return r, nil // no -v output: percentiles unknown
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, err := strconv.ParseFloat(strings.TrimSpace(sc.Text()), 64); err == nil {
			r.lat = append(r.lat, v*1e6)
		}
	}
	slices.Sort(r.lat)
	return r, sc.Err()
}

// percentile of sorted values (nearest rank).
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// summarizeDNS reads what dns.sh wrote under dir; nil when it did not run.
func summarizeDNS(dir string) (*DNSSummary, error) {
	meta, err := readEnv(filepath.Join(dir, "meta.env"))
	if err != nil {
		return nil, err
	}
	if len(meta) == 0 {
		return nil, nil
	}
	s := &DNSSummary{Date: meta["date"], Conditions: meta, Cases: map[string]*DNSFigures{}, Ratios: map[string]float64{}}
	clk, ok := envFloat(meta, "clk_tck")
	if !ok || clk <= 0 {
		clk = 100
	}
	for _, c := range dnsCases {
		var qps, p50, p90, p99, avg, mx, lost, cpu []float64
		for _, rd := range runFiles(filepath.Join(dir, c.Key)) {
			r, err := readDnsperf(rd+".txt", rd+".lat")
			if err != nil {
				s.Problems = append(s.Problems, c.Name+": "+err.Error())
				continue
			}
			qps = append(qps, r.qps)
			if env, _ := readEnv(rd + ".env"); r.done > 0 {
				if t, ok := envFloat(env, "server_cpu_ticks"); ok {
					cpu = append(cpu, t/clk*1e6/r.done)
				}
			}
			avg = append(avg, r.avgUs)
			mx = append(mx, r.maxUs)
			lost = append(lost, r.lostPct)
			if len(r.lat) > 0 {
				p50 = append(p50, percentile(r.lat, 50))
				p90 = append(p90, percentile(r.lat, 90))
				p99 = append(p99, percentile(r.lat, 99))
			}
			if r.lostPct > 1 {
				s.Problems = append(s.Problems, fmt.Sprintf("%s: %s lost %.1f %% of its queries", c.Name, filepath.Base(rd), r.lostPct))
			}
		}
		if want, ok := envFloat(meta, "runs"); ok && float64(len(qps)) < want {
			s.Problems = append(s.Problems, fmt.Sprintf("%s: %d of %.0f runs", c.Name, len(qps), want))
		}
		if len(qps) == 0 {
			continue
		}
		s.Cases[c.Key] = &DNSFigures{Name: c.Name, Queries: c.Query, QPS: median(qps), P50us: median(p50),
			P90us: median(p90), P99us: median(p99), AvgUs: median(avg), MaxUs: slices.Max(mx),
			LostPct: median(lost), CPUus: median(cpu), RunsQPS: qps, RunsP99: p99}
	}
	// dns.sh runs every case once per round: a ratio is the median of the
	// rounds' ratios, each from runs minutes apart.
	ratio := func(key, num, den string) {
		n, d := s.Cases[num], s.Cases[den]
		if n == nil || d == nil || len(n.RunsQPS) != len(d.RunsQPS) {
			return
		}
		var rs []float64
		for i := range n.RunsQPS {
			if d.RunsQPS[i] > 0 {
				rs = append(rs, n.RunsQPS[i]/d.RunsQPS[i])
			}
		}
		if len(rs) > 0 {
			s.Ratios[key] = median(rs)
		}
	}
	ratio("stub_over_direct", "stub", "direct")
	ratio("intercept_over_direct", "intercept", "direct")
	ratio("synth_stub_over_unbound_dns64", "synth-stub", "synth-dns64")
	goal := func(g, key string, min float64) {
		r, ok := s.Ratios[key]
		if !ok {
			s.Targets = append(s.Targets, Target{Goal: g, Value: "n/a"})
			return
		}
		s.Targets = append(s.Targets, Target{Goal: g, Value: fmt.Sprintf("%.2f×", r), Met: r >= min})
	}
	goal("DNS: stub mode ≥ 0.8× the resolver's direct qps", "stub_over_direct", 0.8)
	goal("DNS: intercept mode ≥ 0.7× the resolver's direct qps", "intercept_over_direct", 0.7)
	goal("DNS: stub synthesized qps ≥ Unbound dns64's synthesized qps", "synth_stub_over_unbound_dns64", 1)
	if n, ok := envFloat(meta, "runs"); !ok || n < 3 {
		s.Problems = append(s.Problems, fmt.Sprintf("DNS: %s run(s) per case: fewer than 3, not a benchmark result", meta["runs"]))
	}
	return s, nil
}

// runFiles lists DIR/run1, run2, ... (without extension) in numeric order.
func runFiles(dir string) []string {
	ents, _ := filepath.Glob(filepath.Join(dir, "run*.txt"))
	num := func(p string) int {
		n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(filepath.Base(p), "run"), ".txt"))
		return n
	}
	slices.SortFunc(ents, func(a, b string) int { return num(a) - num(b) })
	for i, e := range ents {
		ents[i] = strings.TrimSuffix(e, ".txt")
	}
	return ents
}

// dnsTable is the DNS table and its targets, as Markdown.
func dnsTable(s *DNSSummary) string {
	var b strings.Builder
	b.WriteString("| DNS path | queries | qps | p50 µs | p90 µs | p99 µs | avg µs | max µs | lost % | server CPU µs/query |\n")
	b.WriteString("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, c := range dnsCases {
		f := s.Cases[c.Key]
		if f == nil {
			fmt.Fprintf(&b, "| %s | %s | n/a | | | | | | | |\n", c.Name, c.Query)
			continue
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", f.Name, f.Queries, fmtNum(f.QPS, 0),
			fmtNum(f.P50us, 0), fmtNum(f.P90us, 0), fmtNum(f.P99us, 0), fmtNum(f.AvgUs, 0), fmtNum(f.MaxUs, 0), fmtNum(f.LostPct, 2), fmtNum(f.CPUus, 1))
	}
	b.WriteString("\n")
	b.WriteString(targetTable(s.Targets))
	return b.String()
}

func dnsConditions(s *DNSSummary) string {
	c := s.Conditions
	var b strings.Builder
	fmt.Fprintf(&b, "- Date: %s; load average %s at start, %s at end; dnsperf %s, unbound %s, bih-nfq %s.\n",
		c["date"], c["loadavg_start"], c["loadavg_end"], c["dnsperf"], c["unbound"], c["bihnfq"])
	fmt.Fprintf(&b, "- Each figure is the median of %s rounds, each case run once per round: `dnsperf -l %s -c %s -q %s -v` from the lab's host namespace (its own lab, tests/lab/lab.sh, LAB_MTU=1500), after an uncounted 3 s warm-up. "+
		"Ratios are medians of the rounds' ratios. Latency percentiles are of every answered query of a run (dnsperf -v); max is the largest of the runs.\n",
		c["runs"], c["duration_s"], c["clients"], c["outstanding"])
	fmt.Fprintf(&b, "- Names: %s A-only, %s dual-stack and %s AAAA-only, held in memory by the resolver (unbound, %s threads, in srv); the mix asks A for each, as an IPv4-only application does. "+
		"Stub mode: `bih-nfq run` with dns.mode stub on [::1]:53 in the host namespace, forwarding to the resolver. Intercept mode: `bih-nfq run` with its defaults, the queries going to the resolver. "+
		"Unbound dns64: module-config \"dns64 iterator\", dns64-prefix 64:ff9b::/96, %s threads, on [::1]:5364 in the host namespace, forwarding to the same resolver. "+
		"Server CPU: utime+stime of the answering process during the run (the resolver; the stub; the daemon, whose resolver is also working; Unbound dns64) per answered query; kernel work charged to other tasks is not in it. On a shared machine it moves less than qps does.\n",
		c["names_per_kind"], c["names_per_kind"], c["names_per_kind"], c["resolver_threads"], c["resolver_threads"])
	return b.String()
}

// dnsMarkdown is the DNS section of results.md and RESULTS.md (level is the
// heading prefix).
func dnsMarkdown(s *DNSSummary, level string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s DNS (dnsperf)\n\n", level)
	b.WriteString(dnsTable(s))
	b.WriteString("\n")
	b.WriteString(dnsConditions(s))
	if len(s.Problems) > 0 {
		b.WriteString("\nProblems during the DNS runs:\n\n")
		for _, p := range s.Problems {
			fmt.Fprintf(&b, "- %s\n", p)
		}
	}
	return b.String()
}
