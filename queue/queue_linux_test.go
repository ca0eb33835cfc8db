package queue

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
	"golang.org/x/sys/unix"

	"github.com/bih-nfq/bih-nfq/internal/drop"
	"github.com/bih-nfq/bih-nfq/internal/testenv"
)

const testMark = 0x6b1a

// testNS creates a network namespace with loopback up and a route for
// 10.170.160.0/20 via lo, and returns an fd for it.
func testNS(t *testing.T) int {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "ip")
	name := fmt.Sprintf("bihq%d", os.Getpid()%100000)
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	run("netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	run("-n", name, "link", "set", "lo", "up")
	run("-n", name, "route", "add", "10.170.160.0/20", "dev", "lo", "src", "127.0.0.1")
	fd, err := unix.Open("/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// steer installs, in the namespace, "meta mark MARK accept" then
// "ip daddr 10.170.160.0/20 queue num Q" (xtables NFQUEUE target, as this
// kernel lacks the native queue expression) in the output hook.
func steer(t *testing.T, ns int, q uint16) {
	t.Helper()
	steerMatch(t, ns, q, []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 3},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{10, 170, 160}},
	})
}

// steerMatch queues, in the output hook, what match selects (after
// accepting packets carrying testMark).
func steerMatch(t *testing.T, ns int, q uint16, match []expr.Any) {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(ns))
	if err != nil {
		t.Fatal(err)
	}
	tab := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: "qtest"})
	ch := c.AddChain(&nftables.Chain{Name: "out", Table: tab, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityFilter})
	var mark [4]byte
	binary.NativeEndian.PutUint32(mark[:], testMark)
	c.AddRule(&nftables.Rule{Table: tab, Chain: ch, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: mark[:]},
		&expr.Verdict{Kind: expr.VerdictAccept},
	}})
	info := make([]byte, 6)
	binary.NativeEndian.PutUint16(info[0:2], q)
	binary.NativeEndian.PutUint16(info[2:4], 1)
	c.AddRule(&nftables.Rule{Table: tab, Chain: ch, Exprs: append(match,
		&expr.Counter{},
		&expr.Target{Name: "NFQUEUE", Rev: 3, Info: (*xt.Unknown)(&info)},
	)})
	if err := c.Flush(); err != nil {
		t.Fatalf("install steering rules: %v", err)
	}
}

// inNS runs f on a thread switched into ns (sockets made there stay there).
func inNS(t *testing.T, ns int, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		if err := unix.Setns(ns, unix.CLONE_NEWNET); err != nil {
			t.Errorf("setns: %v", err)
			return
		}
		f()
	}()
	<-done
}

// redirect is a test handler: it rewrites IPv4 UDP to 10.170.160.0/20 so it
// goes to 127.0.0.1 instead (full checksum recompute), emits it, and drops
// the original — the same receive → emit → verdict path as translation.
type redirect struct {
	seen    atomic.Int64
	settled atomic.Int64
	hold    bool // hold every 10th packet (Pending), settle after release
	release chan struct{}
	conn    *Conn
	wg      sync.WaitGroup
}

func (h *redirect) Handle(p *Packet, out Sink) uint32 {
	h.seen.Add(1)
	b := p.Payload()
	if len(b) < 28 || b[0]>>4 != 4 || b[9] != unix.IPPROTO_UDP {
		return Accept
	}
	ihl := int(b[0]&0xf) * 4
	copy(b[16:20], []byte{127, 0, 0, 1})
	b[10], b[11] = 0, 0
	binary.BigEndian.PutUint16(b[10:12], csum(b[:ihl], 0))
	udp := b[ihl:]
	udp[6], udp[7] = 0, 0
	var ph [12]byte
	copy(ph[0:8], b[12:20])
	ph[9] = unix.IPPROTO_UDP
	binary.BigEndian.PutUint16(ph[10:12], uint16(len(udp)))
	binary.BigEndian.PutUint16(udp[6:8], csum(udp, sum(ph[:], 0)))
	if err := out.Add(b, within(b, p.Buf)); err != nil {
		panic(err)
	}
	if h.hold && h.seen.Load()%10 == 1 {
		id := p.ID
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			<-h.release
			if err := h.conn.SetVerdict(id, Drop); err == nil {
				h.settled.Add(1)
			}
		}()
		return Pending
	}
	return Drop
}

func sum(b []byte, s uint32) uint32 {
	for len(b) >= 2 {
		s += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	return s
}

// udp6Pseudo is the unfolded sum of the pseudo-header of the IPv6 UDP
// datagram p, for the length in its UDP header.
func udp6Pseudo(p []byte) uint32 {
	var ph [40]byte
	copy(ph[0:32], p[8:40])
	binary.BigEndian.PutUint32(ph[32:], uint32(binary.BigEndian.Uint16(p[44:])))
	ph[39] = unix.IPPROTO_UDP
	return sum(ph[:], 0)
}

// loopbackEmitter is an Emitter in a new namespace (with tun, if any) and a
// UDP socket on [::1]:port there to receive what it sends.
func loopbackEmitter(t *testing.T, tun *os.File, port int) (*Emitter, *net.UDPConn) {
	t.Helper()
	ns := testNS(t)
	em, err := NewEmitter(EmitterConfig{Mark: testMark, NetNS: ns, TUN: tun})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { em.Close() })
	var rx *net.UDPConn
	inNS(t, ns, func() {
		rx, err = net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback, Port: port})
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rx.Close() })
	return em, rx
}

// steerUDP queues, in ns, UDP datagrams to port (output hook) to queue q.
func steerUDP(t *testing.T, ns int, q uint16, port uint16) {
	t.Helper()
	steerMatch(t, ns, q, []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_UDP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, port)},
	})
}

// loopbackUDP returns, in ns, a socket on 127.0.0.1:port and one connected
// to it; both close when the test ends.
func loopbackUDP(t *testing.T, ns int, port int) (rx, tx *net.UDPConn) {
	t.Helper()
	var err error
	inNS(t, ns, func() {
		if rx, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}); err != nil {
			return
		}
		tx, err = net.DialUDP("udp4", nil, rx.LocalAddr().(*net.UDPAddr))
	})
	if rx != nil {
		t.Cleanup(func() { rx.Close() })
	}
	if err != nil {
		t.Fatalf("UDP on 127.0.0.1:%d: %v", port, err)
	}
	t.Cleanup(func() { tx.Close() })
	return rx, tx
}

func csum(b []byte, s uint32) uint16 {
	s = sum(b, s)
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

func runQueue(t *testing.T, hold bool, count int) {
	ns := testNS(t)
	const q = 7
	steer(t, ns, q)
	conn, err := Open(Config{Num: q, NetNS: ns, Batch: 16})
	if err != nil {
		t.Fatal(err)
	}
	em, err := NewEmitter(EmitterConfig{Mark: testMark, NetNS: ns})
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	h := &redirect{hold: hold, conn: conn, release: make(chan struct{})}
	w := &Worker{Conn: conn, Emitter: em, Handler: h, Drops: new(drop.Counters), Async: hold}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- w.Run(ctx) }()

	var rx, tx *net.UDPConn
	inNS(t, ns, func() {
		if rx, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9999}); err != nil {
			t.Errorf("listen: %v", err)
			return
		}
		if tx, err = net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(10, 170, 160, 1), Port: 9999}); err != nil {
			t.Errorf("dial: %v", err)
		}
	})
	if t.Failed() {
		return
	}
	defer rx.Close()
	defer tx.Close()

	got := make(map[string]bool)
	var mu sync.Mutex
	rdone := make(chan struct{})
	go func() {
		defer close(rdone)
		buf := make([]byte, 2048)
		rx.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			n, err := rx.Read(buf)
			if err != nil {
				return
			}
			mu.Lock()
			got[string(buf[:n])] = true
			done := len(got) == count
			mu.Unlock()
			if done {
				return
			}
		}
	}()
	for i := range count {
		if _, err := fmt.Fprintf(tx, "datagram %d", i); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		if i%32 == 31 {
			time.Sleep(time.Millisecond) // stay under the socket buffers
		}
	}
	<-rdone
	held := (count + 9) / 10 // every 10th packet, from the first
	if hold {
		// Held packets stay in the kernel queue: no later batch verdict
		// settled them. The last batch's copies are emitted before its
		// verdicts are sent, so give those verdicts a moment to land.
		for end := time.Now().Add(2 * time.Second); queueTotal(t, ns, q) > held && time.Now().Before(end); {
			time.Sleep(5 * time.Millisecond)
		}
		if n := queueTotal(t, ns, q); n != held {
			t.Errorf("kernel holds %d packets in queue %d, want %d", n, q, held)
		}
		close(h.release)
		for end := time.Now().Add(5 * time.Second); queueTotal(t, ns, q) != 0 && time.Now().Before(end); {
			time.Sleep(5 * time.Millisecond)
		}
		if n := queueTotal(t, ns, q); n != 0 {
			t.Errorf("kernel still holds %d packets after the late verdicts", n)
		}
		for end := time.Now().Add(5 * time.Second); h.settled.Load() < int64(held) && time.Now().Before(end); {
			time.Sleep(5 * time.Millisecond)
		}
		if s := h.settled.Load(); s != int64(held) {
			t.Errorf("%d of %d asynchronous verdicts accepted by the kernel", s, count)
		}
	}
	cancel()
	if err := <-errc; err != nil && err != context.Canceled {
		t.Fatalf("worker: %v", err)
	}
	h.wg.Wait() // after Run returned: every wg.Add happened in the worker
	mu.Lock()
	defer mu.Unlock()
	for i := range count {
		if !got[fmt.Sprintf("datagram %d", i)] {
			t.Errorf("datagram %d not delivered (got %d of %d; handler saw %d, emitted %d, emit failures %d, last error %v)",
				i, len(got), count, h.seen.Load(), w.Stats.Emitted.Load(), w.Stats.EmitFails.Load(), em.LastErr)
			break
		}
	}
	// Emitted packets carry the mark, so each datagram is queued exactly once.
	if s := h.seen.Load(); s != int64(count) {
		t.Errorf("handler saw %d packets, want %d (own marked packets must not be queued)", s, count)
	}
	if !hold && w.Stats.Batches.Load() == 0 {
		t.Error("no batch received")
	}
}

// queueTotal reads how many packets queue q holds, from the kernel's
// /proc/net/netfilter/nfnetlink_queue as seen from namespace ns.
func queueTotal(t *testing.T, ns int, q uint16) int {
	t.Helper()
	total := -1
	inNS(t, ns, func() {
		f, err := os.Open("/proc/thread-self/net/netfilter/nfnetlink_queue")
		if err != nil {
			t.Errorf("read queue stats: %v", err)
			return
		}
		defer f.Close()
		st, err := ParseKernelStats(f)
		if err != nil {
			t.Errorf("parse queue stats: %v", err)
			return
		}
		for _, s := range st {
			if s.Queue == q {
				total = int(s.Waiting)
			}
		}
	})
	return total
}

func TestQueueRedirectBatchVerdicts(t *testing.T) { runQueue(t, false, 500) }

func TestQueueAsyncVerdicts(t *testing.T) { runQueue(t, true, 200) }

func TestOpenBusyQueue(t *testing.T) {
	ns := testNS(t)
	c1, err := Open(Config{Num: 9, NetNS: ns})
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	c2, err := Open(Config{Num: 9, NetNS: ns})
	if err == nil {
		c2.Close()
		t.Fatal("second bind of the same queue succeeded")
	}
}

// mangle answers each queued UDP datagram "ping N" by accepting it with the
// payload "PONG N, rewritten" (longer), through the verdict alone: from
// another goroutine (late), or in the worker's verdict datagram (Replace),
// or each in turn (mixed).
type mangle struct {
	conn *Conn
	mode string
	n    int
	wg   sync.WaitGroup
}

func (h *mangle) Handle(p *Packet, _ Sink) uint32 {
	b := p.Payload()
	if len(b) < 28 || b[0]>>4 != 4 || b[9] != unix.IPPROTO_UDP {
		return Accept
	}
	ihl := int(b[0]&0xf) * 4
	msg := "PONG" + string(b[ihl+8+4:]) + ", rewritten"
	nb := make([]byte, ihl+8+len(msg))
	copy(nb, b[:ihl+8])
	copy(nb[ihl+8:], msg)
	binary.BigEndian.PutUint16(nb[2:4], uint16(len(nb)))
	nb[10], nb[11] = 0, 0
	binary.BigEndian.PutUint16(nb[10:12], csum(nb[:ihl], 0))
	udp := nb[ihl:]
	binary.BigEndian.PutUint16(udp[4:6], uint16(len(udp)))
	udp[6], udp[7] = 0, 0
	var ph [12]byte
	copy(ph[0:8], nb[12:20])
	ph[9] = unix.IPPROTO_UDP
	binary.BigEndian.PutUint16(ph[10:12], uint16(len(udp)))
	binary.BigEndian.PutUint16(udp[6:8], csum(udp, sum(ph[:], 0)))
	h.n++
	if h.mode == "replace" || h.mode == "mixed" && h.n%2 == 0 {
		p.Replace = nb
		return Accept
	}
	id := p.ID
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		if err := h.conn.SetVerdictPayload(id, Accept, nb); err != nil {
			panic(err)
		}
	}()
	return Pending
}

func TestQueueVerdictReplacesPayload(t *testing.T) {
	for _, mode := range []string{"late", "replace", "mixed"} {
		t.Run(mode, func(t *testing.T) { testVerdictReplacesPayload(t, mode) })
	}
}

func testVerdictReplacesPayload(t *testing.T, mode string) {
	ns := testNS(t)
	const q = 8
	steerUDP(t, ns, q, 9998)
	conn, err := Open(Config{Num: q, NetNS: ns})
	if err != nil {
		t.Fatal(err)
	}
	em, err := NewEmitter(EmitterConfig{Mark: testMark, NetNS: ns})
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	defer conn.Close()
	h := &mangle{conn: conn, mode: mode}
	w := &Worker{Conn: conn, Emitter: em, Handler: h, Async: true}
	rx, tx := loopbackUDP(t, ns, 9998)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- w.Run(ctx) }()
	const count = 20
	for i := range count {
		fmt.Fprintf(tx, "ping %d", i)
	}
	rx.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 2048)
	got := map[string]bool{}
	for len(got) < count {
		n, err := rx.Read(buf)
		if err != nil {
			t.Fatalf("after %d datagrams: %v", len(got), err)
		}
		got[string(buf[:n])] = true
	}
	for i := range count {
		if want := fmt.Sprintf("PONG %d, rewritten", i); !got[want] {
			t.Errorf("missing %q; got %v", want, got)
		}
	}
	cancel()
	<-errc
	h.wg.Wait()
}

// TestEmitIPv6Sources sends IPv6 UDP datagrams to ::1 through an Emitter,
// from the host's own address and from one it does not hold (router mode
// translates for other hosts): both arrive, with their sources unchanged.
func TestEmitIPv6Sources(t *testing.T) {
	em, rx := loopbackEmitter(t, nil, 9998)
	srcs := []net.IP{net.IPv6loopback, net.ParseIP("2001:db8:77::9")}
	for i, src := range srcs {
		payload := []byte(fmt.Sprintf("from %d", i))
		p := make([]byte, 48+len(payload))
		p[0] = 0x60
		binary.BigEndian.PutUint16(p[4:], uint16(8+len(payload)))
		p[6], p[7] = unix.IPPROTO_UDP, 64
		copy(p[8:24], src)
		copy(p[24:40], net.IPv6loopback)
		binary.BigEndian.PutUint16(p[40:], 4000)
		binary.BigEndian.PutUint16(p[42:], 9998)
		binary.BigEndian.PutUint16(p[44:], uint16(8+len(payload)))
		copy(p[48:], payload)
		binary.BigEndian.PutUint16(p[46:], csum(p[40:], udp6Pseudo(p)))
		if err := em.Add(p, true); err != nil {
			t.Fatal(err)
		}
	}
	if failed := em.Flush(); failed != 0 {
		t.Fatalf("%d sends refused: %v", failed, em.LastErr)
	}
	rx.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 100)
	for range srcs {
		n, from, err := rx.ReadFromUDP(buf)
		if err != nil {
			t.Fatal(err)
		}
		var i int
		if _, err := fmt.Sscanf(string(buf[:n]), "from %d", &i); err != nil || i >= len(srcs) {
			t.Fatalf("unexpected datagram %q", buf[:n])
		}
		if !from.IP.Equal(srcs[i]) {
			t.Errorf("datagram %d arrived from %v, want %v", i, from.IP, srcs[i])
		}
	}
}

// TestHoldVerdicts: a held verdict is not sent by itself; it goes out with
// the next SetVerdicts, with a second one held (both at once), and from
// Receive when the queue is empty, before Receive waits.
func TestHoldVerdicts(t *testing.T) {
	ns := testNS(t)
	const q = 9
	steerUDP(t, ns, q, 9997)
	conn, err := Open(Config{Num: q, NetNS: ns})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rx, tx := loopbackUDP(t, ns, 9997)

	pkts := make([]Packet, 16)
	// send queues n datagrams and receives them from the queue.
	send := func(n int) []Packet {
		t.Helper()
		for i := range n {
			fmt.Fprintf(tx, "datagram %d", i)
		}
		var got []Packet
		for len(got) < n {
			k, err := conn.Receive(pkts[len(got):n])
			if err != nil {
				t.Fatalf("receive: %v", err)
			}
			got = pkts[:len(got)+k]
		}
		return got
	}
	// arrived reads what reaches rx, until want have or wait is over.
	arrived := func(want int, wait time.Duration) int {
		rx.SetReadDeadline(time.Now().Add(wait))
		buf := make([]byte, 64)
		n := 0
		for n < want || want == 0 {
			if _, err := rx.Read(buf); err != nil {
				break
			}
			n++
		}
		return n
	}
	accept := []uint32{Accept, Accept, Accept}

	p := send(1)
	if err := conn.HoldVerdicts(p, accept[:1]); err != nil {
		t.Fatal(err)
	}
	if n := arrived(0, 100*time.Millisecond); n != 0 || queueTotal(t, ns, q) != 1 {
		t.Fatalf("a held verdict was sent: %d arrived, queue holds %d", n, queueTotal(t, ns, q))
	}
	p = send(2)
	// No batch verdict: one would settle the held packet's id as well.
	if err := conn.SetVerdicts(p, accept[:2], false); err != nil {
		t.Fatal(err)
	}
	if n := arrived(3, time.Second); n != 3 {
		t.Errorf("held verdict with SetVerdicts: %d of 3 datagrams arrived", n)
	}

	for range 2 {
		p = send(1)
		if err := conn.HoldVerdicts(p, accept[:1]); err != nil {
			t.Fatal(err)
		}
	}
	if n := arrived(2, time.Second); n != 2 {
		t.Errorf("second held verdict: %d of 2 datagrams arrived", n)
	}

	// Receive on the empty queue sends the one held, then waits.
	p = send(1)
	if err := conn.HoldVerdicts(p, accept[:1]); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := conn.Receive(pkts)
		done <- err
	}()
	if n := arrived(1, time.Second); n != 1 {
		t.Errorf("waiting Receive: %d datagrams arrived, want the held one", n)
	}
	if n := queueTotal(t, ns, q); n != 0 {
		t.Errorf("queue holds %d packets", n)
	}
	conn.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Receive still waiting after Close")
	}
}

// echoHandler accepts every packet; its first one sends a second datagram
// from inside Handle, as an echo reply comes back while a lone packet is
// emitted. For the second it records how many packets the kernel queue
// holds.
type echoHandler struct {
	t      *testing.T
	ns     int
	q      uint16
	tx     *net.UDPConn
	n      int
	queued chan int
}

func (h *echoHandler) Handle(p *Packet, out Sink) uint32 {
	h.n++
	switch h.n {
	case 1:
		fmt.Fprintf(h.tx, "reply")
	case 2:
		h.queued <- queueTotal(h.t, h.ns, h.q)
	}
	return Accept
}

// TestWorkerHoldsLoneVerdict: the worker receives what a lone packet
// brought back before it sends that packet's verdict.
func TestWorkerHoldsLoneVerdict(t *testing.T) {
	ns := testNS(t)
	const q = 10
	steerUDP(t, ns, q, 9996)
	conn, err := Open(Config{Num: q, NetNS: ns})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close() // the worker closes it too; a second Close is harmless
	em, err := NewEmitter(EmitterConfig{Mark: testMark, NetNS: ns})
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	rx, tx := loopbackUDP(t, ns, 9996)
	h := &echoHandler{t: t, ns: ns, q: q, tx: tx, queued: make(chan int, 1)}
	w := &Worker{Conn: conn, Emitter: em, Handler: h}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- w.Run(ctx) }()
	fmt.Fprintf(tx, "request")
	select {
	case n := <-h.queued:
		if n != 2 {
			t.Errorf("the kernel queue held %d packets when the second was handled, want 2 (the first's verdict held)", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the second datagram was not handled")
	}
	rx.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	for _, want := range []string{"request", "reply"} {
		n, err := rx.Read(buf)
		if err != nil || string(buf[:n]) != want {
			t.Fatalf("read %q, %v; want %q", buf[:n], err, want)
		}
	}
	cancel()
	if err := <-errc; err != nil && err != context.Canceled {
		t.Fatalf("worker: %v", err)
	}
}
