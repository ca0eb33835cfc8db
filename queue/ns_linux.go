package queue

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// socketAt runs open with the calling thread switched into network namespace
// ns, so the socket belongs to that namespace; the thread is switched back
// (or, if that fails, left locked so the runtime discards it).
func socketAt(ns int, open func() (int, error)) (int, error) {
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return -1, fmt.Errorf("open current netns: %w", err)
	}
	defer unix.Close(orig)
	if err := unix.Setns(ns, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return -1, fmt.Errorf("enter netns: %w", err)
	}
	fd, oerr := open()
	if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: it exits with the goroutine instead of
		// serving others in the wrong namespace.
		if fd >= 0 {
			unix.Close(fd)
		}
		return -1, fmt.Errorf("restore netns: %w", err)
	}
	runtime.UnlockOSThread()
	return fd, oerr
}
