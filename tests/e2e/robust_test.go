package e2e

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bih-nfq/bih-nfq/internal/testenv"
)

var secondaryPool = netip.MustParsePrefix("172.21.80.0/20")

// inNS runs f on a thread switched into one of the lab's namespaces.
func (l *Lab) inNS(which string, f func() error) error {
	ns, err := os.Open("/run/netns/" + l.NS(which))
	if err != nil {
		return err
	}
	defer ns.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // not unlocked: the thread ends with the goroutine
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		errc <- f()
	}()
	return <-errc
}

// TestNativeIPv4Appears is scenario 8 (RFC 6535 §4.5): an IPv4 router
// appears on a new link of the host, with a network overlapping the primary
// pool. Names with real A records go native, IPv6-only names keep working
// through mappings that move to the secondary pool, and the change shows in
// status and logs.
func TestNativeIPv4Appears(t *testing.T) {
	l := NewLab(t)
	d := l.StartDaemon("")
	if a := l.resolve4("web.test"); !defaultPool.Contains(a) {
		t.Fatalf("before: web.test → %v, want the primary pool", a)
	}
	// An IPv4 router namespace on a new link: 10.170.160.0/24 overlaps the
	// primary pool 10.170.160.0/20.
	v4r := l.Name + "-v4r"
	cmds := [][]string{
		{"netns", "add", v4r},
		{"link", "add", "v4h", "netns", l.NS("host"), "type", "veth", "peer", "name", "v4r", "netns", v4r},
		{"-n", v4r, "link", "set", "lo", "up"},
		{"-n", v4r, "addr", "add", "10.170.160.254/24", "dev", "v4r"},
		{"-n", v4r, "link", "set", "v4r", "up"},
		{"-n", l.NS("host"), "addr", "add", "10.170.160.2/24", "dev", "v4h"},
		{"-n", l.NS("host"), "link", "set", "v4h", "up"},
		{"-n", l.NS("host"), "route", "add", "default", "via", "10.170.160.254"},
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", v4r).Run() })
	for _, c := range cmds {
		if out, err := exec.Command("ip", c...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", c, err, out)
		}
	}
	// The daemon notices and reports it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := d.Status()
		if err == nil && st["native_ipv4"] == true {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never showed native IPv4: %v %v\n%s", st, err, d.Log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	st, _ := d.Status()
	for _, p := range st["pools"].([]any) {
		pm := p.(map[string]any)
		if pm["prefix"] == defaultPool.String() && pm["active"] != false {
			t.Errorf("primary pool still active although it overlaps the new IPv4 network: %v", pm)
		}
	}
	if !strings.Contains(d.Log.String(), "native IPv4 connectivity changed") {
		t.Errorf("no log line for the change:\n%s", d.Log)
	}
	// A name with a real A record keeps it (never translated).
	if a := l.resolve4("dual.test"); a.String() != "192.0.2.80" {
		t.Errorf("dual.test → %v, want its real A record", a)
	}
	// IPv6-only names keep working, now mapped from the secondary pool.
	for _, name := range []string{"web.test", "alt.test"} {
		if a := l.resolve4(name); !secondaryPool.Contains(a) {
			t.Errorf("after: %s → %v, want the secondary pool %v", name, a, secondaryPool)
		}
	}
	out := l.Must("host", 20*time.Second, "curl", "-4", "-sS", "-m", "15", "http://web.test/")
	if !strings.Contains(out, "hello from the IPv6-only server") {
		t.Errorf("curl -4 web.test after native IPv4 appeared: %q", out)
	}
}

// TestGarbage is scenario 9's first half: crafted broken packets into both
// queues are counted as drops and the daemon keeps working.
func TestGarbage(t *testing.T) {
	l := NewLab(t)
	d := l.StartDaemon("")
	pool4 := l.resolve4("web.test").As4()
	st, err := d.Status()
	if err != nil {
		t.Fatal(err)
	}
	src6 := netip.MustParseAddr(st["source6"].(string)).As16()
	server6 := netip.MustParseAddr("2001:db8:2::2").As16()
	src4 := netip.MustParseAddr("172.21.112.1").As4()

	// IPv4 side, from a program on the host (translation queue).
	v4 := [][]byte{
		ipv4(src4, pool4, 6, []byte{0x9c, 0x40, 0x00}),                // TCP header cut to 3 bytes
		ipv4(src4, pool4, 17, []byte{0x9c, 0x40, 0, 7, 0, 200, 0, 0}), // UDP length 200 in an 8-byte datagram
		ipv4(src4, pool4, 1, []byte{3, 1, 0, 0, 0, 0, 0, 0, 0x45, 0}), // ICMP error quoting 2 bytes
		ipv4(src4, pool4, 1, []byte{8}),                               // ICMP header cut to 1 byte
	}
	err = l.inNS("host", func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		for i, p := range v4 {
			sa := &unix.SockaddrInet4{Addr: pool4}
			if err := unix.Sendto(fd, p, 0, sa); err != nil {
				return fmt.Errorf("IPv4 garbage %d: %w", i, err)
			}
		}
		// DNS queue: a garbage query to the resolver.
		c, err := net.Dial("udp6", "[2001:db8:2::2]:53")
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("not a DNS message"))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// IPv6 side, from the router (translation queue: packets for the
	// translation source address; DNS queue: a garbage "response").
	v6 := [][]byte{
		ipv6(server6, src6, 6, []byte{0x00, 0x50, 0x9c}),                 // TCP header cut to 3 bytes
		ipv6(server6, src6, 43, []byte{6, 2, 0, 1, 0, 0, 0, 0}),          // Routing header, segments left 1, no address
		ipv6(server6, src6, 58, []byte{1, 4, 0, 0, 0, 0, 0, 0, 0x60, 0}), // ICMPv6 error quoting 2 bytes
	}
	err = l.inNS("rtr", func() error {
		fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW, unix.IPPROTO_RAW)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		for i, p := range v6 {
			if err := unix.Sendto(fd, p, 0, &unix.SockaddrInet6{Addr: src6}); err != nil {
				return fmt.Errorf("IPv6 garbage %d: %w", i, err)
			}
		}
		c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.ParseIP("2001:db8:1::1"), Port: 53})
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.WriteTo([]byte("\x12\x34\x81\x80 garbage"), &net.UDPAddr{IP: net.ParseIP("2001:db8:1::2"), Port: 40000})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// Every piece is counted under a named reason.
	deadline := time.Now().Add(5 * time.Second)
	var drops map[string]any
	for {
		st, err := d.Status()
		if err != nil {
			t.Fatal(err)
		}
		drops, _ = st["drops"].(map[string]any)
		var n float64
		for _, v := range drops {
			n += v.(float64)
		}
		if n >= float64(len(v4)+len(v6)+2) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, reason := range []string{"too_short", "dns_malformed"} {
		if drops[reason] == nil {
			t.Errorf("no %s drops counted after the garbage: %v", reason, drops)
		}
	}
	var n float64
	for _, v := range drops {
		n += v.(float64)
	}
	if n < float64(len(v4)+len(v6)+2) {
		t.Errorf("%v drops counted for %d garbage packets: %v", n, len(v4)+len(v6)+2, drops)
	}
	t.Logf("drops after the garbage: %v", drops)
	// And the daemon still works.
	out := l.Must("host", 20*time.Second, "curl", "-4", "-sS", "-m", "15", "http://web.test/")
	if !strings.Contains(out, "hello from the IPv6-only server") {
		t.Fatalf("curl -4 after the garbage: %q\n%s", out, d.Log)
	}
}

// ipv4 builds an IPv4 packet (the raw socket fills in length and checksum).
func ipv4(src, dst [4]byte, proto byte, payload []byte) []byte {
	p := make([]byte, 20+len(payload))
	p[0], p[8], p[9] = 0x45, 64, proto
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	copy(p[12:16], src[:])
	copy(p[16:20], dst[:])
	copy(p[20:], payload)
	return p
}

// ipv6 builds an IPv6 packet with a correct payload length.
func ipv6(src, dst [16]byte, nh byte, payload []byte) []byte {
	p := make([]byte, 40+len(payload))
	p[0], p[6], p[7] = 0x60, nh, 64
	binary.BigEndian.PutUint16(p[4:], uint16(len(payload)))
	copy(p[8:24], src[:])
	copy(p[24:40], dst[:])
	copy(p[40:], payload)
	return p
}

// TestOnlyNetCapabilities runs the daemon as the packaged unit does: uid 0
// with every capability gone but CAP_NET_ADMIN and CAP_NET_RAW.
func TestOnlyNetCapabilities(t *testing.T) {
	testenv.RequireCommand(t, "setpriv")
	l := NewLab(t)
	l.DaemonPrefix = []string{"setpriv", "--inh-caps=-all,+net_admin,+net_raw",
		"--ambient-caps=-all,+net_admin,+net_raw", "--bounding-set=-all,+net_admin,+net_raw"}
	d := l.StartDaemon("")
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	var eff string
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			eff = strings.TrimSpace(v)
		}
	}
	if eff != "0000000000003000" { // bits 12 (NET_ADMIN) and 13 (NET_RAW)
		t.Fatalf("daemon runs with CapEff %s, want only CAP_NET_ADMIN and CAP_NET_RAW", eff)
	}
	out := l.Must("host", 20*time.Second, "curl", "-4", "-sS", "-m", "15", "http://web.test/")
	if !strings.Contains(out, "hello from the IPv6-only server") {
		t.Fatalf("curl -4 with a capability-limited daemon: %q\n%s", out, d.Log)
	}
	if err := d.Stop(); err != nil {
		t.Fatalf("stop: %v\n%s", err, d.Log)
	}
	if left := l.hostClean(); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}

// TestMissingCapabilities: without CAP_NET_ADMIN and CAP_NET_RAW the daemon
// says which capability is missing, in one line, and installs nothing.
func TestMissingCapabilities(t *testing.T) {
	testenv.RequireCommand(t, "setpriv")
	l := NewLab(t)
	out, err := l.Run("host", 20*time.Second, "setpriv", "--inh-caps=-all", "--ambient-caps=-all",
		"--bounding-set=-all,+net_raw", l.Bin, "run", "--state-dir", l.State+"/nocap",
		"--status-socket", l.State+"/nocap.sock")
	if err == nil {
		t.Fatalf("run without CAP_NET_ADMIN succeeded:\n%s", out)
	}
	msg := strings.TrimSpace(out)
	if !strings.Contains(msg, "CAP_NET_ADMIN") || strings.Contains(msg, "CAP_NET_RAW") || strings.Contains(msg, "\n") {
		t.Errorf("want one line naming only CAP_NET_ADMIN, got:\n%s", out)
	}
	if left := l.hostClean(); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}
