package enr

import (
	"encoding/binary"
	"net/netip"

	"github.com/bih-nfq/bih-nfq/internal/drop"
)

// udpPacket is an IPv4 or IPv6 UDP datagram as seen on the queue.
//
//	IPv4 (RFC 791)                      IPv6 (RFC 8200)
//	0 ver/ihl 1 tos 2-3 total length     0-3 ver/tc/flow 4-5 payload length
//	4-5 id 6-7 flags/fragment offset     6 next header 7 hop limit
//	8 ttl 9 protocol 10-11 checksum      8-23 source 24-39 destination
//	12-15 source 16-19 destination
//	UDP (RFC 768): 0-1 src port 2-3 dst port 4-5 length 6-7 checksum
type udpPacket struct {
	v6      bool
	src     netip.AddrPort
	dst     netip.AddrPort
	ipHdr   []byte // the IP header (with IPv4 options) of the original
	payload []byte // UDP payload
}

const (
	ipv4MinHeader = 20
	ipv6Header    = 40
	udpHeader     = 8
	protoUDP      = 17
	defaultTTL    = 64
)

// parseUDP reads an unfragmented IPv4 or IPv6 UDP datagram. IPv6 extension
// headers are not followed: DNS from a local resolver library carries none.
func parseUDP(pkt []byte) (udpPacket, drop.Reason) {
	if len(pkt) < 1 {
		return udpPacket{}, drop.TooShort
	}
	var p udpPacket
	var l4 []byte
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < ipv4MinHeader {
			return p, drop.TooShort
		}
		ihl := int(pkt[0]&0xf) * 4
		if ihl < ipv4MinHeader || ihl > len(pkt) {
			return p, drop.BadHeaderLength
		}
		total := int(binary.BigEndian.Uint16(pkt[2:4]))
		if total < ihl || total > len(pkt) {
			return p, drop.BadTotalLength
		}
		if pkt[9] != protoUDP {
			return p, drop.DNSMalformed
		}
		if binary.BigEndian.Uint16(pkt[6:8])&0x3fff != 0 {
			return p, drop.DNSMalformed // a fragment: the DNS message is incomplete
		}
		p.ipHdr = pkt[:ihl]
		l4 = pkt[ihl:total]
		p.src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(pkt[12:16])), 0)
		p.dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(pkt[16:20])), 0)
	case 6:
		if len(pkt) < ipv6Header {
			return p, drop.TooShort
		}
		plen := int(binary.BigEndian.Uint16(pkt[4:6]))
		if ipv6Header+plen > len(pkt) {
			return p, drop.BadTotalLength
		}
		if pkt[6] != protoUDP {
			return p, drop.DNSMalformed
		}
		p.v6 = true
		p.ipHdr = pkt[:ipv6Header]
		l4 = pkt[ipv6Header : ipv6Header+plen]
		p.src = netip.AddrPortFrom(netip.AddrFrom16([16]byte(pkt[8:24])), 0)
		p.dst = netip.AddrPortFrom(netip.AddrFrom16([16]byte(pkt[24:40])), 0)
	default:
		return p, drop.BadVersion
	}
	if len(l4) < udpHeader {
		return p, drop.TooShort
	}
	ulen := int(binary.BigEndian.Uint16(l4[4:6]))
	if ulen < udpHeader || ulen > len(l4) {
		return p, drop.BadTotalLength
	}
	p.src = netip.AddrPortFrom(p.src.Addr(), binary.BigEndian.Uint16(l4[0:2]))
	p.dst = netip.AddrPortFrom(p.dst.Addr(), binary.BigEndian.Uint16(l4[2:4]))
	p.payload = l4[udpHeader:ulen]
	return p, drop.None
}

// withPayload returns a new datagram with p's IP header (TTL, TOS, options,
// flow label kept) and addresses but payload replaced; lengths and
// checksums are recomputed.
func (p *udpPacket) withPayload(payload []byte) []byte {
	return buildUDP(p.ipHdr, p.v6, p.src, p.dst, payload)
}

// buildUDP assembles a datagram from src to dst. hdr, when not nil, is an IP
// header to copy (its length fields and checksum are rewritten).
func buildUDP(hdr []byte, v6 bool, src, dst netip.AddrPort, payload []byte) []byte {
	hl := ipv4MinHeader
	if v6 {
		hl = ipv6Header
	}
	if hdr != nil {
		hl = len(hdr)
	}
	ulen := udpHeader + len(payload)
	out := make([]byte, hl+ulen)
	if hdr != nil {
		copy(out, hdr)
	} else if v6 {
		out[0] = 6 << 4
		out[6] = protoUDP
		out[7] = defaultTTL
	} else {
		out[0] = 4<<4 | ipv4MinHeader/4
		out[8] = defaultTTL
		out[9] = protoUDP
	}
	if v6 {
		binary.BigEndian.PutUint16(out[4:6], uint16(ulen))
		s, d := src.Addr().As16(), dst.Addr().As16()
		copy(out[8:24], s[:])
		copy(out[24:40], d[:])
	} else {
		binary.BigEndian.PutUint16(out[2:4], uint16(hl+ulen))
		s, d := src.Addr().As4(), dst.Addr().As4()
		copy(out[12:16], s[:])
		copy(out[16:20], d[:])
		out[10], out[11] = 0, 0
		binary.BigEndian.PutUint16(out[10:12], ^fold(sum(0, out[:hl])))
	}
	u := out[hl:]
	binary.BigEndian.PutUint16(u[0:2], src.Port())
	binary.BigEndian.PutUint16(u[2:4], dst.Port())
	binary.BigEndian.PutUint16(u[4:6], uint16(ulen))
	copy(u[udpHeader:], payload)
	binary.BigEndian.PutUint16(u[6:8], udpChecksum(v6, out, u))
	return out
}

// udpChecksum computes the UDP checksum over the pseudo-header (RFC 768,
// RFC 8200 §8.1); zero is sent as all ones.
func udpChecksum(v6 bool, ip, u []byte) uint16 {
	var s uint32
	if v6 {
		s = sum(s, ip[8:40])
	} else {
		s = sum(s, ip[12:20])
	}
	s += protoUDP + uint32(len(u))
	u[6], u[7] = 0, 0
	s = sum(s, u)
	c := ^fold(s)
	if c == 0 {
		c = 0xffff
	}
	return c
}

func sum(s uint32, b []byte) uint32 {
	for len(b) >= 2 {
		s += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	return s
}

func fold(s uint32) uint16 {
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}
