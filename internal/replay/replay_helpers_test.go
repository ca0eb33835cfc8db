package replay

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// Minimal packets: the fake translator only looks at bytes, so they need a
// right version nibble and distinct contents, not valid checksums.
var (
	testIPv4 = []byte{0x45, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0, 0, 172, 21, 112, 1, 10, 170, 160, 1,
		0x30, 0x39, 0, 53, 0, 8, 0, 0}
	testIPv6 = append([]byte{0x60, 0, 0, 0, 0, 8, 17, 64,
		0x20, 0x01, 0x0d, 0xb8, 0xca, 0x5a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80,
		0x20, 0x01, 0x0d, 0xb8, 0xb1, 0xa5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1},
		0, 53, 0x30, 0x39, 0, 8, 0, 0)
	// An ARP request body (Ethernet/IPv4), for frames that are not IP.
	testARP = []byte{0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 172, 21, 112, 1, 0, 0, 0, 0, 0, 0, 10, 170, 160, 1}
)

const etherTypeARP = 0x0806

// frameFor wraps an IP (or ARP) payload in the link-layer header of lt.
// vlan adds one 802.1Q tag to Ethernet frames.
func frameFor(t testing.TB, lt layers.LinkType, etherType uint16, payload []byte, vlan bool) []byte {
	t.Helper()
	var h []byte
	switch lt {
	case layers.LinkTypeRaw, layers.LinkTypeIPv4, layers.LinkTypeIPv6:
	case layers.LinkTypeEthernet:
		h = []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1}
		if vlan {
			h = binary.BigEndian.AppendUint16(h, etherTypeVLAN)
			h = binary.BigEndian.AppendUint16(h, 0x0064) // VID 100
		}
		h = binary.BigEndian.AppendUint16(h, etherType)
	case layers.LinkTypeLinuxSLL:
		h = []byte{0, 4, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0}
		h = binary.BigEndian.AppendUint16(h, etherType)
	case layers.LinkTypeLinuxSLL2:
		h = binary.BigEndian.AppendUint16(nil, etherType)
		h = append(h, 0, 0, 0, 0, 0, 2, 0, 1, 4, 6, 2, 0, 0, 0, 0, 1, 0, 0)
	default:
		t.Fatalf("frameFor: link type %d", lt)
	}
	return append(h, payload...)
}

type testFrame struct {
	ts   time.Time
	data []byte
	orig int // original length; 0 means len(data)
}

// buildCapture writes frames as a pcap or pcapng file of one link type.
func buildCapture(t testing.TB, f Format, lt layers.LinkType, frames []testFrame) []byte {
	t.Helper()
	var b bytes.Buffer
	ci := func(fr testFrame) gopacket.CaptureInfo {
		n := fr.orig
		if n == 0 {
			n = len(fr.data)
		}
		return gopacket.CaptureInfo{Timestamp: fr.ts, CaptureLength: len(fr.data), Length: n}
	}
	switch f {
	case FormatPcap:
		w := pcapgo.NewWriterNanos(&b)
		if err := w.WriteFileHeader(65535, lt); err != nil {
			t.Fatal(err)
		}
		for _, fr := range frames {
			if err := w.WritePacket(ci(fr), fr.data); err != nil {
				t.Fatal(err)
			}
		}
	case FormatPcapng:
		w, err := pcapgo.NewNgWriter(&b, lt)
		if err != nil {
			t.Fatal(err)
		}
		for _, fr := range frames {
			if err := w.WritePacket(ci(fr), fr.data); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("buildCapture: format %d", f)
	}
	return b.Bytes()
}
