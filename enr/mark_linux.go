package enr

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// MarkControl returns a net.Dialer Control hook that sets SO_MARK on the
// ENR's own sockets, so the nftables rules accept its AAAA/PTR queries
// instead of queueing them again (needs CAP_NET_ADMIN).
func MarkControl(mark uint32) func(network, address string, c syscall.RawConn) error {
	return func(network, address string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(mark))
		}); err != nil {
			return fmt.Errorf("set SO_MARK on %s socket to %s: %w", network, address, err)
		}
		if serr != nil {
			return fmt.Errorf("set SO_MARK %#x on %s socket to %s: %w", mark, network, address, serr)
		}
		return nil
	}
}
