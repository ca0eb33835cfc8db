package queue

import (
	"encoding/binary"

	"github.com/bih-nfq/bih-nfq/translate"
)

// Offloads. With the queue's GSO flag (NFQA_CFG_F_GSO) the kernel hands
// TCP super-packets over whole, up to 64 KiB, instead of cutting them into
// segments first, and leaves the transport checksum of packets it has not
// finished (CHECKSUM_PARTIAL, NFQA_SKB_CSUMNOTREADY) as it is: the checksum
// field then holds only the pseudo-header sum. A raw socket sends exactly
// what it is given, so both are finished here.

const (
	protoTCP = 6
	protoUDP = 17

	tcpFlagFIN = 0x01
	tcpFlagSYN = 0x02
	tcpFlagPSH = 0x08
	tcpFlagCWR = 0x80
)

// transport locates the TCP or UDP header of an IPv4 or IPv6 packet: its
// offset, protocol and the end of the packet. IPv6 extension headers
// (Hop-by-Hop, Routing, Destination Options) are skipped; fragments and
// anything else give ok false.
func transport(pkt []byte) (off int, proto uint8, end int, ok bool) {
	if len(pkt) < 20 {
		return 0, 0, 0, false
	}
	switch pkt[0] >> 4 {
	case 4:
		ihl := int(pkt[0]&0x0f) * 4
		tl := int(binary.BigEndian.Uint16(pkt[2:]))
		if ihl < 20 || tl < ihl || tl > len(pkt) {
			return 0, 0, 0, false
		}
		if binary.BigEndian.Uint16(pkt[6:])&0x3fff != 0 { // MF or offset
			return 0, 0, 0, false
		}
		return ihl, pkt[9], tl, true
	case 6:
		if len(pkt) < 40 {
			return 0, 0, 0, false
		}
		end := 40 + int(binary.BigEndian.Uint16(pkt[4:]))
		if end > len(pkt) {
			return 0, 0, 0, false
		}
		nh, off := pkt[6], 40
		for {
			switch nh {
			case protoTCP, protoUDP:
				return off, nh, end, true
			case 0, 43, 60: // Hop-by-Hop, Routing, Destination Options
				if off+8 > end {
					return 0, 0, 0, false
				}
				nh, off = pkt[off], off+(int(pkt[off+1])+1)*8
			default:
				return 0, 0, 0, false
			}
		}
	}
	return 0, 0, 0, false
}

// finishChecksum completes the TCP or UDP checksum of a packet whose
// checksum field holds only the pseudo-header sum (CHECKSUM_PARTIAL): the
// field becomes the complement of the sum over the whole segment, field
// included (RFC 1071). It reports false for packets it cannot place.
func finishChecksum(pkt []byte) bool {
	off, proto, end, ok := transport(pkt)
	if !ok {
		return false
	}
	l4 := pkt[off:end]
	var field int
	switch proto {
	case protoTCP:
		if len(l4) < 20 {
			return false
		}
		field = 16
	case protoUDP:
		if len(l4) < 8 {
			return false
		}
		field = 6
	}
	c := ^translate.Sum(l4, 0)
	if proto == protoUDP && c == 0 {
		c = 0xffff // RFC 768: zero means "no checksum"
	}
	binary.BigEndian.PutUint16(l4[field:], c)
	return true
}

// pseudoSum is the sum of the TCP/UDP pseudo-header of pkt for a transport
// segment of length n (RFC 9293 §3.1, RFC 8200 §8.1).
func pseudoSum(pkt []byte, proto uint8, n int) uint16 {
	var b [40]byte
	var l int
	if pkt[0]>>4 == 4 {
		copy(b[:8], pkt[12:20])
		l = 8
	} else {
		copy(b[:32], pkt[8:40])
		l = 32
	}
	binary.BigEndian.PutUint16(b[l:], uint16(n>>16))
	binary.BigEndian.PutUint16(b[l+2:], uint16(n))
	b[l+5] = proto
	return translate.Sum(b[:l+6], 0)
}

// segmentTCP cuts the TCP super-packet pkt (IPv4 or IPv6, its transport
// header at off, the packet ending at end, checksum finished or not) into
// segments carrying at most mss bytes of payload each, the way the kernel's
// own segmentation does (tcp_gso_segment): headers copied, sequence numbers
// advanced, FIN and PSH only on the last segment, CWR only on the first,
// IPv4 IDs counting up, every checksum computed in full. Each segment is
// built in buf after headroom bytes and handed to emit, which must be done
// with it before returning. It returns the number of segments, 0 if pkt
// cannot be cut (buf too small, mss too small, no payload).
func segmentTCP(pkt []byte, off, end, mss int, buf []byte, headroom int, emit func(buf []byte, off int)) int {
	if off+20 > end {
		return 0
	}
	thl := int(pkt[off+12]>>4) * 4
	if thl < 20 || off+thl > end || mss <= 0 {
		return 0
	}
	hdr := off + thl
	data := pkt[hdr:end]
	if len(data) == 0 || headroom+hdr+min(mss, len(data)) > len(buf) {
		return 0
	}
	v4 := pkt[0]>>4 == 4
	seq := binary.BigEndian.Uint32(pkt[off+4:])
	flags := pkt[off+13]
	var id uint16
	if v4 {
		id = binary.BigEndian.Uint16(pkt[4:])
	}
	n := 0
	for start := 0; start < len(data); start += mss {
		chunk := data[start:min(start+mss, len(data))]
		last := start+len(chunk) == len(data)
		b := buf[headroom : headroom+hdr+len(chunk)]
		copy(b, pkt[:hdr])
		copy(b[hdr:], chunk)
		if v4 {
			binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
			binary.BigEndian.PutUint16(b[4:], id+uint16(n))
			binary.BigEndian.PutUint16(b[10:], 0)
			binary.BigEndian.PutUint16(b[10:], ^translate.Sum(b[:off], 0))
		} else {
			binary.BigEndian.PutUint16(b[4:], uint16(len(b)-40))
		}
		th := b[off:]
		binary.BigEndian.PutUint32(th[4:], seq+uint32(start))
		f := flags
		if !last {
			f &^= tcpFlagFIN | tcpFlagPSH
		}
		if n > 0 {
			f &^= tcpFlagCWR
		}
		th[13] = f
		th[16], th[17] = 0, 0
		binary.BigEndian.PutUint16(th[16:], ^translate.Sum(th, pseudoSum(b, protoTCP, len(th))))
		emit(buf[:headroom+len(b)], headroom)
		n++
	}
	return n
}

// tcpMSSOption returns the MSS option of a TCP header (RFC 9293 §3.2).
func tcpMSSOption(th []byte) (uint16, bool) {
	thl := int(th[12]>>4) * 4
	if thl < 20 || thl > len(th) {
		return 0, false
	}
	for o := th[20:thl]; len(o) > 0; {
		switch o[0] {
		case 0:
			return 0, false
		case 1:
			o = o[1:]
			continue
		}
		if len(o) < 2 || o[1] < 2 || int(o[1]) > len(o) {
			return 0, false
		}
		if o[0] == 2 && o[1] == 4 {
			return binary.BigEndian.Uint16(o[2:]), true
		}
		o = o[o[1]:]
	}
	return 0, false
}
