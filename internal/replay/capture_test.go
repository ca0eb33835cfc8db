package replay

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
)

var t0 = time.Date(2026, 11, 22, 19, 30, 0, 123456000, time.UTC)

// TestReadAndStrip reads every supported link type from both file formats
// and checks each frame's network-layer bytes, family, index and timestamp.
func TestReadAndStrip(t *testing.T) {
	type want struct {
		network Network
		payload []byte
	}
	type linkPayload struct {
		etherType uint16
		payload   []byte
	}
	v4, v6, arp := linkPayload{etherTypeIPv4, testIPv4}, linkPayload{etherTypeIPv6, testIPv6}, linkPayload{etherTypeARP, testARP}
	mixed := []want{{IPv4, testIPv4}, {IPv6, testIPv6}, {NotIP, nil}}
	cases := []struct {
		name  string
		lt    layers.LinkType
		vlan  bool
		build []linkPayload
		want  []want
	}{
		{name: "raw", lt: layers.LinkTypeRaw, build: []linkPayload{v4, v6}, want: []want{{IPv4, testIPv4}, {IPv6, testIPv6}}},
		{name: "ipv4", lt: layers.LinkTypeIPv4, build: []linkPayload{v4}, want: []want{{IPv4, testIPv4}}},
		{name: "ipv6", lt: layers.LinkTypeIPv6, build: []linkPayload{v6}, want: []want{{IPv6, testIPv6}}},
		{name: "ethernet", lt: layers.LinkTypeEthernet, build: []linkPayload{v4, v6, arp}, want: mixed},
		{name: "ethernet-vlan", lt: layers.LinkTypeEthernet, vlan: true, build: []linkPayload{v4, v6, arp}, want: mixed},
		{name: "sll", lt: layers.LinkTypeLinuxSLL, build: []linkPayload{v4, v6, arp}, want: mixed},
		{name: "sll2", lt: layers.LinkTypeLinuxSLL2, build: []linkPayload{v4, v6, arp}, want: mixed},
	}
	for _, format := range []Format{FormatPcap, FormatPcapng} {
		for _, c := range cases {
			t.Run(format.String()+"/"+c.name, func(t *testing.T) {
				var frames []testFrame
				for i, b := range c.build {
					frames = append(frames, testFrame{ts: t0.Add(time.Duration(i) * time.Millisecond),
						data: frameFor(t, c.lt, b.etherType, b.payload, c.vlan)})
				}
				rd, err := NewReader(bytes.NewReader(buildCapture(t, format, c.lt, frames)))
				if err != nil {
					t.Fatal(err)
				}
				if rd.Format() != format {
					t.Errorf("format %v, want %v", rd.Format(), format)
				}
				for i, w := range c.want {
					f, err := rd.Next()
					if err != nil {
						t.Fatalf("frame %d: %v", i, err)
					}
					if f.Index != i || f.LinkType != c.lt || !f.Timestamp.Equal(frames[i].ts) {
						t.Errorf("frame %d: index %d link %d ts %v, want %d %d %v", i, f.Index, f.LinkType, f.Timestamp, i, c.lt, frames[i].ts)
					}
					pkt, n, err := StripLink(f.LinkType, f.Data)
					if err != nil {
						t.Fatalf("frame %d: strip: %v", i, err)
					}
					if n != w.network || !bytes.Equal(pkt, w.payload) {
						t.Errorf("frame %d: network %d payload % x, want %d % x", i, n, pkt, w.network, w.payload)
					}
				}
				if _, err := rd.Next(); err != io.EOF {
					t.Errorf("after last frame: %v, want io.EOF", err)
				}
			})
		}
	}
}

func TestReaderGzip(t *testing.T) {
	raw := buildCapture(t, FormatPcap, layers.LinkTypeRaw, []testFrame{{ts: t0, data: testIPv4}})
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	if _, err := zw.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	rd, err := NewReader(&z)
	if err != nil {
		t.Fatal(err)
	}
	f, err := rd.Next()
	if err != nil || !bytes.Equal(f.Data, testIPv4) {
		t.Fatalf("got % x, %v", f.Data, err)
	}
}

func TestReaderErrors(t *testing.T) {
	pcap3 := buildCapture(t, FormatPcap, layers.LinkTypeRaw, []testFrame{
		{ts: t0, data: testIPv4}, {ts: t0, data: testIPv6}, {ts: t0, data: testIPv4}})
	ng3 := buildCapture(t, FormatPcapng, layers.LinkTypeRaw, []testFrame{
		{ts: t0, data: testIPv4}, {ts: t0, data: testIPv6}, {ts: t0, data: testIPv4}})
	cases := []struct {
		name      string
		in        []byte
		headerErr string // error from NewReader
		frames    int    // frames read before the error
		frameErr  string
		truncated bool
	}{
		{name: "empty", in: nil, headerErr: "empty file"},
		{name: "bad magic", in: []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), headerErr: "not a pcap or pcapng file (magic 47455420)"},
		{name: "one byte", in: []byte{0xd4}, headerErr: "too short for a capture file header"},
		{name: "pcap header cut", in: pcap3[:20], headerErr: "pcap file header: file ends inside the header"},
		{name: "pcapng header cut", in: ng3[:10], headerErr: "pcapng section header"},
		{name: "pcap bad version", in: append(append([]byte{}, pcap3[:4]...), append([]byte{9, 0}, pcap3[6:]...)...), headerErr: "Unknown major version 9"},
		{name: "pcap record header cut", in: pcap3[:len(pcap3)-len(testIPv4)-3], frames: 2, frameErr: "packet index 2: capture ends in the middle of a packet", truncated: true},
		{name: "pcap record data cut", in: pcap3[:len(pcap3)-1], frames: 2, frameErr: "packet index 2: capture ends in the middle of a packet", truncated: true},
		{name: "pcapng block cut", in: ng3[:len(ng3)-5], frames: 2, frameErr: "packet index 2: capture ends in the middle of a packet", truncated: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rd, err := NewReader(bytes.NewReader(c.in))
			if c.headerErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.headerErr) {
					t.Fatalf("NewReader error %v, want %q", err, c.headerErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < c.frames; i++ {
				if _, err := rd.Next(); err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
			}
			_, err = rd.Next()
			if err == nil || !strings.Contains(err.Error(), c.frameErr) {
				t.Fatalf("error %v, want %q", err, c.frameErr)
			}
			if errors.Is(err, ErrTruncated) != c.truncated {
				t.Errorf("errors.Is(ErrTruncated) = %v, want %v", !c.truncated, c.truncated)
			}
			if _, err2 := rd.Next(); err2 == nil || err2.Error() != err.Error() {
				t.Errorf("error not sticky: %v", err2)
			}
		})
	}
}

func TestStripLinkShortAndUnsupported(t *testing.T) {
	for _, c := range []struct {
		lt    layers.LinkType
		frame []byte
	}{
		{layers.LinkTypeEthernet, make([]byte, 13)},
		{layers.LinkTypeEthernet, append(make([]byte, 12), 0x81, 0x00, 0, 100)}, // tag without its type
		{layers.LinkTypeLinuxSLL, make([]byte, 15)},
		{layers.LinkTypeLinuxSLL2, make([]byte, 19)},
	} {
		if pkt, n, err := StripLink(c.lt, c.frame); err != nil || n != ShortFrame || pkt != nil {
			t.Errorf("%s, %d bytes: got %d, %v, % x; want ShortFrame", linkTypeName(c.lt), len(c.frame), n, err, pkt)
		}
	}
	if _, _, err := StripLink(layers.LinkTypeIEEE802_11, testIPv4); err == nil || !strings.Contains(err.Error(), "unsupported link type 105") {
		t.Errorf("802.11: %v, want unsupported link type", err)
	}
	// 802.1ad outer tag + 802.1Q inner tag.
	qinq := append([]byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x88, 0xa8, 0, 10, 0x81, 0x00, 0, 100, 0x86, 0xdd}, testIPv6...)
	if pkt, n, err := StripLink(layers.LinkTypeEthernet, qinq); err != nil || n != IPv6 || !bytes.Equal(pkt, testIPv6) {
		t.Errorf("QinQ frame: %d, %v, % x", n, err, pkt)
	}
	// A third tag is not looked into.
	three := append([]byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x88, 0xa8, 0, 10, 0x81, 0x00, 0, 100, 0x81, 0x00, 0, 5, 0x86, 0xdd}, testIPv6...)
	if _, n, err := StripLink(layers.LinkTypeEthernet, three); err != nil || n != NotIP {
		t.Errorf("three tags: %d, %v; want NotIP", n, err)
	}
	// An 802.3 length field instead of an EtherType is not IP.
	f := append([]byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0, 28}, testIPv4...)
	if _, n, err := StripLink(layers.LinkTypeEthernet, f); err != nil || n != NotIP {
		t.Errorf("802.3 frame: %d, %v; want NotIP", n, err)
	}
}
