package tests

import (
	"bytes"
	"encoding/binary"
	"flag"
	"net"
	"os"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// The sample capture `make demo` replays (scripts/demo-replay.sh).
const demoSamplePath = "../testdata/demo/sample.pcap"

var updateDemoSample = flag.Bool("update-demo-sample", false, "rewrite "+demoSamplePath+" from demoSample")

// TestDemoSampleUpToDate keeps the committed sample equal to what
// demoSample generates; run with -update-demo-sample after changing it.
func TestDemoSampleUpToDate(t *testing.T) {
	want := demoSample(t)
	if *updateDemoSample {
		if err := os.WriteFile(demoSamplePath, want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(demoSamplePath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is stale: go test ./tests -run TestDemoSampleUpToDate -update-demo-sample", demoSamplePath)
	}
}

// Addresses of the demo (RFC 6535 §4.4 defaults and documentation space):
// the application's IPv4 source, the pool address the ENR would hand out for
// the server, and their IPv6 counterparts given to replay with --map.
var (
	appV4    = net.IP{172, 21, 112, 1}
	poolV4   = net.IP{10, 170, 160, 1}
	unmapped = net.IP{10, 170, 160, 2} // no --map for it: dropped
	appV6    = net.ParseIP("2001:db8:b1a5::1")
	serverV6 = net.ParseIP("2001:db8:ca5a::80")
)

// Linux cooked v2 (what `tcpdump -i any` writes) header fields.
const (
	ifBih0      = 5      // the TUN device carrying the pool route
	ifEth0      = 2      // the IPv6-only uplink
	arphrdNone  = 0xfffe // TUN
	arphrdEther = 1
	pktHost     = 0 // addressed to us
	pktOutgoing = 4 // sent by us
)

func sll2(proto uint16, ifindex uint32, hatype uint16, pktType uint8, mac []byte) []byte {
	h := binary.BigEndian.AppendUint16(nil, proto)
	h = append(h, 0, 0)
	h = binary.BigEndian.AppendUint32(h, ifindex)
	h = binary.BigEndian.AppendUint16(h, hatype)
	h = append(h, pktType, byte(len(mac)))
	var addr [8]byte
	copy(addr[:], mac)
	return append(h, addr[:]...)
}

// demoSample builds the capture: an IPv4-only application on this host
// talks TCP, UDP and ping to a pool address (outgoing on bih0), the IPv6-only
// server answers (incoming on eth0), plus three frames the daemon would not
// translate: a packet to an unmapped pool address, IPv6 Neighbor
// Discovery and LLDP.
func demoSample(t testing.TB) []byte {
	t.Helper()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	ser := func(ls ...gopacket.SerializableLayer) []byte {
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
			t.Fatal(err)
		}
		return append([]byte(nil), buf.Bytes()...)
	}
	out4 := func(ls ...gopacket.SerializableLayer) []byte {
		return append(sll2(0x0800, ifBih0, arphrdNone, pktOutgoing, nil), ser(ls...)...)
	}
	in6 := func(ls ...gopacket.SerializableLayer) []byte {
		return append(sll2(0x86dd, ifEth0, arphrdEther, pktHost, []byte{2, 0, 0, 0, 0, 0x80}), ser(ls...)...)
	}
	ipv4 := func(id uint16, proto layers.IPProtocol, dst net.IP) *layers.IPv4 {
		return &layers.IPv4{Version: 4, Id: id, Flags: layers.IPv4DontFragment, TTL: 64, Protocol: proto, SrcIP: appV4, DstIP: dst}
	}
	ipv6 := func(proto layers.IPProtocol) *layers.IPv6 {
		return &layers.IPv6{Version: 6, HopLimit: 57, NextHeader: proto, SrcIP: serverV6, DstIP: appV6}
	}
	tcp4 := func(id uint16, tc *layers.TCP, payload string) []byte {
		ip := ipv4(id, layers.IPProtocolTCP, poolV4)
		tc.SrcPort, tc.DstPort = 40000, 80
		if err := tc.SetNetworkLayerForChecksum(ip); err != nil {
			t.Fatal(err)
		}
		return out4(ip, tc, gopacket.Payload(payload))
	}
	tcp6 := func(tc *layers.TCP, payload string) []byte {
		ip := ipv6(layers.IPProtocolTCP)
		tc.SrcPort, tc.DstPort = 80, 40000
		if err := tc.SetNetworkLayerForChecksum(ip); err != nil {
			t.Fatal(err)
		}
		return in6(ip, tc, gopacket.Payload(payload))
	}
	mss := func(v uint16) []layers.TCPOption {
		return []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: binary.BigEndian.AppendUint16(nil, v)}}
	}
	udp4 := func(id uint16, dst net.IP, payload string) []byte {
		ip := ipv4(id, layers.IPProtocolUDP, dst)
		u := &layers.UDP{SrcPort: 40001, DstPort: 7}
		if err := u.SetNetworkLayerForChecksum(ip); err != nil {
			t.Fatal(err)
		}
		return out4(ip, u, gopacket.Payload(payload))
	}
	request := "GET / HTTP/1.1\r\nHost: server.example\r\n\r\n"
	response := "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nhi\n"
	ping := []byte("0123456789abcdefghijklmnopqrstuv")

	udp6 := func() []byte {
		ip := ipv6(layers.IPProtocolUDP)
		u := &layers.UDP{SrcPort: 7, DstPort: 40001}
		if err := u.SetNetworkLayerForChecksum(ip); err != nil {
			t.Fatal(err)
		}
		return in6(ip, u, gopacket.Payload("hello over udp"))
	}
	echoReply6 := func() []byte {
		ip := ipv6(layers.IPProtocolICMPv6)
		ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeEchoReply, 0)}
		if err := ic.SetNetworkLayerForChecksum(ip); err != nil {
			t.Fatal(err)
		}
		return in6(ip, ic, &layers.ICMPv6Echo{Identifier: 0x1234, SeqNumber: 1}, gopacket.Payload(ping))
	}
	neighborSolicitation := func() []byte {
		ip := &layers.IPv6{Version: 6, HopLimit: 255, NextHeader: layers.IPProtocolICMPv6,
			SrcIP: net.ParseIP("fe80::1"), DstIP: net.ParseIP("ff02::1:ff00:1")}
		ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborSolicitation, 0)}
		if err := ic.SetNetworkLayerForChecksum(ip); err != nil {
			t.Fatal(err)
		}
		return in6(ip, ic, &layers.ICMPv6NeighborSolicitation{TargetAddress: appV6})
	}
	lldp := append(sll2(0x88cc, ifEth0, arphrdEther, pktHost, []byte{2, 0, 0, 0, 0, 0x99}),
		0x02, 0x07, 0x04, 2, 0, 0, 0, 0, 0x99, // chassis ID: MAC
		0x04, 0x03, 0x05, 'p', '1', // port ID: interface name
		0x06, 0x02, 0x00, 0x78, // TTL 120 s
		0x00, 0x00) // end

	frames := [][]byte{
		tcp4(0x1c46, &layers.TCP{Seq: 1000, SYN: true, Window: 64240, Options: mss(1460)}, ""),
		tcp6(&layers.TCP{Seq: 5000, Ack: 1001, SYN: true, ACK: true, Window: 64800, Options: mss(1440)}, ""),
		tcp4(0x1c47, &layers.TCP{Seq: 1001, Ack: 5001, ACK: true, Window: 502}, ""),
		tcp4(0x1c48, &layers.TCP{Seq: 1001, Ack: 5001, ACK: true, PSH: true, Window: 502}, request),
		tcp6(&layers.TCP{Seq: 5001, Ack: 1001 + uint32(len(request)), ACK: true, PSH: true, Window: 507}, response),
		udp4(0x1c49, poolV4, "hello over udp"),
		udp6(),
		out4(ipv4(0x1c4a, layers.IPProtocolICMPv4, poolV4),
			&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 0x1234, Seq: 1},
			gopacket.Payload(ping)),
		echoReply6(),
		udp4(0x1c4b, unmapped, "nobody maps me"),
		neighborSolicitation(),
		lldp,
	}
	var b bytes.Buffer
	w := pcapgo.NewWriter(&b)
	if err := w.WriteFileHeader(262144, layers.LinkTypeLinuxSLL2); err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for i, f := range frames {
		ci := gopacket.CaptureInfo{Timestamp: start.Add(time.Duration(i) * 1500 * time.Microsecond), CaptureLength: len(f), Length: len(f)}
		if err := w.WritePacket(ci, f); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}
