package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// readEnv reads KEY=VALUE lines; a missing file is an empty map.
func readEnv(path string) (map[string]string, error) {
	m := map[string]string{}
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return m, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if ok {
			m[strings.TrimSpace(k)] = strings.TrimSpace(v) // later lines win
		}
	}
	return m, sc.Err()
}

func envFloat(m map[string]string, k string) (float64, bool) {
	v, ok := m[k]
	if !ok || v == "" {
		return 0, false
	}
	f, err := strconv.ParseFloat(v, 64)
	return f, err == nil
}

// iperfSum is the part of an iperf3 summary the benchmark uses.
type iperfSum struct {
	Seconds       float64 `json:"seconds"`
	Bytes         float64 `json:"bytes"`
	BitsPerSecond float64 `json:"bits_per_second"`
	Retransmits   float64 `json:"retransmits"`
	Packets       float64 `json:"packets"`
	LostPackets   float64 `json:"lost_packets"`
	LostPercent   float64 `json:"lost_percent"`
}

type iperfResult struct {
	End struct {
		SumSent     *iperfSum `json:"sum_sent"`
		SumReceived *iperfSum `json:"sum_received"`
	} `json:"end"`
	Error string `json:"error"`
}

// readIperf parses an `iperf3 -J` output. A failed test (error field, no
// summary) is an error, never a zero.
func readIperf(path string) (*iperfResult, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r iperfResult
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if r.Error != "" {
		return nil, fmt.Errorf("%s: iperf3: %s", path, r.Error)
	}
	if r.End.SumSent == nil || r.End.SumReceived == nil || r.End.SumReceived.Seconds <= 0 {
		return nil, fmt.Errorf("%s: no summary", path)
	}
	return &r, nil
}

var pingTime = regexp.MustCompile(`time[=<]([0-9.]+) ms`)

// readPing returns the round-trip times in a ping transcript, in
// microseconds, and how many probes were sent (from the statistics line).
func readPing(path string) (rtts []float64, sent int, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, err
	}
	for _, m := range pingTime.FindAllStringSubmatch(string(b), -1) {
		v, err := strconv.ParseFloat(m[1], 64)
		if err == nil {
			rtts = append(rtts, v*1000)
		}
	}
	if m := regexp.MustCompile(`(\d+) packets transmitted`).FindStringSubmatch(string(b)); m != nil {
		sent, _ = strconv.Atoi(m[1])
	}
	if len(rtts) == 0 {
		return nil, sent, fmt.Errorf("%s: no replies", path)
	}
	return rtts, sent, nil
}

// runDirs lists DIR/run1, run2, ... in numeric order.
func runDirs(dir string) []string {
	ents, _ := filepath.Glob(filepath.Join(dir, "run*"))
	num := func(p string) int {
		n, _ := strconv.Atoi(strings.TrimPrefix(filepath.Base(p), "run"))
		return n
	}
	sort.Slice(ents, func(i, j int) bool { return num(ents[i]) < num(ents[j]) })
	return ents
}

// daemonStatus is the part of `bih-nfq status --json` kept in the results.
type daemonStatus struct {
	Source6  string            `json:"source6"`
	Mappings []json.RawMessage `json:"mappings"`
	Pools    []struct {
		Prefix string `json:"prefix"`
		Used   int    `json:"used"`
		Size   int    `json:"size"`
	} `json:"pools"`
	Drops      map[string]float64 `json:"drops"`
	Queues     json.RawMessage    `json:"queues"`
	Translated json.RawMessage    `json:"translated"`
}

func readStatus(path string) (*daemonStatus, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s daemonStatus
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &s, nil
}
