package enr

import (
	"net/netip"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestSockaddrAddrPort(t *testing.T) {
	var sa unix.RawSockaddrInet6
	sa.Family = unix.AF_INET6
	sa.Addr = netip.MustParseAddr("2001:db8::53").As16()
	p := (*[2]byte)(unsafe.Pointer(&sa.Port))
	p[0], p[1] = 0x12, 0x34
	if got, ok := sockaddrAddrPort(&sa, unix.SizeofSockaddrInet6); !ok || got != netip.MustParseAddrPort("[2001:db8::53]:4660") {
		t.Errorf("IPv6: %v %v", got, ok)
	}
	if _, ok := sockaddrAddrPort(&sa, unix.SizeofSockaddrInet4); ok {
		t.Error("IPv6 sockaddr cut short accepted")
	}
	// recvmmsg writes an IPv4 sender into the same storage.
	var st unix.RawSockaddrInet6
	sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(&st))
	sa4.Family = unix.AF_INET
	sa4.Addr = [4]byte{192, 0, 2, 1}
	p = (*[2]byte)(unsafe.Pointer(&sa4.Port))
	p[0], p[1] = 0, 53
	got, ok := sockaddrAddrPort(&st, unix.SizeofSockaddrInet4)
	if !ok || got != netip.MustParseAddrPort("192.0.2.1:53") {
		t.Errorf("IPv4: %v %v", got, ok)
	}
	sa.Family = unix.AF_UNIX
	if _, ok := sockaddrAddrPort(&sa, unix.SizeofSockaddrInet6); ok {
		t.Error("AF_UNIX accepted")
	}
}
