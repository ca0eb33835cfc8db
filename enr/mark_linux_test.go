package enr

import (
	"context"
	"net"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// TestMarkControl sets SO_MARK on a real socket and reads it back (root
// only: the kernel wants CAP_NET_ADMIN); without the privilege it must fail.
func TestMarkControl(t *testing.T) {
	lc := net.ListenConfig{Control: MarkControl(0x4242)}
	pc, err := lc.ListenPacket(context.Background(), "udp", "127.0.0.1:0")
	if os.Geteuid() != 0 {
		if err == nil {
			pc.Close()
			t.Fatal("SO_MARK set without privilege")
		}
		return
	}
	if err != nil {
		t.Fatalf("SO_MARK as root: %v", err)
	}
	defer pc.Close()
	rc, err := pc.(*net.UDPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var mark int
	var gerr error
	if err := rc.Control(func(fd uintptr) { mark, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK) }); err != nil {
		t.Fatal(err)
	}
	if gerr != nil || mark != 0x4242 {
		t.Fatalf("SO_MARK reads %#x (%v), want 0x4242", mark, gerr)
	}
}
