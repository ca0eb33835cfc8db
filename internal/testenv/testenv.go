// Package testenv lets tests state what they need from the machine. Outside
// CI a missing requirement skips the test; in CI (CI=true, where .ci/run
// installs everything) it fails it, so a skipped test is never counted as a pass.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// InCI reports whether the tests run under .ci/run.
func InCI() bool { return os.Getenv("CI") == "true" }

func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf("CI requirement missing: "+format, args...)
	}
	t.Skipf("skipped: "+format, args...)
}

// RequireRoot skips (or, in CI, fails) the test unless it runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		missing(t, "needs root")
	}
}

// RequireCommand returns the path of command name, skipping (or, in CI,
// failing) the test when it is not installed.
func RequireCommand(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		missing(t, "needs %s on PATH", name)
	}
	return p
}
