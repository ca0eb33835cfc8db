package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// lockDir holds the per-namespace instance locks.
const lockDir = "/run/bih-nfq"

// lockInstance makes sure no other daemon runs on the same network
// namespace and nftables table, or on the same state directory: a second
// one would replace the first one's ruleset, and the first one's exit would
// then remove the second one's, or two journals would interleave. The
// locks are flock(2) locks, so they go with the process however it ends.
func lockInstance(stateDir, table string) (release func(), err error) {
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/ns/net", &st); err != nil {
		return nil, fmt.Errorf("instance lock: network namespace: %w", err)
	}
	if err := os.MkdirAll(lockDir, 0o755); err != nil {
		return nil, fmt.Errorf("instance lock: %w", err)
	}
	netLock := filepath.Join(lockDir, fmt.Sprintf("net-%d-%d-%s.lock", st.Dev, st.Ino, table))
	a, err := flock(netLock)
	if err != nil {
		return nil, fmt.Errorf("another bih-nfq runs in this network namespace with table %q (lock %s held): %w",
			table, netLock, err)
	}
	if stateDir == "" {
		return func() { a.Close() }, nil
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		a.Close()
		return nil, fmt.Errorf("daemon.state-dir: %w", err)
	}
	stateLock := filepath.Join(stateDir, "lock")
	b, err := flock(stateLock)
	if err != nil {
		a.Close()
		return nil, fmt.Errorf("another bih-nfq uses state directory %s (lock %s held): %w", stateDir, stateLock, err)
	}
	return func() { b.Close(); a.Close() }, nil
}

var errLocked = errors.New("in use")

// flock opens path and takes an exclusive lock on it without waiting.
func flock(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		if err == unix.EWOULDBLOCK {
			return nil, errLocked
		}
		return nil, err
	}
	return f, nil
}
