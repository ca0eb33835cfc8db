package translate

import "encoding/binary"

// Header views: typed byte slices with accessors, in the style of gVisor's
// pkg/tcpip/header. A view is checked once (by the caller, against the
// minimum length below) and the accessors then trust the bounds.

// ipv4 is an IPv4 header (RFC 791 §3.1).
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version|  IHL  |Type of Service|          Total Length         |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|         Identification        |Flags|      Fragment Offset    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Time to Live |    Protocol   |         Header Checksum       |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                       Source Address                          |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Destination Address                        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Options                    |    Padding    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
type ipv4 []byte

const (
	v4VersionIHL   = 0
	v4TOS          = 1
	v4TotalLength  = 2
	v4ID           = 4
	v4FlagsFragOff = 6
	v4TTL          = 8
	v4Protocol     = 9
	v4Checksum     = 10
	v4Src          = 12
	v4Dst          = 16

	ipv4MinHeaderLen = 20
	ipv4MaxTotalLen  = 0xffff

	v4FlagDF      = 0x4000
	v4FlagMF      = 0x2000
	v4FragOffMask = 0x1fff
)

func (h ipv4) version() uint8    { return h[v4VersionIHL] >> 4 }
func (h ipv4) headerLen() int    { return int(h[v4VersionIHL]&0x0f) * 4 }
func (h ipv4) tos() uint8        { return h[v4TOS] }
func (h ipv4) totalLen() int     { return int(binary.BigEndian.Uint16(h[v4TotalLength:])) }
func (h ipv4) id() uint16        { return binary.BigEndian.Uint16(h[v4ID:]) }
func (h ipv4) flagsFrag() uint16 { return binary.BigEndian.Uint16(h[v4FlagsFragOff:]) }
func (h ipv4) df() bool          { return h.flagsFrag()&v4FlagDF != 0 }
func (h ipv4) mf() bool          { return h.flagsFrag()&v4FlagMF != 0 }

// fragOffset returns the fragment offset in bytes.
func (h ipv4) fragOffset() int { return int(h.flagsFrag()&v4FragOffMask) * 8 }
func (h ipv4) ttl() uint8      { return h[v4TTL] }
func (h ipv4) protocol() uint8 { return h[v4Protocol] }
func (h ipv4) src() [4]byte    { return [4]byte(h[v4Src : v4Src+4]) }
func (h ipv4) dst() [4]byte    { return [4]byte(h[v4Dst : v4Dst+4]) }

// ipv4Fields are the values written by writeIPv4; a 20-byte header without
// options (RFC 7915 §5.1: IHL 5).
type ipv4Fields struct {
	tos      uint8
	totalLen int
	id       uint16
	df, mf   bool
	fragOff  int // bytes, multiple of 8
	ttl      uint8
	protocol uint8
	src, dst [4]byte
}

// writeIPv4 writes a 20-byte IPv4 header with its checksum into b.
func writeIPv4(b []byte, f *ipv4Fields) {
	_ = b[ipv4MinHeaderLen-1]
	b[v4VersionIHL] = 0x45
	b[v4TOS] = f.tos
	binary.BigEndian.PutUint16(b[v4TotalLength:], uint16(f.totalLen))
	binary.BigEndian.PutUint16(b[v4ID:], f.id)
	ff := uint16(f.fragOff/8) & v4FragOffMask
	if f.df {
		ff |= v4FlagDF
	}
	if f.mf {
		ff |= v4FlagMF
	}
	binary.BigEndian.PutUint16(b[v4FlagsFragOff:], ff)
	b[v4TTL] = f.ttl
	b[v4Protocol] = f.protocol
	b[v4Checksum], b[v4Checksum+1] = 0, 0
	copy(b[v4Src:], f.src[:])
	copy(b[v4Dst:], f.dst[:])
	binary.BigEndian.PutUint16(b[v4Checksum:], checksumOf(b[:ipv4MinHeaderLen], 0))
}

// ipv6 is an IPv6 header (RFC 8200 §3).
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version| Traffic Class |           Flow Label                  |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|         Payload Length        |  Next Header  |   Hop Limit   |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                                                               |
//	+                         Source Address                        +
//	|                          (16 octets)                          |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                                                               |
//	+                      Destination Address                      +
//	|                          (16 octets)                          |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
type ipv6 []byte

const (
	v6VersionTCFlow = 0
	v6PayloadLength = 4
	v6NextHeader    = 6
	v6HopLimit      = 7
	v6Src           = 8
	v6Dst           = 24

	ipv6HeaderLen = 40
)

func (h ipv6) version() uint8      { return h[v6VersionTCFlow] >> 4 }
func (h ipv6) trafficClass() uint8 { return h[0]<<4 | h[1]>>4 }
func (h ipv6) payloadLen() int     { return int(binary.BigEndian.Uint16(h[v6PayloadLength:])) }
func (h ipv6) nextHeader() uint8   { return h[v6NextHeader] }
func (h ipv6) hopLimit() uint8     { return h[v6HopLimit] }
func (h ipv6) src() (a [16]byte)   { return [16]byte(h[v6Src : v6Src+16]) }
func (h ipv6) dst() (a [16]byte)   { return [16]byte(h[v6Dst : v6Dst+16]) }

// writeIPv6 writes a 40-byte IPv6 header into b: flow label 0 (RFC 7915
// §4.1 "Flow Label").
func writeIPv6(b []byte, tc uint8, payloadLen int, nh, hop uint8, src, dst *[16]byte) {
	_ = b[ipv6HeaderLen-1]
	b[0] = 0x60 | tc>>4
	b[1] = tc << 4
	b[2], b[3] = 0, 0
	binary.BigEndian.PutUint16(b[v6PayloadLength:], uint16(payloadLen))
	b[v6NextHeader] = nh
	b[v6HopLimit] = hop
	copy(b[v6Src:], src[:])
	copy(b[v6Dst:], dst[:])
}

// ipv6Fragment is the IPv6 Fragment header (RFC 8200 §4.5).
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Next Header  |   Reserved    |      Fragment Offset    |Res|M|
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                         Identification                        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
type ipv6Fragment []byte

const (
	fragNextHeader = 0
	fragOffsetM    = 2
	fragID         = 4

	fragHeaderLen = 8
)

func (f ipv6Fragment) nextHeader() uint8 { return f[fragNextHeader] }

// offset returns the fragment offset in bytes.
func (f ipv6Fragment) offset() int { return int(binary.BigEndian.Uint16(f[fragOffsetM:]) &^ 7) }
func (f ipv6Fragment) more() bool  { return f[fragOffsetM+1]&1 != 0 }
func (f ipv6Fragment) id() uint32  { return binary.BigEndian.Uint32(f[fragID:]) }

// writeFragment writes a Fragment header into b (RFC 7915 §4.1: the
// identification's high 16 bits are zero).
func writeFragment(b []byte, nh uint8, offset int, more bool, id uint16) {
	_ = b[fragHeaderLen-1]
	b[fragNextHeader] = nh
	b[1] = 0
	om := uint16(offset) &^ 7
	if more {
		om |= 1
	}
	binary.BigEndian.PutUint16(b[fragOffsetM:], om)
	binary.BigEndian.PutUint32(b[fragID:], uint32(id))
}

// icmp is an ICMPv4 (RFC 792) or ICMPv6 (RFC 4443) header. The second word
// depends on the type: identifier/sequence for echo, the MTU, a pointer, or
// the RFC 4884 length attribute (byte 5 in ICMPv4, byte 4 in ICMPv6).
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|     Type      |     Code      |          Checksum             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                  type-specific (pointer, MTU, length)         |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
type icmp []byte

const (
	icmpType     = 0
	icmpCode     = 1
	icmpChecksum = 2
	icmpRest     = 4 // ICMPv4 pointer, ICMPv6 length attribute / MTU / pointer
	icmp4Length  = 5 // ICMPv4 RFC 4884 length attribute (32-bit words)
	icmp4MTU     = 6 // ICMPv4 next-hop MTU (RFC 1191)

	icmpHeaderLen = 8
)

func (m icmp) typ() uint8           { return m[icmpType] }
func (m icmp) code() uint8          { return m[icmpCode] }
func (m icmp) checksum() uint16     { return binary.BigEndian.Uint16(m[icmpChecksum:]) }
func (m icmp) setChecksum(c uint16) { binary.BigEndian.PutUint16(m[icmpChecksum:], c) }

// typeCode returns type and code as the first 16-bit word of the message,
// the part of the checksummed data that echo translation changes.
func (m icmp) typeCode() uint16 { return binary.BigEndian.Uint16(m[icmpType:]) }

// Transport checksum offsets (RFC 793 §3.1, RFC 768) and the bytes of
// header that must be present to reach them.
const (
	tcpChecksum  = 16
	tcpMinLen    = 20
	udpLength    = 4
	udpChecksum  = 6
	udpHeaderLen = 8
)

// IP protocol / next header numbers (IANA).
const (
	protoHopByHop = 0
	protoICMPv4   = 1
	protoIGMP     = 2
	protoTCP      = 6
	protoUDP      = 17
	protoRouting  = 43
	protoFragment = 44
	protoESP      = 50
	protoAH       = 51
	protoICMPv6   = 58
	protoDestOpts = 60
	protoMobility = 135
	protoHIP      = 139
	protoShim6    = 140
)

// isIPv6ExtensionHeader reports whether nh is an IPv6 extension header other
// than ESP (RFC 7915 §5.1.1 "except ESP, but including AH"; RFC 8200 §4,
// IANA "IPv6 Extension Header Types").
func isIPv6ExtensionHeader(nh uint8) bool {
	switch nh {
	case protoHopByHop, protoRouting, protoFragment, protoAH, protoDestOpts,
		protoMobility, protoHIP, protoShim6, 253, 254:
		return true
	}
	return false
}

func be16(b []byte) uint16     { return binary.BigEndian.Uint16(b) }
func put16(b []byte, v uint16) { binary.BigEndian.PutUint16(b, v) }
func put32(b []byte, v uint32) { binary.BigEndian.PutUint32(b, v) }
func be32(b []byte) uint32     { return binary.BigEndian.Uint32(b) }
