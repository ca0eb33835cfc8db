// Package nstest gives root-only tests a fresh network namespace of their
// own, removed when the test ends, so the host's networking is never touched.
package nstest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bih-nfq/bih-nfq/internal/testenv"
	"github.com/vishvananda/netns"
)

// NS is a named network namespace (visible to `ip netns exec`).
type NS struct {
	Name   string
	Handle netns.NsHandle // open fd of the namespace
}

// Fd is the namespace's file descriptor.
func (n *NS) Fd() int { return int(n.Handle) }

var seq atomic.Int32

// New creates a namespace with lo up; it is deleted at the end of the test.
// The test is skipped (failed in CI) unless it runs as root with `ip`.
func New(t testing.TB) *NS {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "ip")
	name := fmt.Sprintf("bihtest-%d-%d", os.Getpid(), seq.Add(1))
	if out, err := command("ip", "netns", "add", name); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := command("ip", "netns", "del", name); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatalf("open netns %s: %v", name, err)
	}
	t.Cleanup(func() { h.Close() })
	n := &NS{Name: name, Handle: h}
	n.Run(t, "ip", "link", "set", "lo", "up")
	return n
}

func command(name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, name, args...).CombinedOutput()
}

// Exec runs a command inside the namespace and returns its combined output.
func (n *NS) Exec(name string, args ...string) (string, error) {
	out, err := command("ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
	return string(out), err
}

// Run is Exec that fails the test on error.
func (n *NS) Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := n.Exec(name, args...)
	if err != nil {
		t.Fatalf("in netns %s: %s %v: %v\n%s", n.Name, name, args, err, out)
	}
	return out
}

// Do runs f on an OS thread switched into the namespace (sockets f opens
// stay in it). The thread is thrown away if switching back fails.
func (n *NS) Do(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("get current netns: %w", err)
			return // thread stays locked and dies with the goroutine
		}
		defer orig.Close()
		if err := netns.Set(n.Handle); err != nil {
			errc <- fmt.Errorf("enter netns %s: %w", n.Name, err)
			return
		}
		ferr := f()
		if err := netns.Set(orig); err != nil {
			errc <- fmt.Errorf("leave netns %s: %w", n.Name, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
