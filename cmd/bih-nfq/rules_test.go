package main

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"strings"
	"testing"
)

func TestRulesCommand(t *testing.T) {
	orig := source6Planner
	defer func() { source6Planner = orig }()
	source6Planner = func(string) (netip.Addr, error) { return netip.MustParseAddr("2001:db8::77"), nil }
	// By default one translation (and router) queue per CPU, as the daemon.
	queues := func(first int) string {
		if n := runtime.NumCPU(); n > 1 {
			return fmt.Sprintf("queue num %d-%d ", first, first+n-1)
		}
		return fmt.Sprintf("queue num %d ", first)
	}

	for _, tc := range []struct {
		args []string
		code int
		out  []string // substrings of stdout (code 0) or stderr
	}{
		{nil, 0, []string{"table ip bih_nfq {", "ip6 daddr 2001:db8::77 counter " + queues(0), "elements = { 10.170.160.0/20, 172.21.80.0/20 }",
			"udp dport 53 counter queue num 32 bypass", "meta mark 0x62696800 accept"}},
		{[]string{"--pools", "172.21.80.0/20,10.170.160.0/20", "--source6", "2001:db8::5", "--xlat-queue", "4",
			"--xlat-queues", "2", "--dns-queue", "9", "--mark", "0x10", "--table", "bih"},
			0, []string{"table ip6 bih {", "elements = { 172.21.80.0/20, 10.170.160.0/20 }",
				"ip6 daddr 2001:db8::5 counter queue num 4-5 comment", "queue num 9 bypass", "meta mark 0x00000010 accept"}},
		{[]string{"--mode", "router", "--lan", "lan0,lan1", "--lan-hosts", "192.168.1.0/24", "--lan-addrs", "2001:db8:1:64::c0a8:100/120"},
			0, []string{`iifname "lan1" ip saddr @lan4 ip daddr @pool4 counter ` + queues(16),
				"elements = { 2001:db8:1:64::c0a8:100/120 }", `ip6 daddr @lan6 counter ` + queues(16)}},
		{[]string{"--mode", "router", "--lan", "lan0"}, 2, []string{"Router.Hosts"}},
		{[]string{"--mode", "bridge"}, 2, []string{"--mode"}},
		{[]string{"-h"}, 0, []string{"usage: bih-nfq rules"}},
		{[]string{"--pools", "nonsense"}, 2, []string{"--pools"}},
		{[]string{"--dns-queue", "0"}, 2, []string{"overlap"}},
		{[]string{"--xlat-queue", "70000"}, 2, []string{"xlat-queue"}},
		{[]string{"extra"}, 2, []string{"unexpected argument"}},
	} {
		var stdout, stderr bytes.Buffer
		code := runMain(append([]string{"rules"}, tc.args...), &stdout, &stderr)
		if code != tc.code {
			t.Errorf("%v: exit %d, want %d (stderr %q)", tc.args, code, tc.code, stderr.String())
			continue
		}
		got := stdout.String()
		if code != 0 {
			got = stderr.String()
		}
		for _, want := range tc.out {
			if !strings.Contains(got, want) {
				t.Errorf("%v: output lacks %q:\n%s", tc.args, want, got)
			}
		}
	}

	source6Planner = func(string) (netip.Addr, error) { return netip.Addr{}, errors.New("no IPv6 default route") }
	var stdout, stderr bytes.Buffer
	if code := runMain([]string{"rules"}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "--source6") {
		t.Errorf("no derivable source: exit %d, %q", code, stderr.String())
	}
}
