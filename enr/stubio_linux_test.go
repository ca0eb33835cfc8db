package enr

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/miekg/dns"
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

// TestStubReaderSockets: each reader has a socket of its own on the stub's
// port (SO_REUSEPORT); clients spread over them are all answered, and
// Shutdown closes every one (the port is free for a plain bind again).
func TestStubReaderSockets(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	up := newFakeUpstream()
	up.set("v6only.bih.test.", dns.TypeA, dns.RcodeSuccess, nil, []string{soa})
	up.set("v6only.bih.test.", dns.TypeAAAA, dns.RcodeSuccess, []string{"v6only.bih.test. 300 IN AAAA 2001:db8::1"}, nil)
	e := newTestENR(t, DefaultConfig(), newFakeMapper(100), up)
	s, err := NewStub(e, StubConfig{Listen: netip.MustParseAddrPort("127.0.0.1:0")})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if n := len(s.udp.extra); n != 1 {
		t.Fatalf("%d extra reader sockets with 2 readers, want 1", n)
	}
	for i := range 32 {
		r := exchange(t, "udp", s.Addr(), query("v6only.bih.test.", dns.TypeA))
		if len(r.Answer) != 1 || r.Answer[0].Header().Rrtype != dns.TypeA {
			t.Fatalf("client %d: %v", i, r)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(s.Addr()))
	if err != nil {
		t.Fatalf("port still held after Shutdown: %v", err)
	}
	c.Close()
}

// TestStubRefusesSharedPort: another server's socket with SO_REUSEPORT on
// the port makes Start fail, as any bound port does, instead of the stub
// joining it and splitting its clients.
func TestStubRefusesSharedPort(t *testing.T) {
	c, err := reusePortConfig.ListenPacket(context.Background(), "udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	at := c.LocalAddr().(*net.UDPAddr).AddrPort()
	e := newTestENR(t, DefaultConfig(), newFakeMapper(100), newFakeUpstream())
	s, err := NewStub(e, StubConfig{Listen: at})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err == nil {
		s.Shutdown(context.Background())
		t.Fatalf("stub started on %v, held by another socket with SO_REUSEPORT", at)
	} else if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("Start: %v, want address in use", err)
	}
}
