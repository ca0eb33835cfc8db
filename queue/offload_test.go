package queue

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/bih-nfq/bih-nfq/internal/drop"
	"github.com/bih-nfq/bih-nfq/translate"
)

var (
	local4  = []byte{172, 21, 112, 1}
	remote4 = []byte{10, 170, 160, 1}
)

// tcp4 builds an IPv4 TCP packet local→remote (ports 40000→5201) with a
// timestamp option (header 32 bytes) and n bytes of patterned payload,
// its checksum complete.
func tcp4(n int, flags byte, seq uint32) []byte {
	p := make([]byte, 20+32+n)
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	binary.BigEndian.PutUint16(p[4:], 0x1234)
	p[6] = 0x40 // DF
	p[8], p[9] = 64, protoTCP
	copy(p[12:], local4)
	copy(p[16:], remote4)
	binary.BigEndian.PutUint16(p[10:], ^translate.Sum(p[:20], 0))
	th := p[20:]
	binary.BigEndian.PutUint16(th[0:], 40000)
	binary.BigEndian.PutUint16(th[2:], 5201)
	binary.BigEndian.PutUint32(th[4:], seq)
	binary.BigEndian.PutUint32(th[8:], 777)
	th[12] = 8 << 4
	th[13] = flags
	binary.BigEndian.PutUint16(th[14:], 501)
	copy(th[20:], []byte{1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2}) // NOP NOP TS
	for i := range n {
		th[32+i] = byte(i*7 + i>>8)
	}
	binary.BigEndian.PutUint16(th[16:], ^translate.Sum(th, pseudoSum(p, protoTCP, len(th))))
	return p
}

// l4Valid reports whether pkt's TCP/UDP checksum verifies.
func l4Valid(t *testing.T, pkt []byte) bool {
	t.Helper()
	off, proto, end, ok := transport(pkt)
	if !ok {
		t.Fatalf("no transport header in % x", pkt[:min(len(pkt), 48)])
	}
	return translate.Sum(pkt[off:end], pseudoSum(pkt, proto, end-off)) == 0xffff
}

// partial turns pkt's transport checksum into what CHECKSUM_PARTIAL leaves:
// the folded pseudo-header sum.
func partial(pkt []byte) {
	off, proto, end, _ := transport(pkt)
	field := off + 16
	if proto == protoUDP {
		field = off + 6
	}
	binary.BigEndian.PutUint16(pkt[field:], pseudoSum(pkt, proto, end-off))
}

func TestFinishChecksum(t *testing.T) {
	p := tcp4(999, 0x18, 1)
	want := append([]byte(nil), p...)
	partial(p)
	if l4Valid(t, p) {
		t.Fatal("partial checksum verifies")
	}
	if !finishChecksum(p) || !bytes.Equal(p, want) {
		t.Fatalf("finished checksum %#x, want %#x", p[36:38], want[36:38])
	}

	// IPv6 UDP behind a Destination Options header.
	u := make([]byte, 40+8+8+13)
	u[0] = 0x60
	binary.BigEndian.PutUint16(u[4:], uint16(len(u)-40))
	u[6], u[7] = 60, 64
	u[8], u[23] = 0x20, 1
	u[24], u[39] = 0x20, 2
	u[40] = protoUDP // dest opts: next header UDP, length 0 (8 bytes)
	u[42], u[43] = 1, 4
	ud := u[48:]
	binary.BigEndian.PutUint16(ud[0:], 53)
	binary.BigEndian.PutUint16(ud[2:], 4000)
	binary.BigEndian.PutUint16(ud[4:], uint16(len(ud)))
	copy(ud[8:], "hello, world!")
	partial(u)
	if !finishChecksum(u) || !l4Valid(t, u) {
		t.Fatal("IPv6 UDP checksum not finished")
	}

	// A fragment has no transport header to finish.
	f := tcp4(10, 0x10, 1)
	f[6] |= 0x20 // MF
	if finishChecksum(f) {
		t.Fatal("finished the checksum of a fragment")
	}
}

func TestSegmentTCP(t *testing.T) {
	const flags = tcpFlagFIN | tcpFlagPSH | tcpFlagCWR | 0x10
	p := tcp4(2500, flags, 0xfffffc00) // the sequence number wraps
	partial(p)
	buf := make([]byte, 4096)
	var segs [][]byte
	n := segmentTCP(p, 20, len(p), 1000, buf, 64, func(b []byte, off int) {
		segs = append(segs, append([]byte(nil), b[off:]...))
	})
	if n != 3 || len(segs) != 3 {
		t.Fatalf("%d segments, want 3", n)
	}
	var data []byte
	for i, s := range segs {
		wantLen := 1000
		if i == 2 {
			wantLen = 500
		}
		if got := len(s) - 52; got != wantLen || int(binary.BigEndian.Uint16(s[2:])) != len(s) {
			t.Errorf("segment %d: %d payload bytes, total length %d", i, got, binary.BigEndian.Uint16(s[2:]))
		}
		if translate.Sum(s[:20], 0) != 0xffff {
			t.Errorf("segment %d: bad IPv4 header checksum", i)
		}
		if !l4Valid(t, s) {
			t.Errorf("segment %d: bad TCP checksum", i)
		}
		if id := binary.BigEndian.Uint16(s[4:]); id != 0x1234+uint16(i) {
			t.Errorf("segment %d: id %#x", i, id)
		}
		if seq := binary.BigEndian.Uint32(s[24:]); seq != 0xfffffc00+uint32(i*1000) {
			t.Errorf("segment %d: seq %#x", i, seq)
		}
		f := s[33]
		wantF := byte(0x10)
		if i == 0 {
			wantF |= tcpFlagCWR
		}
		if i == 2 {
			wantF |= tcpFlagFIN | tcpFlagPSH
		}
		if f != wantF {
			t.Errorf("segment %d: flags %#x, want %#x", i, f, wantF)
		}
		if !bytes.Equal(s[40:52], p[40:52]) {
			t.Errorf("segment %d: options changed", i)
		}
		data = append(data, s[52:]...)
	}
	if !bytes.Equal(data, p[52:]) {
		t.Fatal("segments do not add up to the payload")
	}
	if segmentTCP(p, 20, len(p), 1000, buf[:500], 64, func([]byte, int) {}) != 0 {
		t.Fatal("cut into a buffer too small")
	}
}

// synAck4 is the IPv4 view of a peer's SYN-ACK remote→local announcing mss.
func synAck4(mss uint16) []byte {
	p := tcp4(0, tcpFlagSYN|0x10, 5)
	copy(p[12:], remote4)
	copy(p[16:], local4)
	th := p[20:]
	binary.BigEndian.PutUint16(th[0:], 5201)
	binary.BigEndian.PutUint16(th[2:], 40000)
	copy(th[20:], []byte{2, 4, byte(mss >> 8), byte(mss), 1, 1, 4, 2, 1, 3, 3, 7})
	return p
}

// fragNeeded4 is an ICMPv4 Fragmentation Needed remote→local about one of
// our segments.
func fragNeeded4(mtu uint16) []byte {
	inner := tcp4(0, 0x10, 9)[:28]
	p := make([]byte, 20+8+len(inner))
	p[0], p[9] = 0x45, 1
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	copy(p[12:], remote4)
	copy(p[16:], local4)
	p[20], p[21] = 3, 4
	binary.BigEndian.PutUint16(p[26:], mtu)
	copy(p[28:], inner)
	return p
}

func TestSegmentSizeLearned(t *testing.T) {
	flows = segmentSizes{}
	p := tcp4(5000, 0x10, 1)
	if got := segmentSize(p, 20, 32, 1500); got != 1220-12 {
		t.Fatalf("unknown connection: %d, want %d (IPv6 minimum MTU)", got, 1220-12)
	}
	learnTCP(synAck4(1440))
	if got := segmentSize(p, 20, 32, 1500); got != 1440-12 {
		t.Fatalf("after the SYN-ACK: %d, want %d", got, 1440-12)
	}
	if got := segmentSize(p, 20, 32, 1400); got != 1400-40-32 {
		t.Fatalf("IPv6 MTU 1400: %d, want %d", got, 1400-40-32)
	}
	learnTCP(fragNeeded4(1300))
	if got := segmentSize(p, 20, 32, 1500); got != 1300-40-12 {
		t.Fatalf("after Fragmentation Needed (1300): %d, want %d", got, 1300-40-12)
	}
	learnTCP(fragNeeded4(1400)) // never raised
	if got := segmentSize(p, 20, 32, 1500); got != 1300-40-12 {
		t.Fatalf("a larger MTU raised the size to %d", got)
	}
	// The other direction of the connection is another entry.
	q := synAck4(0)[:20+32]
	if _, ok := flows.get(flowKey(q[12:16], q[16:20], 5201, 40000)); ok {
		t.Fatal("the reverse direction shares the entry")
	}
}

type capture struct{ pkts [][]byte }

func (c *capture) Add(pkt []byte, _ bool) error {
	c.pkts = append(c.pkts, append([]byte(nil), pkt...))
	return nil
}

func newTranslation(t *testing.T, mtu6 int) *Translation {
	t.Helper()
	eam, err := translate.ParseEAMTable([]string{"10.170.160.1=2001:db8:2::2", "172.21.112.1=2001:db8:1::64"})
	if err != nil {
		t.Fatal(err)
	}
	x, err := translate.New(translate.Config{Mapper: eam, IPv6MTU: mtu6, IPv4MTU: 65535})
	if err != nil {
		t.Fatal(err)
	}
	return &Translation{X: x, Drops: new(drop.Counters)}
}

// packetOf puts pkt in a receive slot with headroom, as Receive does.
func packetOf(pkt []byte, gso, part bool) *Packet {
	buf := make([]byte, 128+len(pkt))
	copy(buf[128:], pkt)
	return &Packet{Buf: buf, Off: 128, GSO: gso, CsumPart: part}
}

func TestTranslationCutsSuperPackets(t *testing.T) {
	flows = segmentSizes{}
	h := newTranslation(t, 1500)
	learnTCP(synAck4(1440))
	p := tcp4(20000, 0x18, 100)
	payload := append([]byte(nil), p[52:]...)
	partial(p)
	var out capture
	if v := h.Handle(packetOf(p, true, true), &out); v != Drop {
		t.Fatalf("verdict %d, want Drop (translated)", v)
	}
	if want := (20000 + 1427) / 1428; len(out.pkts) != want {
		t.Fatalf("%d packets, want %d", len(out.pkts), want)
	}
	var data []byte
	for i, s := range out.pkts {
		if s[0]>>4 != 6 || len(s) > 1500 {
			t.Fatalf("packet %d: version %d, %d bytes", i, s[0]>>4, len(s))
		}
		if !l4Valid(t, s) {
			t.Errorf("packet %d: bad TCP checksum", i)
		}
		data = append(data, s[40+32:]...)
	}
	if !bytes.Equal(data, payload) {
		t.Fatal("translated segments do not add up to the payload")
	}
	if got := h.Stats.Packets4to6.Load(); got != uint64(len(out.pkts)) {
		t.Fatalf("counted %d translations", got)
	}

	// A super-packet that fits goes whole, its checksum finished; a
	// partial checksum on an ordinary packet is finished too.
	out.pkts = nil
	small := tcp4(1000, 0x10, 1)
	partial(small)
	if h.Handle(packetOf(small, true, true), &out); len(out.pkts) != 1 || !l4Valid(t, out.pkts[0]) {
		t.Fatalf("small super-packet: %d packets", len(out.pkts))
	}
	out.pkts = nil
	ack := tcp4(0, 0x10, 1)
	partial(ack)
	if h.Handle(packetOf(ack, false, true), &out); len(out.pkts) != 1 || !l4Valid(t, out.pkts[0]) {
		t.Fatal("partial checksum of an ACK not finished")
	}

	// UDP super-packets cannot be cut: dropped and counted.
	u := tcp4(3000, 0, 1)
	u[9] = protoUDP
	out.pkts = nil
	if v := h.Handle(packetOf(u, true, false), &out); v != Drop || len(out.pkts) != 0 || h.Drops.Get(drop.TooBigAfterXlat) != 1 {
		t.Fatalf("UDP super-packet: verdict %d, %d packets", v, len(out.pkts))
	}
	// With a queue to hand them to, they go there whole, uncounted.
	h.Uncut = RequeueTo(33)
	if v := h.Handle(packetOf(u, true, false), &out); v != 33<<16|3 || len(out.pkts) != 0 || h.Drops.Get(drop.TooBigAfterXlat) != 1 {
		t.Fatalf("UDP super-packet with a udp-gso queue: verdict %#x, %d packets", v, len(out.pkts))
	}
	if !isRequeue(h.Uncut) || isRequeue(Accept) || isRequeue(Drop) || isRequeue(Pending) {
		t.Fatal("isRequeue")
	}
	h.NoOffload = true
	if h.handlesOffloads() {
		t.Fatal("NoOffload handler asks for offloads")
	}
}

func TestTranslationPassesWholeInbound(t *testing.T) {
	h := newTranslation(t, 1500)
	// An IPv6 TCP super-packet remote→local (GRO): one IPv4 packet.
	v4 := tcp4(30000, 0x10, 1)
	var out capture
	h.Handle(packetOf(v4, false, false), &out) // to IPv6, 30000 bytes is too big
	if len(out.pkts) != 1 || out.pkts[0][0]>>4 != 4 {
		t.Fatalf("expected Fragmentation Needed, got %d packets", len(out.pkts))
	}
	h6 := newTranslation(t, 65535)
	out.pkts = nil
	h6.Handle(packetOf(tcp4(30000, 0x10, 1), false, false), &out)
	if len(out.pkts) != 1 || out.pkts[0][0]>>4 != 6 {
		t.Fatalf("no IPv6 packet (%d)", len(out.pkts))
	}
	six := out.pkts[0]
	// Swap addresses: the server answers.
	copy(six[8:24], net6("2001:db8:2::2"))
	copy(six[24:40], net6("2001:db8:1::64"))
	partial(six)
	out.pkts = nil
	if v := h.Handle(packetOf(six, true, true), &out); v != Drop || len(out.pkts) != 1 {
		t.Fatalf("verdict %d, %d packets", v, len(out.pkts))
	}
	if p := out.pkts[0]; p[0]>>4 != 4 || len(p) != 20+32+30000 || !l4Valid(t, p) {
		t.Fatalf("IPv4 packet: version %d, %d bytes, checksum ok %v", p[0]>>4, len(p), l4Valid(t, p))
	}
}

func net6(s string) []byte {
	a := [16]byte{0x20, 0x01, 0x0d, 0xb8}
	switch s {
	case "2001:db8:2::2":
		a[5], a[15] = 2, 2
	case "2001:db8:1::64":
		a[5], a[15] = 1, 0x64
	}
	return a[:]
}

type discard struct{ n int }

func (d *discard) Add(pkt []byte, _ bool) error { d.n++; return nil }

// TestCuttingAllocatesNothing: the data path allocates nothing per packet.
func TestCuttingAllocatesNothing(t *testing.T) {
	flows = segmentSizes{}
	h := newTranslation(t, 1500)
	learnTCP(synAck4(1440))
	p := tcp4(20000, 0x18, 100)
	partial(p)
	pk := packetOf(p, true, true)
	var out discard
	h.Handle(pk, &out) // warm the scratch pool
	n := testing.AllocsPerRun(100, func() { h.Handle(pk, &out) })
	if n != 0 && !raceEnabled { // the race detector makes sync.Pool drop items
		t.Fatalf("%v allocations per super-packet", n)
	}
	if out.n != 102*15 { // AllocsPerRun runs once more to warm up
		t.Fatalf("%d packets emitted, want %d", out.n, 102*15)
	}
}
