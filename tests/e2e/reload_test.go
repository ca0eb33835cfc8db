package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReload: SIGHUP applies new exclusions and static mappings while a
// download runs through the pool, and the download completes intact; a
// broken file is refused with one error line and the daemon runs on with
// what it had.
func TestReload(t *testing.T) {
	l := NewLab(t)
	// A second server address, for a static mapping (RFC 7757) to reach.
	const eam6, eam4 = "2001:db8:2::3", "172.21.95.200" // 172.21.95.200: in the secondary pool, routed by the daemon
	l.Must("srv", 5*time.Second, "ip", "-6", "addr", "add", eam6+"/64", "dev", "eth0", "nodad")

	d := l.StartDaemon("translation:\n  mode: host\n")
	cfgPath := filepath.Join(l.State, "daemon", "config.yaml")
	// `ip netns exec` execs the command, so the process started is the daemon.
	pid := d.cmd.Process.Pid
	if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err != nil || strings.TrimSpace(string(comm)) != "bih-nfq" {
		t.Fatalf("process %d is %q (%v), not bih-nfq", pid, comm, err)
	}

	// Before: dual.test keeps its real A record; eam4 maps to nothing.
	if a := l.resolve4("dual.test"); a.String() != "192.0.2.80" {
		t.Fatalf("before reload: dual.test → %v, want its real A 192.0.2.80", a)
	}
	if out, err := l.Run("host", 10*time.Second, "ping", "-4", "-n", "-c", "1", "-W", "1", eam4); err == nil {
		t.Fatalf("before reload: ping %s answered with no mapping for it:\n%s", eam4, out)
	}

	const size = 20_000_000
	want := l.expectedSHA(size)
	// Rate-limited so the download spans the reload.
	dl := l.StartDownload(size, "4M", 90*time.Second)
	time.Sleep(1500 * time.Millisecond)

	good := `translation:
  mode: host
  map:
    - ` + eam4 + `=` + eam6 + `
pool:
  grace: 17m
dns:
  exclude-a: [0.0.0.0/8, 127.0.0.0/8, 169.254.0.0/16, 255.255.255.255/32, 192.0.2.0/24]
`
	if err := os.WriteFile(cfgPath, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	if dl.Finished() {
		sha, err := dl.Wait()
		t.Fatalf("download ended before the reload (%q, %v): make it longer", sha, err)
	}
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}

	// RFC 6535 §2.3.1: dual.test's only A record is now excluded, so its
	// answer is synthesized from the AAAA record, into the pool.
	pool := netip.MustParsePrefix("10.170.160.0/20")
	var dual netip.Addr
	for deadline := time.Now().Add(10 * time.Second); ; {
		out, _ := l.Run("host", 10*time.Second, "getent", "ahostsv4", "dual.test")
		if f := strings.Fields(out); len(f) > 0 {
			dual, _ = netip.ParseAddr(f[0])
		}
		if pool.Contains(dual) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after reload: dual.test → %q, want an address in %v", out, pool)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The new static mapping is in use in both directions.
	if out, err := l.Run("host", 15*time.Second, "ping", "-4", "-n", "-c", "2", "-W", "3", eam4); err != nil {
		t.Errorf("after reload: ping %s (mapped to %s): %v\n%s", eam4, eam6, err, out)
	}

	// No flow dropped: the download started before the reload completes.
	if sha, err := dl.Wait(); err != nil || sha != want {
		t.Fatalf("download across SIGHUP: %q (err %v), want %q", sha, err, want)
	}

	// A broken file changes nothing and the daemon keeps running.
	broken := strings.Replace(good, "192.0.2.0/24]", "192.0.2.0/24, nope]", 1)
	if err := os.WriteFile(cfgPath, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1 * time.Second)
	if st, err := d.Status(); err != nil || st["state"] != "running" {
		t.Fatalf("after a broken reload: status %v, %v", st, err)
	}
	if a := l.resolve4("dual.test"); a != dual {
		t.Errorf("after a broken reload: dual.test → %v, want %v still", a, dual)
	}
	if sha, err := l.download(1_000_000, 30*time.Second); err != nil || sha != l.expectedSHA(1_000_000) {
		t.Errorf("download after a broken reload: %q, %v", sha, err)
	}

	// The log is complete (and safe to read) once the daemon has exited.
	if err := d.Stop(); err != nil {
		t.Fatalf("stop: %v\n%s", err, d.Log)
	}
	log := d.Log.String()
	var applied, restart, refused []string
	for _, line := range strings.Split(log, "\n") {
		switch {
		case strings.Contains(line, `msg="SIGHUP: config reloaded"`):
			applied = append(applied, line)
		case strings.Contains(line, "need a restart"):
			restart = append(restart, line)
		case strings.Contains(line, "SIGHUP") && strings.Contains(line, "level=ERROR"):
			refused = append(refused, line)
		}
	}
	if len(applied) != 1 || !strings.Contains(applied[0], "dns.exclude-a=") || !strings.Contains(applied[0], "192.0.2.0/24") ||
		!strings.Contains(applied[0], eam4+"="+eam6) {
		t.Errorf("want one line naming what the reload applied, got %q\n%s", applied, log)
	} else if strings.Contains(applied[0], "exclude-aaaa") || strings.Contains(applied[0], "pref64") {
		t.Errorf("the reload line names keys that did not change: %q", applied[0])
	}
	if len(restart) != 1 || !strings.Contains(restart[0], "pool.grace") || strings.Contains(restart[0], "translation.map") {
		t.Errorf("want one line saying pool.grace needs a restart, got %q", restart)
	}
	if len(refused) != 1 || !strings.Contains(refused[0], `dns.exclude-a[5]`) || !strings.Contains(refused[0], "nope") {
		t.Errorf("want one error line naming dns.exclude-a[5], got %q", refused)
	}
}
