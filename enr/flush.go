package enr

import (
	"context"
	"fmt"
	"log/slog"
	"os/exec"
)

// HostCacheFlusher is a command that empties a caching stub on the host.
type HostCacheFlusher struct {
	Name string   // for the log
	Argv []string // command and arguments
}

// DefaultHostCacheFlushers are tried by FlushHostCaches: systemd-resolved
// and nscd's hosts table.
var DefaultHostCacheFlushers = []HostCacheFlusher{
	{Name: "systemd-resolved", Argv: []string{"resolvectl", "flush-caches"}},
	{Name: "nscd", Argv: []string{"nscd", "--invalidate=hosts"}},
}

// FlushHostCaches asks the host's caching stubs to forget answers, best
// effort (RFC 6535 §2.3.4: the stub resolver's cache of synthetic addresses
// MUST be flushed too). A flusher whose command is not installed is skipped;
// each outcome is logged. Nil flushers means DefaultHostCacheFlushers. It
// returns how many flushes succeeded.
func FlushHostCaches(ctx context.Context, log *slog.Logger, flushers []HostCacheFlusher) int {
	if log == nil {
		log = slog.Default()
	}
	if flushers == nil {
		flushers = DefaultHostCacheFlushers
	}
	ok := 0
	for _, f := range flushers {
		if len(f.Argv) == 0 {
			continue
		}
		path, err := exec.LookPath(f.Argv[0])
		if err != nil {
			log.Debug("host dns cache flush skipped", "cache", f.Name, "reason", "not installed")
			continue
		}
		out, err := exec.CommandContext(ctx, path, f.Argv[1:]...).CombinedOutput()
		if err != nil {
			log.Warn("host dns cache flush failed", "cache", f.Name, "err", fmt.Errorf("%s: %w", f.Argv[0], err), "output", string(out))
			continue
		}
		log.Info("host dns cache flushed", "cache", f.Name)
		ok++
	}
	return ok
}
