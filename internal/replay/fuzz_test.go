package replay

import (
	"bytes"
	"io"
	"testing"

	"github.com/gopacket/gopacket/layers"
)

// FuzzReplayReader feeds arbitrary bytes to the capture reader and the
// link-layer stripping. Invariants: no panic; every frame's bytes occur in
// the input (records are copied verbatim); every network-layer packet is a
// subslice of its frame.
func FuzzReplayReader(f *testing.F) {
	lts := []layers.LinkType{layers.LinkTypeRaw, layers.LinkTypeIPv4, layers.LinkTypeIPv6, layers.LinkTypeEthernet,
		layers.LinkTypeLinuxSLL, layers.LinkTypeLinuxSLL2}
	for _, format := range []Format{FormatPcap, FormatPcapng} {
		for _, lt := range lts {
			frames := []testFrame{
				{ts: t0, data: frameFor(f, lt, etherTypeIPv4, testIPv4, false)},
				{ts: t0, data: frameFor(f, lt, etherTypeIPv6, testIPv6, lt == layers.LinkTypeEthernet)},
				{ts: t0, data: frameFor(f, lt, etherTypeARP, testARP, false)[:5]},
			}
			f.Add(buildCapture(f, format, lt, frames))
		}
	}
	f.Add([]byte{0x0a, 0x0d, 0x0d, 0x0a})
	f.Fuzz(func(t *testing.T, in []byte) {
		rd, err := NewReader(bytes.NewReader(in))
		if err != nil {
			return
		}
		gz := len(in) >= 2 && bytes.Equal(in[:2], magicGzip)
		for i := 0; i < 1000; i++ {
			fr, err := rd.Next()
			if err != nil {
				if err != io.EOF && err.Error() == "" {
					t.Fatal("empty error message")
				}
				return
			}
			if fr.Index != i {
				t.Fatalf("frame index %d, want %d", fr.Index, i)
			}
			if !gz && !bytes.Contains(in, fr.Data) {
				t.Fatalf("frame %d is not a copy of input bytes", i)
			}
			pkt, _, err := StripLink(fr.LinkType, fr.Data)
			if err != nil || len(pkt) == 0 {
				continue
			}
			off := cap(fr.Data) - cap(pkt)
			if off < 0 || off+len(pkt) > len(fr.Data) || &fr.Data[off] != &pkt[0] {
				t.Fatalf("frame %d: packet is not a subslice of the frame", i)
			}
		}
	})
}
