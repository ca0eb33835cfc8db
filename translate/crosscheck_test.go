package translate

import (
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// gopacketChecksumsValid decodes p with gopacket and verifies every
// checksum gopacket knows how to verify, with gopacket's own code.
func gopacketChecksumsValid(t *testing.T, p []byte, first gopacket.LayerType) {
	t.Helper()
	pk := gopacket.NewPacket(p, first, gopacket.Default)
	if el := pk.ErrorLayer(); el != nil {
		t.Fatalf("decode: %v", el.Error())
	}
	var net gopacket.NetworkLayer
	if ip, ok := pk.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
		net = ip
		if err, res := ip.VerifyChecksum(); err != nil || !res.Valid {
			t.Fatalf("IPv4 header checksum: %v %+v", err, res)
		}
	}
	if ip, ok := pk.Layer(layers.LayerTypeIPv6).(*layers.IPv6); ok {
		net = ip
	}
	type verifier interface {
		VerifyChecksum() (error, gopacket.ChecksumVerificationResult)
	}
	var v verifier
	switch l := pk.TransportLayer().(type) {
	case *layers.TCP:
		if err := l.SetNetworkLayerForChecksum(net); err != nil {
			t.Fatal(err)
		}
		v = l
	case *layers.UDP:
		if err := l.SetNetworkLayerForChecksum(net); err != nil {
			t.Fatal(err)
		}
		v = l
	}
	if l, ok := pk.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6); ok {
		if err := l.SetNetworkLayerForChecksum(net); err != nil {
			t.Fatal(err)
		}
		v = l
	}
	if l, ok := pk.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4); ok {
		v = l
	}
	if v == nil {
		t.Fatal("no transport layer to verify")
	}
	if err, res := v.VerifyChecksum(); err != nil || !res.Valid {
		t.Fatalf("transport checksum per gopacket: %v %+v", err, res)
	}
}

func TestCrossCheckWithGopacket(t *testing.T) {
	tr := newTranslator(t, nil)
	for _, b := range []func() ([]byte, int){
		func() ([]byte, int) { return tcp4(t, app4, srv4, 100) },
		func() ([]byte, int) { return udp4(t, app4, srv4, 101) },
		func() ([]byte, int) { return echo4(t, app4, srv4, 56) },
		func() ([]byte, int) {
			return icmp4Error(t, app4, srv4, 3, 3, [4]byte{}, innerUDP4(t, srv4, app4, 30))
		},
	} {
		buf, off := b()
		out := mustOne(t, tr.Translate4to6(buf, off), Translated)
		gopacketChecksumsValid(t, out, layers.LayerTypeIPv6)
	}
	for _, b := range []func() ([]byte, int){
		func() ([]byte, int) { return tcp6(t, srv6, app6, 100) },
		func() ([]byte, int) { return udp6(t, srv6, app6, 101) },
		func() ([]byte, int) { return echo6(t, srv6, app6, 129, 56) },
		func() ([]byte, int) {
			return icmp6Error(t, srv6, app6, 1, 4, 0, innerUDP6(t, app6, srv6, 30))
		},
	} {
		buf, off := b()
		out := mustOne(t, tr.Translate6to4(buf, off), Translated)
		gopacketChecksumsValid(t, out, layers.LayerTypeIPv4)
	}
}
