package queue

import (
	"encoding/binary"
	"hash/maphash"
	"sync/atomic"
)

// segmentSizes remembers, per TCP connection seen from its IPv4 side, the
// largest segment (MSS: payload plus options) each end may be sent: what
// the peer announced in its SYN (RFC 9293 §3.7.1), lowered by path MTU
// reports (ICMP Fragmentation Needed, RFC 1191, including those translated
// from Packet Too Big). The kernel does not say how it meant a super-packet
// to be cut, so this is what keeps our segments within what the receiver
// and the path take.
//
// A fixed table of atomic words, shared by every worker (a connection's
// SYN and its data may meet different queues): a slot holds a 48-bit tag
// of the connection and its MSS. Colliding connections evict each other;
// a miss falls back to the smallest size every IPv6 path carries.
type segmentSizes struct {
	slots [1 << 14]atomic.Uint64
}

var (
	flows    segmentSizes
	flowSeed = maphash.MakeSeed()
)

// flowKey hashes one direction of a connection: the addresses and ports of
// the IPv4 packets that carry its data.
func flowKey(src, dst []byte, sport, dport uint16) uint64 {
	var b [12]byte
	copy(b[0:4], src)
	copy(b[4:8], dst)
	binary.BigEndian.PutUint16(b[8:], sport)
	binary.BigEndian.PutUint16(b[10:], dport)
	return maphash.Bytes(flowSeed, b[:])
}

func (t *segmentSizes) slot(k uint64) (*atomic.Uint64, uint64) {
	return &t.slots[k&uint64(len(t.slots)-1)], k &^ 0xffff
}

// get returns the MSS recorded for connection k.
func (t *segmentSizes) get(k uint64) (int, bool) {
	s, tag := t.slot(k)
	v := s.Load()
	if v&^0xffff != tag || v&0xffff == 0 {
		return 0, false
	}
	return int(v & 0xffff), true
}

// set records mss for connection k (a SYN: a new connection starts over).
func (t *segmentSizes) set(k uint64, mss int) {
	s, tag := t.slot(k)
	s.Store(tag | uint64(clampMSS(mss)))
}

// lower lowers the MSS of connection k to mss if it is known and larger.
func (t *segmentSizes) lower(k uint64, mss int) {
	s, tag := t.slot(k)
	mss = clampMSS(mss)
	for {
		v := s.Load()
		if v&^0xffff != tag || int(v&0xffff) <= mss {
			return
		}
		if s.CompareAndSwap(v, tag|uint64(mss)) {
			return
		}
	}
}

// clampMSS keeps an MSS within 64..65535, so that a forged report cannot
// make us cut data into absurdly small segments.
func clampMSS(mss int) int {
	return min(max(mss, 64), 0xffff)
}

// learnTCP records, from an IPv4 packet about to reach the local stack
// (translated 6→4), the peer's MSS option of a SYN and the MTU of an ICMP
// Fragmentation Needed about one of our TCP segments.
func learnTCP(pkt []byte) {
	if len(pkt) < 20 || pkt[0]>>4 != 4 {
		return
	}
	if pkt[9] == 1 { // ICMP
		learnFragNeeded(pkt)
		return
	}
	off, proto, end, ok := transport(pkt)
	if !ok || proto != protoTCP || end-off < 20 {
		return
	}
	th := pkt[off:end]
	if th[13]&tcpFlagSYN == 0 {
		return
	}
	mss, ok := tcpMSSOption(th)
	if !ok {
		mss = 536 // RFC 9293 §3.7.1: no option, the IPv4 default
	}
	// The peer (src) announced what we (dst) may send it.
	flows.set(flowKey(pkt[16:20], pkt[12:16], binary.BigEndian.Uint16(th[2:]), binary.BigEndian.Uint16(th[0:])), int(mss))
}

// learnFragNeeded lowers the MSS of the connection an ICMPv4 Fragmentation
// Needed (type 3 code 4, RFC 1191 §4) is about: its inner packet is one we
// sent, so the connection is (inner source → inner destination).
func learnFragNeeded(pkt []byte) {
	ihl := int(pkt[0]&0x0f) * 4
	if ihl < 20 || len(pkt) < ihl+8+20+4 {
		return
	}
	icmp := pkt[ihl:]
	if icmp[0] != 3 || icmp[1] != 4 {
		return
	}
	mtu := int(binary.BigEndian.Uint16(icmp[6:]))
	inner := icmp[8:]
	iihl := int(inner[0]&0x0f) * 4
	if inner[0]>>4 != 4 || iihl < 20 || inner[9] != protoTCP || len(inner) < iihl+4 || mtu < 68 {
		return
	}
	ports := inner[iihl:]
	flows.lower(flowKey(inner[12:16], inner[16:20], binary.BigEndian.Uint16(ports[0:]), binary.BigEndian.Uint16(ports[2:])), mtu-40)
}

// segmentSize returns the payload size to cut the IPv4 TCP super-packet
// pkt (TCP header at off, thl bytes long) into so that every translated
// segment fits an IPv6 path of mtu6 bytes and the receiver's MSS.
func segmentSize(pkt []byte, off, thl, mtu6 int) int {
	th := pkt[off:]
	mss, ok := flows.get(flowKey(pkt[12:16], pkt[16:20], binary.BigEndian.Uint16(th[0:]), binary.BigEndian.Uint16(th[2:])))
	if !ok {
		// Unknown connection (its SYN predates us, or was evicted): the
		// IPv6 minimum MTU (RFC 8200 §5) is always safe.
		mss = 1280 - 60
	}
	// MSS counts options; the IPv6 header is 40 bytes.
	return min(mss-(thl-20), mtu6-40-thl)
}
