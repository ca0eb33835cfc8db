package translate

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// fakeMapper is a map-based Mapper for tests.
type fakeMapper struct {
	to6 map[[4]byte][16]byte
	to4 map[[16]byte][4]byte
}

func (m *fakeMapper) To6(a [4]byte) ([16]byte, bool) { v, ok := m.to6[a]; return v, ok }
func (m *fakeMapper) To4(a [16]byte) ([4]byte, bool) { v, ok := m.to4[a]; return v, ok }

func (m *fakeMapper) add(a4 [4]byte, a6 [16]byte) {
	m.to6[a4] = a6
	m.to4[a6] = a4
}

// errSourceMapper adds ErrorSourceTo4 to fakeMapper.
type errSourceMapper struct {
	*fakeMapper
	onDemand map[[16]byte][4]byte
	asked    int
}

func (m *errSourceMapper) ErrorSourceTo4(a [16]byte) ([4]byte, bool) {
	m.asked++
	v, ok := m.onDemand[a]
	return v, ok
}

func a4(s string) [4]byte   { return netip.MustParseAddr(s).As4() }
func a16(s string) [16]byte { return netip.MustParseAddr(s).As16() }

var (
	app4 = a4("172.21.112.1") // the IPv4-only application
	app6 = a16("2001:db8:aaaa::1")
	srv4 = a4("10.170.160.5") // pool address of the IPv6-only server
	srv6 = a16("2001:db8:bbbb::5")
	rtr4 = a4("198.51.100.1") // a router with a mapping
	rtr6 = a16("2001:db8:cccc::1")
	unm4 = a4("203.0.113.9") // no mapping
	unm6 = a16("2001:db8:dddd::9")

	icmpSrc4 = a4("192.0.0.8")
	icmpSrc6 = a16("2001:db8:ffff::8")
)

func newMapper() *fakeMapper {
	m := &fakeMapper{to6: map[[4]byte][16]byte{}, to4: map[[16]byte][4]byte{}}
	m.add(app4, app6)
	m.add(srv4, srv6)
	m.add(rtr4, rtr6)
	return m
}

func newTranslator(tb testing.TB, mod func(*Config)) *Translator {
	tb.Helper()
	cfg := Config{Mapper: newMapper()}
	if mod != nil {
		mod(&cfg)
	}
	tr, err := New(cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return tr
}

// serialize builds a packet with gopacket (lengths and checksums computed by
// gopacket, independently of the code under test) and returns it after
// Headroom bytes of headroom: buf, off.
func serialize(tb testing.TB, ls ...gopacket.SerializableLayer) ([]byte, int) {
	tb.Helper()
	sb := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(sb, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		tb.Fatalf("serialize: %v", err)
	}
	buf := make([]byte, Headroom+len(sb.Bytes()))
	copy(buf[Headroom:], sb.Bytes())
	return buf, Headroom
}

func ip4Layer(src, dst [4]byte, proto layers.IPProtocol) *layers.IPv4 {
	return &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: proto, Flags: layers.IPv4DontFragment,
		SrcIP: net.IP(src[:]), DstIP: net.IP(dst[:]), Id: 0x1234, TOS: 0xb8}
}

func ip6Layer(src, dst [16]byte, nh layers.IPProtocol) *layers.IPv6 {
	return &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: nh, TrafficClass: 0xb8,
		SrcIP: net.IP(src[:]), DstIP: net.IP(dst[:])}
}

func payloadOf(n int) gopacket.Payload {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*7 + 3)
	}
	return p
}

// tcp4 returns an IPv4 TCP packet with n payload bytes.
func tcp4(tb testing.TB, src, dst [4]byte, n int) ([]byte, int) {
	ip := ip4Layer(src, dst, layers.IPProtocolTCP)
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 443, Seq: 1, Ack: 2, ACK: true, PSH: true, Window: 500}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		tb.Fatal(err)
	}
	return serialize(tb, ip, tcp, payloadOf(n))
}

func udp4(tb testing.TB, src, dst [4]byte, n int) ([]byte, int) {
	ip := ip4Layer(src, dst, layers.IPProtocolUDP)
	udp := &layers.UDP{SrcPort: 40000, DstPort: 9999}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		tb.Fatal(err)
	}
	return serialize(tb, ip, udp, payloadOf(n))
}

func echo4(tb testing.TB, src, dst [4]byte, n int) ([]byte, int) {
	ip := ip4Layer(src, dst, layers.IPProtocolICMPv4)
	ic := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0), Id: 77, Seq: 5}
	return serialize(tb, ip, ic, payloadOf(n))
}

func tcp6(tb testing.TB, src, dst [16]byte, n int) ([]byte, int) {
	ip := ip6Layer(src, dst, layers.IPProtocolTCP)
	tcp := &layers.TCP{SrcPort: 443, DstPort: 40000, Seq: 1, Ack: 2, ACK: true, Window: 500}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		tb.Fatal(err)
	}
	return serialize(tb, ip, tcp, payloadOf(n))
}

func udp6(tb testing.TB, src, dst [16]byte, n int) ([]byte, int) {
	ip := ip6Layer(src, dst, layers.IPProtocolUDP)
	udp := &layers.UDP{SrcPort: 9999, DstPort: 40000}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		tb.Fatal(err)
	}
	return serialize(tb, ip, udp, payloadOf(n))
}

func echo6(tb testing.TB, src, dst [16]byte, typ uint8, n int) ([]byte, int) {
	ip := ip6Layer(src, dst, layers.IPProtocolICMPv6)
	ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, 0)}
	if err := ic.SetNetworkLayerForChecksum(ip); err != nil {
		tb.Fatal(err)
	}
	body := append([]byte{0, 77, 0, 5}, payloadOf(n)...)
	return serialize(tb, ip, ic, gopacket.Payload(body))
}

// refSum is a straightforward RFC 1071 sum, 16 bits at a time, kept apart
// from the optimised code under test.
func refSum(bs ...[]byte) uint16 {
	var s uint32
	for _, b := range bs {
		for i := 0; i+1 < len(b); i += 2 {
			s += uint32(b[i])<<8 | uint32(b[i+1])
		}
		if len(b)%2 == 1 {
			s += uint32(b[len(b)-1]) << 8
		}
	}
	for s>>16 != 0 {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

func refPseudo4(src, dst []byte, proto uint8, n int) []byte {
	b := make([]byte, 12)
	copy(b, src)
	copy(b[4:], dst)
	b[9] = proto
	binary.BigEndian.PutUint16(b[10:], uint16(n))
	return b
}

func refPseudo6(src, dst []byte, nh uint8, n int) []byte {
	b := make([]byte, 40)
	copy(b, src)
	copy(b[16:], dst)
	binary.BigEndian.PutUint32(b[32:], uint32(n))
	b[39] = nh
	return b
}

// upper6 returns the offset and protocol of the upper layer of a
// translated IPv6 packet (only a Fragment header can precede it), and
// whether it is a fragment.
func upper6(p []byte) (int, uint8, bool) {
	if p[6] == 44 {
		return 48, p[40], true
	}
	return 40, p[6], false
}

// refL4Valid6 reports whether the transport checksum of the unfragmented
// IPv6 packet p verifies (TCP, UDP, ICMPv6); ok is false for others.
func refL4Valid6(p []byte) (valid, ok bool) {
	off, nh, frag := upper6(p)
	if frag && (p[42]&0xf8 != 0 || p[43]&0xf8 != 0 || p[43]&1 != 0) {
		return false, false
	}
	switch nh {
	case 6, 17, 58:
	default:
		return false, false
	}
	up := p[off:]
	return refSum(refPseudo6(p[8:24], p[24:40], nh, len(up)), up) == 0xffff, true
}

// refL4Valid4 is the IPv4 counterpart (ICMPv4 has no pseudo-header).
func refL4Valid4(p []byte) (valid, ok bool) {
	hl := int(p[0]&0xf) * 4
	if binary.BigEndian.Uint16(p[6:])&0x3fff != 0 {
		return false, false
	}
	up := p[hl:]
	switch p[9] {
	case 6:
		return refSum(refPseudo4(p[12:16], p[16:20], 6, len(up)), up) == 0xffff, true
	case 17:
		if len(up) >= 8 && binary.BigEndian.Uint16(up[6:]) == 0 {
			return false, false
		}
		return refSum(refPseudo4(p[12:16], p[16:20], 17, len(up)), up) == 0xffff, true
	case 1:
		return refSum(up) == 0xffff, true
	}
	return false, false
}

func decode6(tb testing.TB, p []byte) gopacket.Packet {
	tb.Helper()
	pk := gopacket.NewPacket(p, layers.LayerTypeIPv6, gopacket.Default)
	if el := pk.ErrorLayer(); el != nil {
		tb.Fatalf("output does not decode: %v", el.Error())
	}
	return pk
}

func decode4(tb testing.TB, p []byte) gopacket.Packet {
	tb.Helper()
	pk := gopacket.NewPacket(p, layers.LayerTypeIPv4, gopacket.Default)
	if el := pk.ErrorLayer(); el != nil {
		tb.Fatalf("output does not decode: %v", el.Error())
	}
	return pk
}

// fix4 recomputes the IPv4 header checksum of p after a test edited it.
func fix4(p []byte) {
	hl := int(p[0]&0xf) * 4
	p[10], p[11] = 0, 0
	binary.BigEndian.PutUint16(p[10:], ^refSum(p[:hl]))
}

// fixICMP4 recomputes the ICMPv4 checksum of the IPv4 packet p.
func fixICMP4(p []byte) {
	hl := int(p[0]&0xf) * 4
	m := p[hl:]
	m[2], m[3] = 0, 0
	binary.BigEndian.PutUint16(m[2:], ^refSum(m))
}

func mustOne(tb testing.TB, r Result, want Action) []byte {
	tb.Helper()
	if r.Action != want {
		tb.Fatalf("action = %v (reason %v), want %v", r.Action, r.Reason, want)
	}
	if len(r.Packets) != 1 {
		tb.Fatalf("%d packets, want 1", len(r.Packets))
	}
	return r.Packets[0]
}
