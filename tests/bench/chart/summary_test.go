package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{7}, 7},
	} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
	if !math.IsNaN(median(nil)) {
		t.Error("median(nil) is not NaN")
	}
}

func put(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func tcpJSON(gbps float64) string {
	bytes := gbps * 1e9 / 8 * 5
	return fmt.Sprintf(`{"end":{"sum_sent":{"seconds":5,"bytes":%g,"bits_per_second":%g,"retransmits":3},
"sum_received":{"seconds":5,"bytes":%g,"bits_per_second":%g}}}`, bytes, gbps*1e9, bytes, gbps*1e9)
}

func udpJSON(sent, lost float64) string {
	return fmt.Sprintf(`{"end":{"sum_sent":{"seconds":5,"packets":%g},
"sum_received":{"seconds":5,"packets":%g,"lost_packets":%g,"lost_percent":%g}}}`, sent, sent, lost, 100*lost/sent)
}

func pingTxt(ms ...float64) string {
	var b strings.Builder
	for i, v := range ms {
		fmt.Fprintf(&b, "64 bytes from x: icmp_seq=%d ttl=64 time=%.3f ms\n", i+1, v)
	}
	fmt.Fprintf(&b, "%d packets transmitted, %d received, 0%% packet loss\n", len(ms), len(ms))
	return b.String()
}

// TestSummarize builds a raw directory like bench.sh's and checks the
// medians, the derived figures, the ratios and the targets.
func TestSummarize(t *testing.T) {
	raw := t.TempDir()
	put(t, filepath.Join(raw, "meta.env"), "date=2026-01-01T00:00:00Z\nclk_tck=100\nruns=3\nudp_offered_pps=200000\nudp_sat_offered_pps=400000\n")
	// At the saturating offer: packets sent and lost in 5 s.
	sat := map[string][2]float64{"native": {550000, 0}, "tayga": {450000, 225000}, "bihnfq": {460000, 10000}}
	gb := map[string][]float64{"native": {10, 12, 11}, "tayga": {1, 0.8, 0.9}, "bihnfq": {3, 2.7, 2.9}}
	rtt := map[string]float64{"native": 0.05, "tayga": 0.12, "bihnfq": 0.10}
	for path, rates := range gb {
		for i, g := range rates {
			d := filepath.Join(raw, path, fmt.Sprintf("run%d", i+1))
			put(t, filepath.Join(d, "tcp_up.json"), tcpJSON(g))
			put(t, filepath.Join(d, "tcp_down.json"), tcpJSON(g*2))
			put(t, filepath.Join(d, "udp.json"), udpJSON(500000, 1000))
			put(t, filepath.Join(d, "udp_sat.json"), udpJSON(sat[path][0], sat[path][1]))
			put(t, filepath.Join(d, "ping.txt"), pingTxt(rtt[path], rtt[path]+1, rtt[path]))
			if path != "native" {
				put(t, filepath.Join(d, "proc.env"), "tcp_hwm_kb=20000\ntcp_up_ticks=500\ntcp_down_ticks=250\nhwm_kb=30000\n")
			}
		}
		if path != "native" {
			put(t, filepath.Join(raw, path, "proc.env"), "hwm_kb=40000\n")
		}
	}
	s, err := summarize(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Problems) != 0 {
		t.Fatalf("problems: %v", s.Problems)
	}
	near := func(what string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-6*math.Max(1, math.Abs(want)) {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	near("native tcp up", s.Paths["native"][figTCPUp].Median, 11)
	near("tayga tcp down", s.Paths["tayga"][figTCPDown].Median, 1.8)
	near("ratio tcp up", s.Ratios[figTCPUp], 2.9/0.9)
	near("udp delivered", s.Paths["tayga"][figUDPRx].Median, (500000-1000)/5/1e3)
	near("udp shortfall", s.Paths["tayga"][figUDPShort].Median, 100*(1-(500000-1000)/5/200000.0))
	near("udp delivered, saturating", s.Paths["bihnfq"][figUDPSatRx].Median, 90)
	near("udp shortfall, saturating", s.Paths["tayga"][figUDPSatShort].Median, 100*(1-45/400.0))
	near("ratio udp delivered, saturating", s.Ratios[figUDPSatRx], 2)
	near("rtt", s.Paths["tayga"][figRTT].Median, 120)
	near("rtt added", s.Paths["bihnfq"][figRTTAdded].Median, 50)
	// 5 s of CPU for 0.9 GB × 5 s / 8 moved.
	near("cpu up", s.Paths["tayga"][figCPUUp].Median, 5/(0.9*5/8))
	near("rss", s.Paths["bihnfq"][figRSS].Median, 40000*1024/1e6)
	if s.Paths["native"][figCPUUp] != nil || s.Paths["native"][figRSS] != nil {
		t.Error("native has translator figures")
	}
	if _, ok := s.Ratios[figRetrUp]; ok {
		t.Error("ratio of retransmit counts")
	}
	met := map[string]bool{}
	value := map[string]string{}
	for _, tg := range s.Targets {
		met[tg.Goal], value[tg.Goal] = tg.Met, tg.Value
	}
	const udpRx = "64-byte UDP delivered ≥ 1.25× TAYGA (saturating offer)"
	if want := "2.00× (at the fixed offer 1.00×, native 1.00×)"; value[udpRx] != want {
		t.Errorf("UDP delivered target: %q, want %q", value[udpRx], want)
	}
	for goal, want := range map[string]bool{
		"TCP bulk host → server ≥ 3× TAYGA": true, // 3.22×
		udpRx:                               true, // 2×, though 1× at the fixed offer
		"64-byte UDP loss ≤ TAYGA's at the same offered rate (of sent; of offered; both offers)": true,
		"RTT added over native ≤ TAYGA's": true,
	} {
		if got, ok := met[goal]; !ok || got != want {
			t.Errorf("target %q: met = %v (present %v), want %v", goal, got, ok, want)
		}
	}
	md := resultsMarkdown(s)
	if !strings.Contains(md, "| TCP bulk host → server | Gbit/s | 11.00 | 0.90 | 2.90 | 3.22× |") {
		t.Errorf("table row missing:\n%s", md)
	}
	if err := writeChart(s, filepath.Join(t.TempDir(), "c.png")); err != nil {
		t.Fatal(err)
	}
}

// TestUDPLossTargetBothOffers: the loss target holds only when bih-nfq's
// loss and shortfall are no higher than TAYGA's at both offers.
func TestUDPLossTargetBothOffers(t *testing.T) {
	const goal = "64-byte UDP loss ≤ TAYGA's at the same offered rate (of sent; of offered; both offers)"
	fig := func(v float64) *Figure { return &Figure{Median: v} }
	build := func(satLoss float64) *Summary {
		return &Summary{Ratios: map[string]float64{}, Paths: map[string]map[string]*Figure{
			"tayga":  {figUDPLoss: fig(20), figUDPShort: fig(20), figUDPSatLoss: fig(60), figUDPSatShort: fig(70)},
			"bihnfq": {figUDPLoss: fig(5), figUDPShort: fig(10), figUDPSatLoss: fig(satLoss), figUDPSatShort: fig(50)},
		}}
	}
	for _, c := range []struct {
		satLoss float64
		want    bool
	}{{3, true}, {61, false}} {
		found := false
		for _, tg := range targets(build(c.satLoss)) {
			if tg.Goal == goal {
				found = true
				if tg.Met != c.want {
					t.Errorf("saturating loss %v vs 60: met = %v, want %v (%s)", c.satLoss, tg.Met, c.want, tg.Value)
				}
			}
		}
		if !found {
			t.Errorf("no loss target with saturating loss %v", c.satLoss)
		}
	}
}
