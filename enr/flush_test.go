package enr

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFlushHostCaches runs fake flush commands from a private PATH: the
// installed one runs with its arguments, a missing one is skipped, a
// failing one is logged.
func TestFlushHostCaches(t *testing.T) {
	dir := t.TempDir()
	record := filepath.Join(dir, "ran")
	script := "#!/bin/sh\necho \"$0 $*\" >> " + record + "\n"
	if err := os.WriteFile(filepath.Join(dir, "fake-resolvectl"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "fake-broken"), []byte("#!/bin/sh\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	var logBuf strings.Builder
	log := slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n := FlushHostCaches(ctx, log, []HostCacheFlusher{
		{Name: "resolved", Argv: []string{"fake-resolvectl", "flush-caches"}},
		{Name: "absent", Argv: []string{"no-such-command"}},
		{Name: "broken", Argv: []string{"fake-broken"}},
	})
	if n != 1 {
		t.Errorf("%d flushes succeeded, want 1", n)
	}
	ran, err := os.ReadFile(record)
	if err != nil || !strings.Contains(string(ran), "fake-resolvectl flush-caches") {
		t.Errorf("flush command not run with its arguments: %q %v", ran, err)
	}
	for _, want := range []string{"cache=resolved", "cache=absent", "not installed", "cache=broken"} {
		if !strings.Contains(logBuf.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logBuf.String())
		}
	}
}
