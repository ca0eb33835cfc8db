package e2e

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bih-nfq/bih-nfq/internal/testenv"
)

// TestUDPSuperPackets: a program using UDP segmentation offload (UDP_SEGMENT,
// as QUIC stacks do) hands the OUTPUT hook one super-packet for several
// datagrams. The translation queue cannot cut it (nothing in it gives the
// datagram size), so it goes on to the udp-gso queue, where the kernel cuts
// it; every datagram is translated and echoed. The translated datagrams of
// one batch leave as a UDP train through the TUN link, which the kernel
// cuts back into the same datagrams, the last one shorter.
func TestUDPSuperPackets(t *testing.T) {
	l := NewLab(t)
	d := l.StartDaemon("")
	// The uplink finishes checksums in software (as a NIC would in
	// hardware): a train whose checksum field is not the pseudo-header sum
	// of its UDP length then reaches the server with bad checksums.
	testenv.RequireCommand(t, "ethtool")
	l.Must("host", 10*time.Second, "ethtool", "-K", "eth0", "tx", "off")
	web := l.resolve4("web.test")
	const seg, n, last = 400, 12, 150
	var replies []string
	err := l.inNS("host", func() error {
		c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(web, 7)))
		if err != nil {
			return err
		}
		defer c.Close()
		rc, err := c.SyscallConn()
		if err != nil {
			return err
		}
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT, seg)
		}); err != nil || serr != nil {
			t.Fatalf("UDP_SEGMENT: %v %v", err, serr)
		}
		if _, err := c.Write(make([]byte, seg*(n-1)+last)); err != nil {
			return err
		}
		buf := make([]byte, 2048)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		for len(replies) < n {
			k, err := c.Read(buf)
			if err != nil {
				return err
			}
			replies = append(replies, string(buf[:k]))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("echo of %d×%d bytes sent as one super-packet: %v (replies %q)\n%s", n, seg, err, replies, d.Log)
	}
	short := 0
	for _, r := range replies {
		switch {
		case strings.HasPrefix(r, "150 "):
			short++
		case !strings.HasPrefix(r, "400 "):
			t.Fatalf("echo replies %q, want %d of \"400 …\" and one \"150 …\"", replies, n-1)
		}
	}
	if short != 1 {
		t.Fatalf("echo replies %q, want one \"150 …\"", replies)
	}
	st, err := d.Status()
	if err != nil {
		t.Fatal(err)
	}
	var handedOn, trains float64
	for _, q := range st["queues"].([]any) {
		if m := q.(map[string]any); m["role"] == "udp-gso" {
			handedOn = m["received"].(float64)
			trains = m["udp_trains"].(float64)
		}
	}
	if handedOn < 1 {
		t.Fatalf("no packet reached the udp-gso queue: the test sent no super-packet (queues %v)", st["queues"])
	}
	if trains < 1 {
		t.Errorf("no UDP train left the udp-gso queue's worker (queues %v)", st["queues"])
	}
}
