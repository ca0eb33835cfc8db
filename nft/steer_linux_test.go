package nft

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/bih-nfq/bih-nfq/internal/hostnet"
	"github.com/bih-nfq/bih-nfq/internal/hostnet/nstest"
	nfqueue "github.com/florianl/go-nfqueue/v2"
	"golang.org/x/sys/unix"
)

// queued starts a minimal NFQUEUE reader in ns that drops what it gets and
// hands the packets over.
func queued(t *testing.T, ctx context.Context, ns *nstest.NS, num uint16) <-chan []byte {
	t.Helper()
	nf, err := nfqueue.Open(&nfqueue.Config{
		NetNS:        ns.Fd(),
		NfQueue:      num,
		MaxPacketLen: 0xffff,
		MaxQueueLen:  64,
		Copymode:     nfqueue.NfQnlCopyPacket,
		WriteTimeout: time.Second,
	})
	if err != nil {
		t.Fatalf("open queue %d: %v", num, err)
	}
	t.Cleanup(func() { nf.Close() })
	ch := make(chan []byte, 16)
	err = nf.RegisterWithErrorFunc(ctx, func(a nfqueue.Attribute) int {
		if a.PacketID == nil || a.Payload == nil {
			return 0
		}
		if err := nf.SetVerdict(*a.PacketID, nfqueue.NfDrop); err != nil {
			t.Errorf("verdict: %v", err)
		}
		select {
		case ch <- append([]byte(nil), *a.Payload...):
		default:
		}
		return 0
	}, func(err error) int {
		if ctx.Err() == nil {
			t.Errorf("queue %d: %v", num, err)
		}
		return 1
	})
	if err != nil {
		t.Fatalf("register queue %d: %v", num, err)
	}
	return ch
}

// sendUDP sends one datagram from a socket in ns, with SO_MARK if mark != 0.
func sendUDP(t *testing.T, ns *nstest.NS, dst netip.AddrPort, mark uint32, payload string) {
	t.Helper()
	err := ns.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if mark != 0 {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, int(mark)); err != nil {
				return err
			}
		}
		return unix.Sendto(fd, []byte(payload), 0, &unix.SockaddrInet4{Port: int(dst.Port()), Addr: dst.Addr().As4()})
	})
	if err != nil {
		t.Fatalf("send %q to %v: %v", payload, dst, err)
	}
}

func expectPacket(t *testing.T, ch <-chan []byte, dst netip.Addr, payload string) {
	t.Helper()
	select {
	case p := <-ch:
		if len(p) < 28 || netip.AddrFrom4([4]byte(p[16:20])) != dst || string(p[28:]) != payload {
			t.Fatalf("queued packet %x, want one to %v carrying %q", p, dst, payload)
		}
	case <-time.After(3 * time.Second):
		t.Fatalf("packet %q to %v never reached the queue", payload, dst)
	}
}

// TestSteering sends real packets from a local process in a namespace and
// shows they reach the queues the ruleset names, and that packets carrying
// the daemon's mark do not.
func TestSteering(t *testing.T) {
	ns := nstest.New(t)
	cfg := testConfig()
	cfg.Xlat = Queue{Num: 4, Count: 1}
	// The host set-up as the daemon does it: a TUN link nobody reads routes
	// the pool (and here a stand-in resolver network); lo stands in for the
	// uplink and carries the translation address.
	host, err := hostnet.Setup(hostnet.Config{
		Pools:   []netip.Prefix{cfg.Pools[0], netip.MustParsePrefix("192.0.2.0/24")},
		Uplink:  "lo",
		Source6: cfg.Source6,
	}, hostnet.Options{NetNS: ns.Fd(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer host.Teardown()
	if _, err := Install(cfg, opts(ns)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	xlat, dns := queued(t, ctx, ns, 4), queued(t, ctx, ns, 32)

	pool := netip.MustParseAddr("10.170.161.5")
	sendUDP(t, ns, netip.AddrPortFrom(pool, 9), 0, "to-pool")
	expectPacket(t, xlat, pool, "to-pool")

	sendUDP(t, ns, netip.AddrPortFrom(pool, 9), cfg.Mark, "own-marked")
	sendUDP(t, ns, netip.AddrPortFrom(pool, 9), 0, "after-marked")
	expectPacket(t, xlat, pool, "after-marked") // the marked one was not queued

	resolver := netip.MustParseAddr("192.0.2.53")
	sendUDP(t, ns, netip.AddrPortFrom(resolver, 53), 0, "query")
	expectPacket(t, dns, resolver, "query")
	sendUDP(t, ns, netip.AddrPortFrom(resolver, 53), cfg.Mark, "own-query")
	sendUDP(t, ns, netip.AddrPortFrom(resolver, 9), 0, "not-dns")
	sendUDP(t, ns, netip.AddrPortFrom(resolver, 53), 0, "query2")
	expectPacket(t, dns, resolver, "query2")

	// IPv6 to the translation address arrives (here over lo) at
	// prerouting: queued, except Neighbor Discovery.
	send6(t, ns, unix.IPPROTO_ICMPV6, cfg.Source6, []byte{135, 0, 0, 0, 0, 0, 0, 0})
	send6(t, ns, unix.IPPROTO_UDP, cfg.Source6, []byte("to-xlat6"))
	select {
	case p := <-xlat:
		if len(p) < 48 || p[6] != unix.IPPROTO_UDP || netip.AddrFrom16([16]byte(p[24:40])) != cfg.Source6 || string(p[48:]) != "to-xlat6" {
			t.Fatalf("queued %x, want the UDP datagram to %v", p, cfg.Source6)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("IPv6 to the translation address never reached the queue")
	}
	select {
	case p := <-xlat:
		t.Fatalf("unexpected packet on the translation queue: %x", p)
	default:
	}
}

// send6 sends payload to dst:9 over UDP, or as a raw ICMPv6 message.
func send6(t *testing.T, ns *nstest.NS, proto int, dst netip.Addr, payload []byte) {
	t.Helper()
	err := ns.Do(func() error {
		typ := unix.SOCK_DGRAM
		if proto == unix.IPPROTO_ICMPV6 {
			typ = unix.SOCK_RAW
		}
		fd, err := unix.Socket(unix.AF_INET6, typ|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if proto == unix.IPPROTO_ICMPV6 {
			// ND must come with hop limit 255 (RFC 4861 §7.1.1).
			if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, 255); err != nil {
				return err
			}
		}
		port := 9
		if typ == unix.SOCK_RAW {
			port = 0 // raw sockets take the protocol here
		}
		return unix.Sendto(fd, payload, 0, &unix.SockaddrInet6{Port: port, Addr: dst.As16()})
	})
	if err != nil {
		t.Fatalf("send to %v: %v", dst, err)
	}
}
