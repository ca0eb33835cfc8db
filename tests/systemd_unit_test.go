package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bih-nfq/bih-nfq/internal/config"
	"github.com/bih-nfq/bih-nfq/internal/testenv"
)

const unitPath = "../packaging/bih-nfq.service"

// TestSystemdUnit: packaging/bih-nfq.service passes systemd-analyze verify
// with no remark (an unknown or misspelt key is one), its ExecStart runs the
// daemon with flags `run` has, and the service may write where the
// daemon's defaults put its state and status socket.
func TestSystemdUnit(t *testing.T) {
	analyze := testenv.RequireCommand(t, "systemd-analyze")
	text, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string][]string{}
	for _, line := range strings.Split(string(text), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			keys[k] = append(keys[k], v)
		}
	}

	const installed = "/usr/local/bin/bih-nfq"
	if len(keys["ExecStart"]) != 1 {
		t.Fatalf("ExecStart %q, want one", keys["ExecStart"])
	}
	args := strings.Fields(keys["ExecStart"][0])
	if len(args) < 2 || args[0] != installed || args[1] != "run" {
		t.Fatalf("ExecStart %q, want %s run ...", keys["ExecStart"][0], installed)
	}
	bin := buildBihNfq(t)
	help, _ := exec.Command(bin, "run", "-h").CombinedOutput()
	for _, a := range args[2:] {
		if name, ok := strings.CutPrefix(a, "--"); ok && !strings.Contains(string(help), "-"+name+" ") {
			t.Errorf("ExecStart passes %s, which run does not have:\n%s", a, help)
		}
	}

	dir := t.TempDir()
	unit := filepath.Join(dir, "bih-nfq.service")
	if err := os.WriteFile(unit, []byte(strings.ReplaceAll(string(text), installed, bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", "--man=no", unit).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("systemd-analyze verify: %v:\n%s", err, out)
	}

	writable := strings.Fields(strings.Join(keys["ReadWritePaths"], " "))
	d := config.Default().Daemon
	for _, p := range []string{d.StateDir, filepath.Dir(d.StatusSocket)} {
		if !slices.Contains(writable, p) {
			t.Errorf("ReadWritePaths %v lacks %s, where the daemon writes by default", writable, p)
		}
	}
}
