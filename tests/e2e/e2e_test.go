package e2e

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bih-nfq/bih-nfq/internal/testenv"
)

var defaultPool = netip.MustParsePrefix("10.170.160.0/20")

// resolve4 runs `getent ahostsv4 name` in the host and returns the first
// address.
func (l *Lab) resolve4(name string) netip.Addr {
	l.t.Helper()
	out := l.Must("host", 10*time.Second, "getent", "ahostsv4", name)
	f := strings.Fields(out)
	if len(f) == 0 {
		l.t.Fatalf("getent ahostsv4 %s: no address", name)
	}
	a, err := netip.ParseAddr(f[0])
	if err != nil {
		l.t.Fatalf("getent ahostsv4 %s: %q: %v", name, out, err)
	}
	return a
}

// expectedSHA asks the server, over native IPv6, for the sha256 of
// /bytes/n, so the check does not depend on the translator.
func (l *Lab) expectedSHA(n int) string {
	l.t.Helper()
	return strings.TrimSpace(l.Must("host", 20*time.Second, "curl", "-6", "-sS", "-m", "15",
		fmt.Sprintf("http://[2001:db8:2::2]/sha256/%d", n)))
}

// download fetches /bytes/n over IPv4 by name and returns its sha256.
func (l *Lab) download(n int, timeout time.Duration) (string, error) {
	out, err := l.Run("host", timeout, "sh", "-c",
		fmt.Sprintf("curl -4 -sS -f -m %d http://web.test/bytes/%d | sha256sum", int(timeout.Seconds())-1, n))
	if err != nil {
		return "", fmt.Errorf("%v: %s", err, out)
	}
	return strings.Fields(out)[0], nil
}

// capture runs tcpdump on the server's interface until stop is called, and
// returns the pcap path.
func (l *Lab) capture(name string) (path string, stop func()) {
	l.t.Helper()
	testenv.RequireCommand(l.t, "tcpdump")
	path = filepath.Join(l.State, name+".pcap")
	cmd := exec.Command("ip", "netns", "exec", l.NS("srv"), "tcpdump", "-U", "-n", "-i", "eth0", "-w", path, "ip6")
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // let tcpdump open the interface
	return path, func() {
		cmd.Process.Signal(unix.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
}

// TestEndToEnd runs scenarios 1, 2, 3, 4, 5 and 10 of the daemon's
// acceptance list against one daemon, with a capture on the server.
func TestEndToEnd(t *testing.T) {
	l := NewLab(t)
	d := l.StartDaemon("")
	// The host's uplink finishes checksums (and cuts super-packets) in
	// software, so the server's capture shows what the translator's packets
	// carry on a wire: a wrong checksum start or pseudo-header sum in the
	// virtio-net header of a whole super-packet shows as bad checksums.
	testenv.RequireCommand(t, "ethtool")
	l.Must("host", 10*time.Second, "ethtool", "-K", "eth0", "tx", "off")
	pcap, stopCapture := l.capture("e2e")

	t.Run("resolve and download", func(t *testing.T) { // scenario 1
		a := l.resolve4("web.test")
		if !defaultPool.Contains(a) {
			t.Fatalf("web.test resolved to %v, not a pool address", a)
		}
		want := l.expectedSHA(10_000_000)
		got, err := l.download(10_000_000, 60*time.Second)
		if err != nil || got != want {
			t.Fatalf("10 MB download over IPv4: sha256 %q (err %v), want %q\n%s", got, err, want, d.Log)
		}
	})

	t.Run("a repeated query answered from the ENR's cache", func(t *testing.T) {
		// getent asks without EDNS options: the resolver's answer and the
		// AAAA result from the first subtest are cached (RFC 6535 §2.3.4).
		before := statusCount(t, d, "dns", "cached")
		first := l.resolve4("web.test")
		if again := l.resolve4("web.test"); again != first || !defaultPool.Contains(again) {
			t.Fatalf("web.test resolved to %v, then %v", first, again)
		}
		if n := statusCount(t, d, "dns", "cached"); n < before+2 {
			t.Errorf("dns cached %v after two more queries, was %v\n%s", n, before, d.Log)
		}
	})

	t.Run("ping and traceroute", func(t *testing.T) { // scenario 2
		testenv.RequireCommand(t, "traceroute")
		out := l.Must("host", 20*time.Second, "ping", "-4", "-c", "3", "-W", "2", "web.test")
		if !strings.Contains(out, "3 received") {
			t.Fatalf("ping -4: %s", out)
		}
		server := l.resolve4("web.test").String()
		for _, mode := range [][]string{{}, {"-I"}} { // UDP probes, then ICMP echo
			args := append([]string{"traceroute", "-4", "-n", "-q", "1", "-w", "2", "-m", "6"}, mode...)
			out := l.Must("host", 40*time.Second, append(args, "web.test")...)
			hops := traceHops(out)
			if len(hops) < 2 || hops[len(hops)-1] != server {
				t.Errorf("traceroute %v: hops %v, want the router then %s\n%s", mode, hops, server, out)
				continue
			}
			if hops[0] == "*" || hops[0] == server {
				t.Errorf("traceroute %v: first hop %q is not the router\n%s", mode, hops[0], out)
			}
		}
	})

	t.Run("path MTU and fragmentation", func(t *testing.T) { // scenario 3
		want := l.expectedSHA(5_000_000)
		got, err := l.download(5_000_000, 60*time.Second)
		if err != nil || got != want {
			t.Fatalf("5 MB download across the 1280 link: %q (err %v), want %q", got, err, want)
		}
		// Uploads send full-size segments toward the 1280 link: the router's
		// Packet Too Big must come back as Fragmentation Needed. They leave
		// as whole super-packets, cut by the kernel (queue.tcp-gso forward).
		l.upload(t, 5_000_000)
		if n := statusCount(t, d, "translated", "4to6_whole"); n == 0 {
			t.Errorf("no TCP super-packet left whole during the upload\n%s", d.Log)
		}
		// A 3,000-byte UDP datagram with DF clear: IPv6 fragments, whole at
		// the server, whose echo names the length.
		reply := l.udpExchange(t, l.resolve4("web.test"), 7, 3000)
		if !strings.HasPrefix(reply, "3000 ") {
			t.Fatalf("3000-byte UDP datagram: server saw %q", reply)
		}
	})

	t.Run("dual-stack name keeps its A record", func(t *testing.T) { // scenario 4
		before := mappingCount(t, d)
		if a := l.resolve4("dual.test"); a.String() != "192.0.2.80" {
			t.Fatalf("dual.test: %v, want its real A record 192.0.2.80", a)
		}
		if after := mappingCount(t, d); after != before {
			t.Errorf("a dual-stack lookup created mappings: %d → %d", before, after)
		}
	})

	t.Run("reverse lookup of a pool address", func(t *testing.T) { // scenario 5
		a := l.resolve4("web.test")
		out := l.Must("host", 10*time.Second, "getent", "hosts", a.String())
		if !strings.Contains(out, "web.test") {
			t.Fatalf("getent hosts %v: %q, want web.test", a, out)
		}
	})

	stopCapture()
	t.Run("server-side capture decodes with good checksums", func(t *testing.T) { // scenario 10
		st, err := d.Status()
		if err != nil {
			t.Fatal(err)
		}
		// Only the translator's packets: the server's own are captured
		// before checksum offload fills them in.
		src6, _ := st["source6"].(string)
		if src6 == "" {
			t.Fatalf("status has no source6: %v", st)
		}
		checkCapture(t, pcap, "ipv6.src == "+src6)
	})
	if err := d.Stop(); err != nil {
		t.Errorf("daemon exit: %v\n%s", err, d.Log)
	}
	if left := l.hostClean(); len(left) > 0 {
		t.Errorf("left behind after SIGTERM: %v", left)
	}
}

// traceHops returns the address (or "*") of each hop line of traceroute -n.
func traceHops(out string) []string {
	var hops []string
	re := regexp.MustCompile(`^\s*\d+\s+(\S+)`)
	for _, line := range strings.Split(out, "\n") {
		if m := re.FindStringSubmatch(line); m != nil {
			hops = append(hops, m[1])
		}
	}
	return hops
}

// upload posts n random bytes from the host to web.test over IPv4 and
// checks that the server got them intact.
func (l *Lab) upload(t *testing.T, n int) {
	t.Helper()
	out := l.Must("host", 60*time.Second, "sh", "-c",
		fmt.Sprintf("head -c %d /dev/urandom > /tmp/bih-up.$$ && sha256sum < /tmp/bih-up.$$ && ", n)+
			"curl -4 -sS -f -m 50 --data-binary @/tmp/bih-up.$$ http://web.test/upload; rm -f /tmp/bih-up.$$")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || strings.Fields(lines[0])[0] != strings.Fields(lines[1])[0] {
		t.Fatalf("%d-byte upload: %q", n, out)
	}
}

// statusCount is one counter of a section of the daemon's status.
func statusCount(t *testing.T, d *Daemon, section, key string) float64 {
	t.Helper()
	st, err := d.Status()
	if err != nil {
		t.Fatal(err)
	}
	tr, _ := st[section].(map[string]any)
	v, _ := tr[key].(float64)
	return v
}

// TestUploadCut: with queue.tcp-gso cut, outbound super-packets are cut
// into segments here and sent through raw sockets; none leaves whole.
func TestUploadCut(t *testing.T) {
	l := NewLab(t)
	d := l.StartDaemon("queue:\n  tcp-gso: cut\n")
	l.upload(t, 5_000_000)
	if n := statusCount(t, d, "translated", "4to6_whole"); n != 0 {
		t.Errorf("%v super-packets left whole with tcp-gso cut", n)
	}
	if n := statusCount(t, d, "translated", "4to6_packets"); n < 3000 {
		t.Errorf("%v packets translated for a 5 MB upload", n)
	}
}

func mappingCount(t *testing.T, d *Daemon) int {
	t.Helper()
	st, err := d.Status()
	if err != nil {
		t.Fatal(err)
	}
	m, _ := st["mappings"].([]any)
	return len(m)
}

// udpExchange sends one datagram of size bytes from the host namespace (a
// plain IPv4 UDP socket, DF clear) to addr:port and returns the reply.
func (l *Lab) udpExchange(t *testing.T, addr netip.Addr, port, size int) string {
	t.Helper()
	ns, err := os.Open("/run/netns/" + l.NS("host"))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	var reply string
	var ferr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // not unlocked: the thread ends with the goroutine
		if ferr = unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); ferr != nil {
			return
		}
		c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, uint16(port))))
		if err != nil {
			ferr = err
			return
		}
		defer c.Close()
		rc, err := c.SyscallConn()
		if err != nil {
			ferr = err
			return
		}
		rc.Control(func(fd uintptr) { // DF clear: let the datagram be fragmented
			ferr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DONT)
		})
		if ferr != nil {
			return
		}
		buf := make([]byte, size)
		for try := 0; try < 3 && reply == ""; try++ {
			if _, ferr = c.Write(buf); ferr != nil {
				return
			}
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, err := c.Read(buf)
			if err == nil {
				reply = string(buf[:n])
			}
		}
		if reply == "" {
			ferr = fmt.Errorf("no reply to a %d-byte datagram after 3 tries", size)
		}
	}()
	<-done
	if ferr != nil {
		t.Fatal(ferr)
	}
	return reply
}

// checkCapture runs tshark with checksum validation over the frames of a
// capture that match filter and fails on any malformed packet or bad
// checksum.
func checkCapture(t *testing.T, pcap, filter string) {
	t.Helper()
	testenv.RequireCommand(t, "tshark")
	args := []string{"-n", "-r", pcap, "-Y", filter,
		"-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
		"-T", "fields", "-e", "frame.number", "-e", "_ws.expert.message", "-e", "_ws.malformed"}
	out, err := exec.Command("tshark", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	frames, bad := 0, 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line == "" {
			continue
		}
		frames++
		low := strings.ToLower(line)
		if strings.Contains(low, "malformed") || strings.Contains(low, "bad checksum") ||
			strings.Contains(low, "incorrect") {
			bad++
			if bad <= 5 {
				t.Errorf("capture frame: %s", line)
			}
		}
	}
	if frames < 1000 {
		t.Errorf("capture has only %d frames; the scenarios moved more than that", frames)
	}
	if bad > 0 {
		t.Errorf("%d of %d frames malformed or with bad checksums", bad, frames)
	}
	t.Logf("tshark checked %d frames", frames)
}

// TestRestart is scenario 7: a clean stop leaves the host clean and the
// mapping survives a restart; a kill -9 in the middle of a download and a
// restart within 2 s let the download finish intact.
func TestRestart(t *testing.T) {
	l := NewLab(t)
	d := l.StartDaemon("")
	first := l.resolve4("web.test")
	if err := d.Stop(); err != nil {
		t.Fatalf("stop: %v\n%s", err, d.Log)
	}
	if left := l.hostClean(); len(left) > 0 {
		t.Fatalf("left behind after SIGTERM: %v", left)
	}
	d = l.StartDaemon("")
	if again := l.resolve4("web.test"); again != first {
		t.Fatalf("web.test was %v, after restart %v", first, again)
	}

	const size = 50_000_000
	want := l.expectedSHA(size)
	// Rate-limited so the download is still running when the daemon dies.
	dl := l.StartDownload(size, "10M", 120*time.Second)
	time.Sleep(1500 * time.Millisecond)
	d.Kill()
	time.Sleep(500 * time.Millisecond)
	d = l.StartDaemon("")
	if sha, err := dl.Wait(); err != nil || sha != want {
		t.Fatalf("download across kill -9 and restart: %q (err %v), want %q\n%s", sha, err, want, d.Log)
	}
}

// TestResolverOverIPv4 is scenario 6's second half: the host's resolver is
// a local forwarder on 127.0.0.1 (reachable only over IPv4), which forwards
// to the server over IPv6. (The first half, a resolver reachable only over
// IPv6, is the lab's default and runs in TestEndToEnd.)
func TestResolverOverIPv4(t *testing.T) {
	l := NewLab(t)
	conf := filepath.Join(l.State, "fwd.conf")
	err := os.WriteFile(conf, []byte(fmt.Sprintf(`server:
	interface: 127.0.0.1
	do-ip6: yes
	access-control: 127.0.0.0/8 allow
	username: ""
	chroot: ""
	directory: %q
	pidfile: %q
	use-syslog: no
	do-daemonize: yes
	do-not-query-localhost: no
	domain-insecure: "test."
	local-zone: "test." nodefault
	module-config: "iterator"
forward-zone:
	name: "."
	forward-addr: 2001:db8:2::2
`, l.State, filepath.Join(l.State, "fwd.pid"))), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	l.Must("host", 10*time.Second, "unbound", "-c", conf)
	t.Cleanup(func() {
		if b, err := os.ReadFile(filepath.Join(l.State, "fwd.pid")); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				unix.Kill(pid, unix.SIGTERM)
			}
		}
	})
	if err := os.WriteFile("/etc/netns/"+l.NS("host")+"/resolv.conf", []byte("nameserver 127.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l.StartDaemon("")
	a := l.resolve4("web.test")
	if !defaultPool.Contains(a) {
		t.Fatalf("web.test via a local IPv4 resolver: %v, not a pool address", a)
	}
	out := l.Must("host", 20*time.Second, "curl", "-4", "-sS", "-m", "15", "http://web.test/")
	if !strings.Contains(out, "hello from the IPv6-only server") {
		t.Fatalf("curl -4 via a local IPv4 resolver: %q", out)
	}
}

// TestBadConfig is scenario 9's second half: a bad config file gives a clear
// error naming the key, exit status ≠ 0, and nothing left installed.
func TestBadConfig(t *testing.T) {
	l := NewLab(t)
	p := filepath.Join(l.State, "bad.yaml")
	if err := os.WriteFile(p, []byte("translation:\n  lowest-ipv6-mtu: 99\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := l.Run("host", 20*time.Second, l.Bin, "run", "--config", p,
		"--state-dir", filepath.Join(l.State, "st"), "--status-socket", filepath.Join(l.State, "s.sock"))
	if err == nil {
		t.Fatalf("run with a bad config succeeded:\n%s", out)
	}
	if !strings.Contains(out, "lowest-ipv6-mtu") || strings.Count(strings.TrimSpace(out), "\n") > 1 {
		t.Errorf("bad config: want a one-line error naming the key, got:\n%s", out)
	}
	if strings.Contains(out, "panic") {
		t.Errorf("bad config panicked:\n%s", out)
	}
	if left := l.hostClean(); len(left) > 0 {
		t.Errorf("left behind after a bad config: %v", left)
	}
}

// TestSecondInstance: a second daemon in the same namespace refuses to
// start, in one line, and leaves the first one's ruleset and translation
// as they were; so does one given the first one's state directory from
// another namespace.
func TestSecondInstance(t *testing.T) {
	l := NewLab(t)
	d := l.StartDaemon("")
	first := l.resolve4("web.test")
	out, err := l.RunDaemonOnce("daemon:\n  log-level: warn\n", 20*time.Second)
	if err == nil || !strings.Contains(out, "another bih-nfq runs in this network namespace") {
		t.Fatalf("second daemon in the namespace: err %v, output:\n%s", err, out)
	}
	if strings.Count(strings.TrimSpace(out), "\n") > 0 || strings.Contains(out, "panic") {
		t.Errorf("want a one-line refusal, got:\n%s", out)
	}
	if got := l.resolve4("web.test"); got != first {
		t.Errorf("after the refusal web.test is %v, was %v", got, first)
	}
	l.Must("host", 10*time.Second, "nft", "list", "table", "ip", "bih_nfq")
	l.Must("host", 10*time.Second, "ping", "-4", "-c", "1", "-W", "2", first.String())
	// The first daemon's state directory, from the router's namespace.
	out, err = l.Run("rtr", 20*time.Second, l.Bin, "run", "--state-dir", filepath.Join(l.State, "daemon", "state"),
		"--status-socket", filepath.Join(l.State, "rtr.sock"))
	if err == nil || !strings.Contains(out, "another bih-nfq uses state directory") {
		t.Errorf("second daemon on the state directory: err %v, output:\n%s", err, out)
	}
	if err := d.Stop(); err != nil {
		t.Fatalf("stop: %v\n%s", err, d.Log)
	}
	if left := l.hostClean(); len(left) > 0 {
		t.Fatalf("left behind: %v", left)
	}
}
