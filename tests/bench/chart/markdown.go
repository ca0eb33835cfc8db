package main

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

func fmtNum(v float64, digits int) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "n/a"
	}
	return fmt.Sprintf("%.*f", digits, v)
}

// table is the results table: one row per figure, medians per path, and the
// bih-nfq / TAYGA ratio.
func table(s *Summary) string {
	var b strings.Builder
	b.WriteString("| figure | unit |")
	for _, p := range paths {
		fmt.Fprintf(&b, " %s |", p.Name)
	}
	b.WriteString(" bih-nfq / TAYGA |\n|---|---|")
	for range paths {
		b.WriteString("--:|")
	}
	b.WriteString("--:|\n")
	for _, d := range figureDefs {
		any := false
		for _, p := range paths {
			if s.Paths[p.Key][d.Key] != nil {
				any = true
			}
		}
		if !any {
			continue
		}
		fmt.Fprintf(&b, "| %s | %s |", d.Label, d.Unit)
		for _, p := range paths {
			f := s.Paths[p.Key][d.Key]
			switch {
			case f == nil:
				b.WriteString(" n/a |")
			case d.Key == figRTTAdded && p.Key == "native":
				b.WriteString(" — |")
			default:
				fmt.Fprintf(&b, " %s |", fmtNum(f.Median, d.Digits))
			}
		}
		if r, ok := s.Ratios[d.Key]; ok {
			fmt.Fprintf(&b, " %s× |\n", fmtNum(r, 2))
		} else {
			b.WriteString(" — |\n")
		}
	}
	return b.String()
}

func targetTable(targets []Target) string {
	var b strings.Builder
	b.WriteString("| target (issue 6) | this run | met |\n|---|---|---|\n")
	for _, t := range targets {
		met := "no"
		if t.Met {
			met = "yes"
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", t.Goal, t.Value, met)
	}
	return b.String()
}

func conditions(s *Summary) string {
	c := s.Conditions
	var b strings.Builder
	fmt.Fprintf(&b, "- Date: %s; kernel %s; %s CPU(s) (%s); load average %s at start, %s at end.\n",
		c["date"], c["kernel"], c["cpus"], c["cpu_model"], c["loadavg_start"], c["loadavg_end"])
	fmt.Fprintf(&b, "- Topology: namespaces host — rtr — srv (tests/lab/lab.sh, LAB_MTU=1500), veth links at MTU 1500; translators' IPv4 link MTU 1480.\n")
	fmt.Fprintf(&b, "- Each figure is the median of %s runs; TCP and UDP tests last %s s each (%s).\n",
		c["runs"], c["duration_s"], c["iperf3"])
	pps, _ := envFloat(c, "udp_offered_pps")
	sat, _ := envFloat(c, "udp_sat_offered_pps")
	fmt.Fprintf(&b, "- UDP: %s-byte payloads offered at %s kpps (iperf3 -b %s), and at a saturating %s kpps (-b %s), on every path; delivered = receiver packets − lost, per second. "+
		"\"Loss\" is iperf3's (of packets sent); \"not delivered\" is of the offered rate, which also counts a sender slowed down by the path "+
		"(a queued packet keeps its socket's send buffer until the verdict). "+
		"The delivered target is judged at the saturating offer, above what the native path delivers: at the fixed one no path shows more than the offer.\n",
		c["udp_len"], fmtNum(pps/1e3, 0), c["udp_offered_bps"], fmtNum(sat/1e3, 0), c["udp_sat_offered_bps"])
	fmt.Fprintf(&b, "- RTT: ping -c 20 -i 0.05, median of each run's 20 samples. CPU: utime+stime of the translator process per 10⁹ bytes received by iperf3 (not counted: softirq work charged to other tasks). RSS: VmHWM, 1 MB = 10⁶ bytes.\n")
	fmt.Fprintf(&b, "- TAYGA %s (TUN nat64, explicit maps: pool address ↔ server, 172.21.112.1 ↔ an address of the host /64). bih-nfq (version %s) with its defaults.\n",
		c["tayga"], c["bihnfq"])
	if d := s.Daemon; d != nil {
		hwm, _ := envFloat(c, "bihnfq_start_hwm_kb")
		fmt.Fprintf(&b, "- bih-nfq mappings loaded: %d in its table (pool %d of %d addresses used; %s preloaded through the pool journal); start-up with them took %s s, after which its VmHWM was %s MB (before any traffic).\n",
			d.MappingsLoaded, d.PoolUsed, d.PoolSize, c["mappings_preloaded"], c["bihnfq_startup_s"], fmtNum(hwm*1024/1e6, 1))
		if len(d.DropsAfter) > 0 {
			keys := make([]string, 0, len(d.DropsAfter))
			for k := range d.DropsAfter {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			var parts []string
			for _, k := range keys {
				parts = append(parts, fmt.Sprintf("%s %.0f", k, d.DropsAfter[k]))
			}
			fmt.Fprintf(&b, "- bih-nfq drop counters at the end: %s.\n", strings.Join(parts, ", "))
		}
	}
	identical := c["offloads_identical"]
	fmt.Fprintf(&b, "- Offload settings (%s) of every topology link recorded per path: identical = %s.\n",
		c["offload_tool"], identical)
	return b.String()
}

func resultsMarkdown(s *Summary) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# bih-nfq benchmark — %s\n\n", s.Date)
	b.WriteString(table(s))
	b.WriteString("\n")
	b.WriteString(targetTable(s.Targets))
	b.WriteString("\n")
	b.WriteString(conditions(s))
	if s.DNS != nil {
		b.WriteString("\n" + dnsMarkdown(s.DNS, "##"))
	}
	if len(s.Problems) > 0 {
		b.WriteString("\nProblems during the run:\n\n")
		for _, p := range s.Problems {
			fmt.Fprintf(&b, "- %s\n", p)
		}
	}
	return b.String()
}

// repoMarkdown is tests/bench/RESULTS.md: how to reproduce, then the latest
// results.
func repoMarkdown(s *Summary) string {
	var b strings.Builder
	b.WriteString("# Benchmark results\n\n")
	b.WriteString("Written by `make bench` (tests/bench/bench.sh, as root): native IPv6, TAYGA and\n")
	b.WriteString("bih-nfq measured in one run on the same namespace topology. The full output\n")
	b.WriteString("(results.md, results.json, results.png, raw iperf3/ping data and offload\n")
	b.WriteString("records) is in tests/bench/results/, which is not committed. Figures from a\n")
	b.WriteString("shared 2-core machine are noisy; compare ratios from the same run.\n\n")
	fmt.Fprintf(&b, "## Latest run: %s\n\n", s.Date)
	b.WriteString(table(s))
	b.WriteString("\nRatios are bih-nfq / TAYGA of the medians; \"RTT added over native\" is each\n")
	b.WriteString("path's median RTT minus the native median RTT.\n\n")
	b.WriteString(targetTable(s.Targets))
	b.WriteString("\n### Conditions\n\n")
	b.WriteString(conditions(s))
	if s.DNS != nil {
		b.WriteString("\n" + dnsMarkdown(s.DNS, "###"))
	}
	if len(s.Problems) > 0 {
		b.WriteString("\n### Problems during the run\n\n")
		for _, p := range s.Problems {
			fmt.Fprintf(&b, "- %s\n", p)
		}
	}
	return b.String()
}
