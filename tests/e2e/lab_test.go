// Package e2e runs bih-nfq for real in the namespace lab of tests/lab/lab.sh:
// unmodified IPv4-only programs in an IPv6-only host reach an IPv6-only
// server by name. Root only; every test builds its own lab and removes it.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bih-nfq/bih-nfq/internal/testenv"
)

// repoRoot is the module root (this file is tests/e2e/lab_test.go).
func repoRoot() string {
	_, f, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(f), "..", ".."))
}

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds bih-nfq and labserver once per test binary.
func binaries(t *testing.T) (bih, labserver string) {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "bih-e2e-bin")
		if buildErr != nil {
			return
		}
		for _, b := range [][2]string{{"bih-nfq", "./cmd/bih-nfq"}, {"labserver", "./tests/labserver"}} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, b[0]), b[1])
			cmd.Dir = repoRoot()
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("build %s: %v\n%s", b[1], err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, "bih-nfq"), filepath.Join(binDir, "labserver")
}

// Lab is one running copy of the namespace lab.
type Lab struct {
	t     *testing.T
	Name  string
	State string
	Bin   string
	// DaemonPrefix runs before the daemon's binary inside the host
	// namespace (e.g. setpriv to drop capabilities).
	DaemonPrefix []string
}

var labSeq int

// NewLab brings a lab up for t and tears it down when t ends.
func NewLab(t *testing.T) *Lab {
	t.Helper()
	return newLab(t)
}

// NewRouterLab is NewLab with the router-mode topology (LAB_LAN=1): host is
// the router of the IPv4-only LAN hosts lan1 and lan2.
func NewRouterLab(t *testing.T) *Lab {
	t.Helper()
	testenv.RequireCommand(t, "dig")
	testenv.RequireCommand(t, "traceroute")
	return newLab(t, "LAB_LAN=1")
}

func newLab(t *testing.T, env ...string) *Lab {
	t.Helper()
	testenv.RequireRoot(t)
	for _, c := range []string{"ip", "nft", "unbound", "curl", "ping", "getent"} {
		testenv.RequireCommand(t, c)
	}
	bih, labserver := binaries(t)
	labSeq++
	l := &Lab{t: t, Name: fmt.Sprintf("bihe%d%d", os.Getpid()%10000, labSeq), Bin: bih}
	l.State = filepath.Join(t.TempDir(), "lab")
	env = append(append(os.Environ(), "LAB="+l.Name, "LAB_STATE="+l.State, "LABSERVER="+labserver), env...)
	script := filepath.Join(repoRoot(), "tests", "lab", "lab.sh")
	up := exec.Command(script, "up")
	up.Env = env
	if out, err := up.CombinedOutput(); err != nil {
		down := exec.Command(script, "down")
		down.Env = env
		down.Run()
		t.Fatalf("lab up: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		down := exec.Command(script, "down")
		down.Env = env
		if out, err := down.CombinedOutput(); err != nil {
			t.Errorf("lab down: %v\n%s", err, out)
		}
	})
	return l
}

// NS returns the namespace name of host, rtr, srv, lan1 or lan2.
func (l *Lab) NS(which string) string { return l.Name + "-" + which }

// Run runs a command in a namespace, bounded by timeout, and returns its
// combined output.
func (l *Lab) Run(which string, timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", l.NS(which)}, args...)...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return string(out), fmt.Errorf("%v: timed out after %v", args, timeout)
	}
	return string(out), err
}

// Must runs a command and fails the test if it fails.
func (l *Lab) Must(which string, timeout time.Duration, args ...string) string {
	l.t.Helper()
	out, err := l.Run(which, timeout, args...)
	if err != nil {
		l.t.Fatalf("%s: %v: %v\n%s", which, args, err, out)
	}
	return out
}

// Daemon is a bih-nfq run process in the host namespace.
type Daemon struct {
	lab    *Lab
	cmd    *exec.Cmd
	Socket string
	Log    *logBuffer
	done   chan struct{}
	err    error
}

// StartDaemon starts `bih-nfq run` in the host namespace with the lab's
// state directory and an optional config file body, and waits until its
// status says running.
func (l *Lab) StartDaemon(config string, args ...string) *Daemon {
	l.t.Helper()
	dir := filepath.Join(l.State, "daemon")
	os.MkdirAll(dir, 0o700)
	d := &Daemon{lab: l, Socket: filepath.Join(dir, "status.sock"), Log: new(logBuffer), done: make(chan struct{})}
	full := append([]string{"netns", "exec", l.NS("host")}, l.DaemonPrefix...)
	full = append(full, l.Bin, "run", "--state-dir", filepath.Join(dir, "state"), "--status-socket", d.Socket)
	if config != "" {
		p := filepath.Join(dir, "config.yaml")
		if err := os.WriteFile(p, []byte(config), 0o600); err != nil {
			l.t.Fatal(err)
		}
		full = append(full, "--config", p)
	}
	full = append(full, args...)
	d.cmd = exec.Command("ip", full...)
	d.cmd.Stdout, d.cmd.Stderr = d.Log, d.Log
	if err := d.cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	go func() { d.err = d.cmd.Wait(); close(d.done) }()
	l.t.Cleanup(func() { d.Stop() })
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-d.done:
			l.t.Fatalf("daemon exited during start-up: %v\n%s", d.err, d.Log)
		default:
		}
		if st, err := d.Status(); err == nil && st["state"] == "running" {
			return d
		}
		time.Sleep(50 * time.Millisecond)
	}
	d.Stop()
	l.t.Fatalf("daemon not running after 15 s:\n%s", d.Log)
	return nil
}

// logBuffer collects the daemon's output; tests read it while the process
// still writes.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Status returns the daemon's status JSON as a map.
func (d *Daemon) Status() (map[string]any, error) {
	out, err := d.lab.Run("host", 5*time.Second, d.lab.Bin, "status", "--json", "--socket", d.Socket)
	if err != nil {
		return nil, fmt.Errorf("%v: %s", err, out)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		return nil, err
	}
	return m, nil
}

// Stop sends SIGTERM and waits (bounded) for a clean exit; it reports the
// exit error, if any.
func (d *Daemon) Stop() error {
	select {
	case <-d.done:
		return d.err
	default:
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		return d.err
	case <-time.After(10 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
		return fmt.Errorf("daemon ignored SIGTERM for 10 s")
	}
}

// Kill sends SIGKILL (a crash) and waits for the process to go.
func (d *Daemon) Kill() {
	d.cmd.Process.Kill()
	<-d.done
}

// hostClean reports what a stopped daemon left behind in the host
// namespace: nft tables, the bih0 link, translation addresses.
func (l *Lab) hostClean() []string {
	var left []string
	if out, _ := l.Run("host", 5*time.Second, "nft", "list", "tables"); strings.TrimSpace(out) != "" {
		left = append(left, "nft tables: "+strings.TrimSpace(out))
	}
	if out, _ := l.Run("host", 5*time.Second, "ip", "-o", "link"); strings.Contains(out, "bih0") {
		left = append(left, "link bih0")
	}
	if out, _ := l.Run("host", 5*time.Second, "ip", "-o", "-6", "addr", "show", "dev", "eth0"); strings.Count(out, "2001:db8:1:") > 1 {
		left = append(left, "extra IPv6 address on eth0: "+out)
	}
	return left
}

// Download is a rate-limited `curl -4` of /bytes/N running in the host
// while a test disturbs the daemon.
type Download struct {
	done chan struct{}
	sha  string
	err  error
}

// StartDownload begins fetching http://web.test/bytes/size at rate (a curl
// --limit-rate value), bounded by timeout, and returns at once.
func (l *Lab) StartDownload(size int, rate string, timeout time.Duration) *Download {
	return l.StartDownloadFrom("host", size, rate, timeout)
}

// StartDownloadFrom is StartDownload in namespace which.
func (l *Lab) StartDownloadFrom(which string, size int, rate string, timeout time.Duration) *Download {
	dl := &Download{done: make(chan struct{})}
	go func() {
		defer close(dl.done)
		out, err := l.Run(which, timeout, "sh", "-c",
			fmt.Sprintf("curl -4 -sS -f -m %d --limit-rate %s --retry 0 http://web.test/bytes/%d | sha256sum",
				int((timeout-10*time.Second).Seconds()), rate, size))
		f := strings.Fields(out)
		if len(f) == 0 {
			dl.err = fmt.Errorf("%v: %s", err, out)
			return
		}
		dl.sha, dl.err = f[0], err
	}()
	return dl
}

// Finished reports whether the download has ended.
func (dl *Download) Finished() bool {
	select {
	case <-dl.done:
		return true
	default:
		return false
	}
}

// Wait returns the downloaded body's sha256.
func (dl *Download) Wait() (string, error) {
	<-dl.done
	return dl.sha, dl.err
}

// RunDaemonOnce runs `bih-nfq run` in the host namespace with config and
// waits, bounded by timeout, for it to exit (a start-up refusal); it
// returns the output and the exit error. A daemon still running at the
// timeout is stopped and reported as an error.
func (l *Lab) RunDaemonOnce(config string, timeout time.Duration) (string, error) {
	l.t.Helper()
	dir := filepath.Join(l.State, "once")
	os.MkdirAll(dir, 0o700)
	p := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(p, []byte(config), 0o600); err != nil {
		l.t.Fatal(err)
	}
	return l.Run("host", timeout, l.Bin, "run", "--config", p, "--state-dir", filepath.Join(dir, "state"),
		"--status-socket", filepath.Join(dir, "status.sock"))
}
