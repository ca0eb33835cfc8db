//go:build !linux

package enr

import (
	"errors"
	"syscall"
)

// MarkControl returns a Control hook that fails: SO_MARK exists on Linux only.
func MarkControl(mark uint32) func(network, address string, c syscall.RawConn) error {
	return func(string, string, syscall.RawConn) error {
		return errors.New("SO_MARK is only available on Linux")
	}
}
