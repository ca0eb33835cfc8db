package pool

import (
	"bufio"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The crash test re-executes the test binary; with these variables set it
// runs crashChild instead of the tests.
const (
	crashDirEnv  = "BIH_POOL_CRASH_DIR"
	crashBaseEnv = "BIH_POOL_CRASH_BASE"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashDirEnv); dir != "" {
		os.Exit(crashChild(dir, os.Getenv(crashBaseEnv)))
	}
	os.Exit(m.Run())
}

// crashChild maps new addresses from several goroutines (so writes are group
// committed, and with a low compaction threshold rewrites happen often) and
// prints "ACK v6 v4" after each MapIPv6 returns, until it is killed.
func crashChild(dir, baseStr string) int {
	base, err := strconv.Atoi(baseStr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bad base:", err)
		return 2
	}
	cfg := Config{
		StateDir:      dir,
		RequesterRate: -1,
		Logger:        slog.New(slog.NewTextHandler(os.Stderr, nil)),
		compactAfter:  40,
	}
	p, err := New(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "New:", err)
		return 2
	}
	var out sync.Mutex
	var next atomic.Int64
	const perRound = 1000 // 8 rounds stay below the 8,188 addresses
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > perRound {
					return
				}
				v6 := v6n(base + int(i))
				v4, err := p.MapIPv6(v6, client1, time.Hour)
				if err != nil {
					fmt.Fprintln(os.Stderr, "MapIPv6:", err)
					os.Exit(3)
				}
				line := fmt.Sprintf("ACK %v %v\n", v6, v4)
				out.Lock()
				os.Stdout.WriteString(line) // one write per line: whole or absent
				out.Unlock()
			}
		}()
	}
	wg.Wait()
	time.Sleep(time.Hour) // wait to be killed
	return 0
}

// TestCrashRecovery kills a child writing mappings with SIGKILL at random
// points, several times over the same state directory; every mapping the
// child acknowledged must be there after each restore.
func TestCrashRecovery(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	acked := map[netip.Addr]netip.Addr{}
	rounds := 8
	if testing.Short() {
		rounds = 3
	}
	for round := range rounds {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, fmt.Sprintf("%s=%d", crashBaseEnv, round*100000))
		var stderr strings.Builder
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 4096)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		// Kill at a random moment after the first acknowledgement.
		var roundAcks []string
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("round %d: child exited before any mapping: %s", round, stderr.String())
			}
			roundAcks = append(roundAcks, l)
		case <-time.After(20 * time.Second):
			t.Fatalf("round %d: no acknowledgement from the child", round)
		}
		time.Sleep(time.Duration(rng.IntN(150_000)) * time.Microsecond)
		if err := cmd.Process.Kill(); err != nil { // SIGKILL
			t.Fatal(err)
		}
		for l := range lines {
			roundAcks = append(roundAcks, l)
		}
		_ = cmd.Wait() // "signal: killed" is the expected outcome
		if strings.Contains(stderr.String(), "MapIPv6:") {
			t.Fatalf("round %d: child failed: %s", round, stderr.String())
		}
		for _, l := range roundAcks {
			f := strings.Fields(l)
			if len(f) != 3 || f[0] != "ACK" {
				t.Fatalf("round %d: bad line %q", round, l)
			}
			acked[netip.MustParseAddr(f[1])] = netip.MustParseAddr(f[2])
		}
		logs := &logBuffer{}
		p, err := New(Config{StateDir: dir, Logger: slog.New(slog.NewTextHandler(logs, nil))})
		if err != nil {
			t.Fatalf("round %d: restore: %v", round, err)
		}
		checkBijection(t, p)
		for v6, v4 := range acked {
			if got, ok := p.To4(v6.As16()); !ok || netip.AddrFrom4(got) != v4 {
				t.Fatalf("round %d: acknowledged %v→%v lost after SIGKILL (got %v,%v)\nlog:\n%s",
					round, v6, v4, netip.AddrFrom4(got), ok, logs)
			}
		}
		st := p.Stats()
		t.Logf("round %d: %d acknowledged this round, %d in total, %d restored, damaged=%v",
			round, len(roundAcks), len(acked), st.Restore.Restored, st.Restore.Damaged)
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
