package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Paths, in table order.
var paths = []struct{ Key, Name string }{
	{"native", "native IPv6"},
	{"tayga", "TAYGA"},
	{"bihnfq", "bih-nfq"},
}

// Figure keys, in table order.
const (
	figTCPUp    = "tcp_up_gbps"
	figTCPDown  = "tcp_down_gbps"
	figRetrUp   = "tcp_up_retransmits"
	figRetrDown = "tcp_down_retransmits"
	figUDPRx    = "udp_delivered_kpps"
	figUDPLoss  = "udp_loss_pct"
	figUDPSent  = "udp_sent_kpps"
	figUDPShort = "udp_shortfall_pct"
	// The same at the saturating offered rate.
	figUDPSatRx    = "udp_sat_delivered_kpps"
	figUDPSatLoss  = "udp_sat_loss_pct"
	figUDPSatSent  = "udp_sat_sent_kpps"
	figUDPSatShort = "udp_sat_shortfall_pct"
	figRTT         = "rtt_us"
	figRTTAdded    = "rtt_added_us"
	figCPUUp       = "cpu_s_per_gb_tcp_up"
	figCPUDown     = "cpu_s_per_gb_tcp_down"
	figRSS         = "peak_rss_mb"
	figRSSAfterT   = "peak_rss_after_tcp_mb"
)

type figureDef struct {
	Key, Label, Unit string
	Digits           int
	NoRatio          bool // a bih-nfq / TAYGA ratio means nothing (counts)
}

var figureDefs = []figureDef{
	{figTCPUp, "TCP bulk host → server", "Gbit/s", 2, false},
	{figTCPDown, "TCP bulk server → host", "Gbit/s", 2, false},
	{figRetrUp, "TCP retransmits host → server", "segments", 0, true},
	{figRetrDown, "TCP retransmits server → host", "segments", 0, true},
	{figUDPSent, "64-byte UDP sent", "kpps", 1, false},
	{figUDPRx, "64-byte UDP delivered", "kpps", 1, false},
	{figUDPLoss, "64-byte UDP loss (of packets sent)", "%", 2, false},
	{figUDPShort, "64-byte UDP not delivered (of offered rate)", "%", 1, false},
	{figUDPSatSent, "64-byte UDP sent, saturating offer", "kpps", 1, false},
	{figUDPSatRx, "64-byte UDP delivered, saturating offer", "kpps", 1, false},
	{figUDPSatLoss, "64-byte UDP loss (of sent), saturating offer", "%", 2, false},
	{figUDPSatShort, "64-byte UDP not delivered (of offered), saturating offer", "%", 1, false},
	{figRTT, "RTT (ping, median)", "µs", 0, false},
	{figRTTAdded, "RTT added over native", "µs", 0, false},
	{figCPUUp, "translator CPU, TCP host → server", "s/GB", 2, false},
	{figCPUDown, "translator CPU, TCP server → host", "s/GB", 2, false},
	{figRSSAfterT, "translator peak RSS after the TCP tests", "MB", 1, false},
	{figRSS, "translator peak RSS, whole run", "MB", 1, false},
}

// Figure is one measured quantity on one path: every run's value and their
// median. A figure that does not apply (translator CPU on the native path)
// is absent.
type Figure struct {
	Unit   string    `json:"unit"`
	Median float64   `json:"median"`
	Runs   []float64 `json:"runs,omitempty"`
	Note   string    `json:"note,omitempty"`
}

// Summary is results.json.
type Summary struct {
	Date       string                        `json:"date"`
	Conditions map[string]string             `json:"conditions"`
	Paths      map[string]map[string]*Figure `json:"paths"`
	Ratios     map[string]float64            `json:"ratios_bihnfq_over_tayga"`
	Targets    []Target                      `json:"targets"`
	Daemon     *DaemonSummary                `json:"bihnfq_daemon,omitempty"`
	DNS        *DNSSummary                   `json:"dns,omitempty"`
	Problems   []string                      `json:"problems,omitempty"`
}

// DaemonSummary is what bih-nfq's status said before and after its tests.
type DaemonSummary struct {
	MappingsLoaded  int                `json:"mappings_loaded"`
	PoolUsed        int                `json:"pool_used"`
	PoolSize        int                `json:"pool_size"`
	DropsAfter      map[string]float64 `json:"drops_after"`
	QueuesAfter     any                `json:"queues_after,omitempty"`
	TranslatedAfter any                `json:"translated_after,omitempty"`
}

// Target is one of the goals of the performance issue, checked against this
// run.
type Target struct {
	Goal  string `json:"goal"`
	Value string `json:"value"`
	Met   bool   `json:"met"`
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// summarize reads the raw directory that bench.sh wrote.
func summarize(raw string) (*Summary, error) {
	meta, err := readEnv(filepath.Join(raw, "meta.env"))
	if err != nil {
		return nil, err
	}
	if len(meta) == 0 {
		return nil, fmt.Errorf("%s/meta.env: missing or empty", raw)
	}
	s := &Summary{
		Date:       meta["date"],
		Conditions: meta,
		Paths:      map[string]map[string]*Figure{},
		Ratios:     map[string]float64{},
	}
	clk, ok := envFloat(meta, "clk_tck")
	if !ok || clk <= 0 {
		clk = 100
	}
	offered, _ := envFloat(meta, "udp_offered_pps")
	offeredSat, _ := envFloat(meta, "udp_sat_offered_pps")
	for _, p := range paths {
		figs, problems := summarizePath(filepath.Join(raw, p.Key), clk, offered, offeredSat)
		for _, pr := range problems {
			s.Problems = append(s.Problems, p.Name+": "+pr)
		}
		s.Paths[p.Key] = figs
	}
	// Added RTT over native, from the medians.
	if nat := s.Paths["native"][figRTT]; nat != nil {
		for _, p := range paths {
			if f := s.Paths[p.Key][figRTT]; f != nil {
				s.Paths[p.Key][figRTTAdded] = &Figure{Unit: "µs", Median: f.Median - nat.Median,
					Note: "median RTT minus native median RTT"}
			}
		}
	}
	for _, d := range figureDefs {
		t, b := s.Paths["tayga"][d.Key], s.Paths["bihnfq"][d.Key]
		if !d.NoRatio && t != nil && b != nil && t.Median != 0 && !math.IsNaN(t.Median) && !math.IsNaN(b.Median) {
			s.Ratios[d.Key] = b.Median / t.Median
		}
	}
	if st, err := readStatus(filepath.Join(raw, "bihnfq-status-before.json")); err == nil {
		ds := &DaemonSummary{MappingsLoaded: len(st.Mappings)}
		for _, p := range st.Pools {
			ds.PoolUsed += p.Used
			ds.PoolSize += p.Size
		}
		if after, err := readStatus(filepath.Join(raw, "bihnfq-status-after.json")); err == nil {
			ds.DropsAfter = after.Drops
			ds.QueuesAfter = after.Queues
			ds.TranslatedAfter = after.Translated
		}
		s.Daemon = ds
	}
	if n, ok := envFloat(meta, "runs"); !ok || n < 3 {
		s.Problems = append(s.Problems, fmt.Sprintf("%s run(s) per path: fewer than 3, not a benchmark result", meta["runs"]))
	}
	s.Targets = targets(s)
	// tests/bench/dns.sh writes under raw/dns.
	if d, err := summarizeDNS(filepath.Join(raw, "dns")); err != nil {
		s.Problems = append(s.Problems, "DNS: "+err.Error())
	} else {
		s.DNS = d
	}
	return s, nil
}

// summarizePath reads one path's runs; clk is the clock tick rate, offered
// and offeredSat the UDP rates asked of iperf3 (fixed and saturating), in
// packets per second.
func summarizePath(dir string, clk, offered, offeredSat float64) (map[string]*Figure, []string) {
	var problems []string
	runs := map[string][]float64{}
	add := func(k string, v float64) { runs[k] = append(runs[k], v) }
	fail := func(err error) { problems = append(problems, err.Error()) }
	translator := false
	var hwmAfterTCP float64
	for _, rd := range runDirs(dir) {
		proc, err := readEnv(filepath.Join(rd, "proc.env"))
		if err != nil {
			fail(err)
		}
		if _, ok := proc["tcp_up_ticks"]; ok {
			translator = true
		}
		for _, t := range []struct{ file, fig, retr, ticks, cpu string }{
			{"tcp_up.json", figTCPUp, figRetrUp, "tcp_up_ticks", figCPUUp},
			{"tcp_down.json", figTCPDown, figRetrDown, "tcp_down_ticks", figCPUDown},
		} {
			r, err := readIperf(filepath.Join(rd, t.file))
			if err != nil {
				fail(err)
				continue
			}
			rx := r.End.SumReceived
			add(t.fig, rx.BitsPerSecond/1e9)
			add(t.retr, r.End.SumSent.Retransmits)
			if ticks, ok := envFloat(proc, t.ticks); ok && rx.Bytes > 0 {
				add(t.cpu, ticks/clk/(rx.Bytes/1e9))
			}
		}
		for _, u := range []struct {
			file                  string
			offered               float64
			sent, rx, loss, short string
		}{
			{"udp.json", offered, figUDPSent, figUDPRx, figUDPLoss, figUDPShort},
			{"udp_sat.json", offeredSat, figUDPSatSent, figUDPSatRx, figUDPSatLoss, figUDPSatShort},
		} {
			r, err := readIperf(filepath.Join(rd, u.file))
			if err != nil {
				fail(err)
				continue
			}
			tx, rx := r.End.SumSent, r.End.SumReceived
			add(u.sent, tx.Packets/tx.Seconds/1e3)
			delivered := (rx.Packets - rx.LostPackets) / rx.Seconds
			add(u.rx, delivered/1e3)
			if u.offered > 0 {
				// A sender slowed down by the path (a queue holding its
				// socket buffer) loses nothing in iperf3's count; this
				// figure counts what never arrived of what was asked.
				add(u.short, max(0, 100*(1-delivered/u.offered)))
			}
			add(u.loss, rx.LostPercent)
		}
		if rtts, sent, err := readPing(filepath.Join(rd, "ping.txt")); err != nil {
			fail(err)
		} else {
			if len(rtts) < sent {
				problems = append(problems, fmt.Sprintf("%s: ping: %d of %d replies", rd, len(rtts), sent))
			}
			add(figRTT, median(rtts))
		}
		if kb, ok := envFloat(proc, "tcp_hwm_kb"); ok {
			hwmAfterTCP = math.Max(hwmAfterTCP, kb)
		}
	}
	figs := map[string]*Figure{}
	for _, d := range figureDefs {
		if v := runs[d.Key]; len(v) > 0 {
			figs[d.Key] = &Figure{Unit: d.Unit, Median: median(v), Runs: v}
		}
	}
	if translator {
		final, err := readEnv(filepath.Join(dir, "proc.env"))
		if err != nil {
			fail(err)
		}
		if kb, ok := envFloat(final, "hwm_kb"); ok {
			figs[figRSS] = &Figure{Unit: "MB", Median: kb * 1024 / 1e6,
				Note: "VmHWM at the end of this path's tests (one process, one value)"}
		}
		if hwmAfterTCP > 0 {
			figs[figRSSAfterT] = &Figure{Unit: "MB", Median: hwmAfterTCP * 1024 / 1e6,
				Note: "largest VmHWM read right after a run's TCP tests"}
		}
	}
	return figs, problems
}

func med(s *Summary, path, fig string) (float64, bool) {
	f := s.Paths[path][fig]
	if f == nil || math.IsNaN(f.Median) {
		return 0, false
	}
	return f.Median, true
}

// targets checks the goals of the performance issue (ratios from this run).
func targets(s *Summary) []Target {
	var out []Target
	ratio := func(goal, fig string, min float64) {
		r, ok := s.Ratios[fig]
		if !ok {
			out = append(out, Target{Goal: goal, Value: "n/a"})
			return
		}
		out = append(out, Target{Goal: goal, Value: fmt.Sprintf("%.2f×", r), Met: r >= min})
	}
	ratio("TCP bulk host → server ≥ 3× TAYGA", figTCPUp, 3)
	ratio("TCP bulk server → host ≥ 3× TAYGA", figTCPDown, 3)
	// Delivered is a capacity: judged at the saturating offer. At the fixed
	// one no path can show more than the offer, so the ratio there is capped
	// (the native path's own ratio to TAYGA shows the cap); it is printed.
	if r, ok := s.Ratios[figUDPSatRx]; ok {
		v := fmt.Sprintf("%.2f×", r)
		if fixed, ok := s.Ratios[figUDPRx]; ok {
			v += fmt.Sprintf(" (at the fixed offer %.2f×", fixed)
			nat, ok1 := med(s, "native", figUDPRx)
			tay, ok2 := med(s, "tayga", figUDPRx)
			if ok1 && ok2 && tay > 0 {
				v += fmt.Sprintf(", native %.2f×", nat/tay)
			}
			v += ")"
		}
		out = append(out, Target{Goal: "64-byte UDP delivered ≥ 1.25× TAYGA (saturating offer)", Value: v, Met: r >= 1.25})
	} else {
		out = append(out, Target{Goal: "64-byte UDP delivered ≥ 1.25× TAYGA (saturating offer)", Value: "n/a"})
	}
	// Both readings must hold, at both offers: loss of what was sent, and
	// shortfall of what was offered (a back-pressured sender hides loss).
	var vals []string
	met, seen := true, 0
	for _, u := range []struct{ name, loss, short string }{
		{"fixed", figUDPLoss, figUDPShort}, {"saturating", figUDPSatLoss, figUDPSatShort},
	} {
		bl, ok1 := med(s, "bihnfq", u.loss)
		tl, ok2 := med(s, "tayga", u.loss)
		bs, ok3 := med(s, "bihnfq", u.short)
		ts, ok4 := med(s, "tayga", u.short)
		if !ok1 || !ok2 || !ok3 || !ok4 {
			continue
		}
		seen++
		vals = append(vals, fmt.Sprintf("%s: %.2f %% vs %.2f %%; %.1f %% vs %.1f %%", u.name, bl, tl, bs, ts))
		met = met && bl <= tl && bs <= ts
	}
	if seen > 0 {
		out = append(out, Target{Goal: "64-byte UDP loss ≤ TAYGA's at the same offered rate (of sent; of offered; both offers)",
			Value: strings.Join(vals, " — "), Met: met && seen == 2})
	}
	if b, ok1 := med(s, "bihnfq", figRTTAdded); ok1 {
		if t, ok2 := med(s, "tayga", figRTTAdded); ok2 {
			out = append(out, Target{Goal: "RTT added over native ≤ TAYGA's",
				Value: fmt.Sprintf("%.0f µs vs %.0f µs", b, t), Met: b <= t})
		}
	}
	if b, ok := med(s, "bihnfq", figRSSAfterT); ok {
		out = append(out, Target{Goal: "daemon peak RSS ≤ 50 MB during the TCP tests (mappings loaded)",
			Value: fmt.Sprintf("%.1f MB", b), Met: b <= 50})
	}
	return out
}

func writeFile(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
