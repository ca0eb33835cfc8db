package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestStatusRoundTrip(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "run", "status.sock")
	want := Status{
		State: "running", Mode: "host", Version: "test", Started: time.Now().Add(-time.Minute),
		Ruleset: "installed", Pools: []PoolStatus{{Prefix: "10.170.160.0/20", Active: true, Used: 2, Size: 4094}},
		Mappings: []MappingStatus{{IPv4: "10.170.160.1", IPv6: "2001:db8::1", Created: time.Now()}},
		Drops:    map[string]uint64{"too_short": 3},
		Queues:   []QueueStatus{{Num: 0, Role: "translation", Received: 10}},
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop, err := serveStatus(ctx, sock, func() Status { return want })
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want 0600 (root-only)", fi.Mode().Perm())
	}
	var out, errb bytes.Buffer
	if code := runMain([]string{"status", "--socket", sock, "--json"}, &out, &errb); code != 0 {
		t.Fatalf("status --json: exit %d: %s", code, errb.String())
	}
	var got Status
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.State != want.State || got.Pools[0] != want.Pools[0] || got.Drops["too_short"] != 3 || len(got.Mappings) != 1 {
		t.Errorf("status round trip: got %+v", got)
	}
	out.Reset()
	if code := runMain([]string{"status", "--socket", sock, "--mappings"}, &out, &errb); code != 0 {
		t.Fatalf("status: exit %d: %s", code, errb.String())
	}
	for _, s := range []string{"running, host mode", "10.170.160.0/20", "too_short=3", "2001:db8::1"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("status output lacks %q:\n%s", s, out.String())
		}
	}
	stop()
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket not removed on stop: %v", err)
	}
	errb.Reset()
	if code := runMain([]string{"status", "--socket", sock}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "is the daemon running?") {
		t.Errorf("status without daemon: exit %d, %q", code, errb.String())
	}
	if code := runMain([]string{"status", "extra"}, &out, &errb); code != 2 {
		t.Errorf("status with an argument: exit %d, want 2", code)
	}
}
