package queue

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"testing"
	"time"
)

// udp6 builds an IPv6 UDP datagram with payload bytes, from port sport,
// hop limit 64.
func udp6(payload int, sport uint16) []byte {
	p := make([]byte, 48+payload)
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:], uint16(8+payload))
	p[6], p[7] = protoUDP, 64
	p[8], p[23] = 0x20, 1
	p[24], p[39] = 0x20, 2
	binary.BigEndian.PutUint16(p[40:], sport)
	binary.BigEndian.PutUint16(p[42:], 9)
	binary.BigEndian.PutUint16(p[44:], uint16(8+payload))
	return p
}

func TestTrainLen(t *testing.T) {
	same := func(n, size int) [][]byte {
		var ps [][]byte
		for range n {
			ps = append(ps, udp6(size, 1000))
		}
		return ps
	}
	hop := udp6(64, 1000)
	hop[7] = 63
	label := udp6(64, 1000)
	label[3] = 1
	frag := udp6(64, 1000)
	frag[6] = 44
	badLen := udp6(64, 1000)
	badLen[45]++
	cases := []struct {
		name string
		pkts [][]byte
		want int
	}{
		{"one flow, one size", same(5, 64), 5},
		{"last shorter", append(same(3, 64), udp6(10, 1000)), 4},
		{"a shorter one ends it", append(same(3, 64), udp6(10, 1000), udp6(10, 1000)), 4},
		{"a longer one is not in it", append(same(3, 64), udp6(65, 1000)), 3},
		{"another port", append(same(2, 64), udp6(64, 1001)), 2},
		{"another hop limit", append(same(2, 64), hop), 2},
		{"another flow label", append(same(2, 64), label), 2},
		{"a fragment starts none", append([][]byte{frag}, same(3, 64)...), 1},
		{"lengths that disagree", append(same(2, 64), badLen), 2},
		{"no payload", same(3, 0), 1},
		{"at most trainMax", same(trainMax+5, 8), trainMax},
		{"at most 64 KiB", same(60, 1400), 46},
	}
	for _, c := range cases {
		if got := trainLen(c.pkts); got != c.want {
			t.Errorf("%s: trainLen = %d, want %d", c.name, got, c.want)
		}
	}
}

// TestEmitTrainRefused: a TUN link that refuses a train (here a descriptor
// not open for writing) stops trains for good, and the run still goes out,
// datagram by datagram through the raw socket, in order after what came
// before it.
func TestEmitTrainRefused(t *testing.T) {
	notTUN, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer notTUN.Close()
	em, rx := loopbackEmitter(t, notTUN, 9997)
	// One datagram of another flow first: it must leave before the run.
	const n = 5
	for i := range n {
		p := udp6(6, 4000)
		if i == 0 {
			binary.BigEndian.PutUint16(p[40:], 4001)
		}
		copy(p[8:24], net.IPv6loopback)
		copy(p[24:40], net.IPv6loopback)
		binary.BigEndian.PutUint16(p[42:], 9997)
		copy(p[48:], fmt.Sprintf("dgram%d", i))
		binary.BigEndian.PutUint16(p[46:], csum(p[40:], udp6Pseudo(p)))
		if err := em.Add(p, false); err != nil {
			t.Fatal(err)
		}
	}
	if failed := em.Flush(); failed != 0 {
		t.Fatalf("%d sends refused: %v", failed, em.LastErr)
	}
	if sent, failed, trains := em.take(); sent != n || failed != 0 || trains != 0 {
		t.Errorf("sent %d, failed %d, trains %d; want %d, 0, 0", sent, failed, trains, n)
	}
	if !em.noTrains || em.LastErr == nil {
		t.Errorf("trains still on after a refused one (last error %v)", em.LastErr)
	}
	rx.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 100)
	for i := range n {
		k, _, err := rx.ReadFromUDP(buf)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("dgram%d", i); string(buf[:k]) != want {
			t.Fatalf("datagram %d is %q, want %q", i, buf[:k], want)
		}
	}
}

// TestWriteTrain reads back what writeTrain writes into the TUN link (here
// a pipe): the virtio-net header asking for UDP segments of the first
// datagram's payload size, one IPv6 header with the hop limit raised for
// the forward path's decrement, the lengths of the whole, the pseudo-header
// sum in the checksum field, and the payloads in order.
func TestWriteTrain(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	e := &Emitter{tun: int(w.Fd())}
	pkts := [][]byte{udp6(100, 1000), udp6(100, 1000), udp6(30, 1000)}
	for i, p := range pkts {
		for j := range p[48:] {
			p[48+j] = byte(i)
		}
	}
	if err := e.writeTrain(pkts); err != nil {
		t.Fatal(err)
	}
	if e.sent != 3 || e.trains != 1 {
		t.Errorf("sent %d, trains %d; want 3, 1", e.sent, e.trains)
	}
	got := make([]byte, 4096)
	n, err := r.Read(got)
	if err != nil {
		t.Fatal(err)
	}
	got = got[:n]
	const total = 8 + 100 + 100 + 30
	if n != virtioNetHdrLen+40+total {
		t.Fatalf("wrote %d bytes, want %d", n, virtioNetHdrLen+40+total)
	}
	h, pkt := got[:virtioNetHdrLen], got[virtioNetHdrLen:]
	ne := binary.NativeEndian
	if h[0] != virtioNetHdrNeedsCsum || h[1] != virtioNetHdrGSOUDPL4 || ne.Uint16(h[2:]) != 48 ||
		ne.Uint16(h[4:]) != 100 || ne.Uint16(h[6:]) != 40 || ne.Uint16(h[8:]) != 6 {
		t.Errorf("virtio-net header % x", h)
	}
	if pkt[7] != 65 {
		t.Errorf("hop limit %d, want 65 (64 plus the forward path's decrement)", pkt[7])
	}
	if binary.BigEndian.Uint16(pkt[4:]) != total || binary.BigEndian.Uint16(pkt[44:]) != total {
		t.Errorf("payload length %d, UDP length %d; want %d", binary.BigEndian.Uint16(pkt[4:]), binary.BigEndian.Uint16(pkt[44:]), total)
	}
	if want := ^csum(nil, udp6Pseudo(pkt)); binary.BigEndian.Uint16(pkt[46:]) != want {
		t.Errorf("checksum field %#04x, want the pseudo-header sum %#04x", binary.BigEndian.Uint16(pkt[46:]), want)
	}
	for i, off := range []int{48, 148, 248} {
		if pkt[off] != byte(i) {
			t.Errorf("payload %d out of place", i)
		}
	}
	top := func() []byte { p := udp6(8, 1); p[7] = 255; return p }
	if trainLen([][]byte{top(), top()}) != 1 {
		t.Error("a train with hop limit 255, which the forward path's decrement cannot be made up for")
	}
}
