// Package replay runs captured packets through the translation pipeline
// offline: it reads pcap or pcapng files, strips the link layer, hands each IP
// packet to the translator (or to a Handler that claims it first) and writes
// every packet the pipeline would emit to a LINKTYPE_RAW pcap, with one
// verdict per input packet.
package replay

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// File magics (first four bytes, as stored).
var (
	magicPcapMicroLE = []byte{0xd4, 0xc3, 0xb2, 0xa1}
	magicPcapMicroBE = []byte{0xa1, 0xb2, 0xc3, 0xd4}
	magicPcapNanoLE  = []byte{0x4d, 0x3c, 0xb2, 0xa1}
	magicPcapNanoBE  = []byte{0xa1, 0xb2, 0x3c, 0x4d}
	magicPcapng      = []byte{0x0a, 0x0d, 0x0d, 0x0a} // Section Header Block type, palindromic
	magicGzip        = []byte{0x1f, 0x8b}
)

// Format is the container format of a capture file.
type Format uint8

const (
	FormatPcap Format = iota + 1
	FormatPcapng
)

func (f Format) String() string {
	switch f {
	case FormatPcap:
		return "pcap"
	case FormatPcapng:
		return "pcapng"
	}
	return "unknown"
}

// Frame is one captured record.
type Frame struct {
	// Index counts records from 0 in file order; it is the verdict index
	// (tshark's frame number minus one).
	Index     int
	Timestamp time.Time
	LinkType  layers.LinkType
	// Data is the captured bytes, link-layer header included. It stays valid
	// after the next call to Next.
	Data []byte
	// Length is the length on the wire; larger than len(Data) when the
	// capture was cut to a snap length.
	Length int
}

// ErrTruncated marks a capture that ends in the middle of a record.
var ErrTruncated = errors.New("capture ends in the middle of a packet")

// Reader reads frames from a pcap or pcapng stream.
type Reader struct {
	format Format
	pcap   *pcapgo.Reader
	ng     *pcapgo.NgReader
	next   int
	err    error // sticky: once a record is bad, the rest of the stream is unknowable
}

// NewReader detects the format from the magic number and reads the file
// header. Gzip-compressed files are accepted.
func NewReader(r io.Reader) (rd *Reader, err error) {
	defer func() {
		// pcapgo parses untrusted bytes; a bug there must become an error,
		// not a crash of the command.
		if p := recover(); p != nil {
			rd, err = nil, fmt.Errorf("malformed capture header (reader failure: %v)", p)
		}
	}()
	br := bufio.NewReader(r)
	magic, err := br.Peek(4)
	if len(magic) >= 2 && bytes.Equal(magic[:2], magicGzip) {
		zr, zerr := gzip.NewReader(br)
		if zerr != nil {
			return nil, fmt.Errorf("gzip: %w", zerr)
		}
		br = bufio.NewReader(zr)
		magic, err = br.Peek(4)
	}
	if err != nil {
		if len(magic) == 0 && errors.Is(err, io.EOF) {
			return nil, errors.New("empty file, not a pcap or pcapng capture")
		}
		return nil, fmt.Errorf("too short for a capture file header: %w", err)
	}
	switch {
	case bytes.Equal(magic, magicPcapMicroLE), bytes.Equal(magic, magicPcapMicroBE),
		bytes.Equal(magic, magicPcapNanoLE), bytes.Equal(magic, magicPcapNanoBE):
		p, err := pcapgo.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("pcap file header: %w", headerErr(err))
		}
		return &Reader{format: FormatPcap, pcap: p}, nil
	case bytes.Equal(magic, magicPcapng):
		// Mixed link types: each interface may differ; Frame.LinkType says which.
		ng, err := pcapgo.NewNgReader(br, pcapgo.NgReaderOptions{WantMixedLinkType: true})
		if err != nil {
			return nil, fmt.Errorf("pcapng section header: %w", headerErr(err))
		}
		return &Reader{format: FormatPcapng, ng: ng}, nil
	}
	return nil, fmt.Errorf("not a pcap or pcapng file (magic %x)", magic)
}

func headerErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("file ends inside the header")
	}
	return err
}

// Format returns the detected container format.
func (r *Reader) Format() Format { return r.format }

// Next returns the next frame, or io.EOF after the last one. Any other error
// names the packet index it happened at; errors are sticky.
func (r *Reader) Next() (f Frame, err error) {
	if r.err != nil {
		return Frame{}, r.err
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("packet index %d: malformed record (reader failure: %v)", r.next, p)
		}
		if err != nil {
			r.err = err
		}
	}()
	var (
		data []byte
		ci   gopacket.CaptureInfo
		lt   layers.LinkType
	)
	switch r.format {
	case FormatPcap:
		data, ci, err = r.pcap.ReadPacketData()
		lt = r.pcap.LinkType()
	case FormatPcapng:
		data, ci, err = r.ng.ReadPacketData()
		if err == nil {
			var ok bool
			if len(ci.AncillaryData) == 1 {
				lt, ok = ci.AncillaryData[0].(layers.LinkType)
			}
			if !ok {
				err = errors.New("record without an interface link type")
			}
		}
	default:
		return Frame{}, errors.New("reader not initialised")
	}
	switch {
	case err == nil:
	case err == io.EOF:
		return Frame{}, io.EOF
	case errors.Is(err, io.ErrUnexpectedEOF):
		return Frame{}, fmt.Errorf("packet index %d: %w", r.next, ErrTruncated)
	default:
		return Frame{}, fmt.Errorf("packet index %d: %w", r.next, err)
	}
	f = Frame{Index: r.next, Timestamp: ci.Timestamp, LinkType: lt, Data: data, Length: ci.Length}
	r.next++
	return f, nil
}

// linkTypeName gives the LINKTYPE_ name for messages.
func linkTypeName(lt layers.LinkType) string {
	switch lt {
	case layers.LinkTypeRaw:
		return "RAW"
	case layers.LinkTypeIPv4:
		return "IPV4"
	case layers.LinkTypeIPv6:
		return "IPV6"
	case layers.LinkTypeEthernet:
		return "ETHERNET"
	case layers.LinkTypeLinuxSLL:
		return "LINUX_SLL"
	case layers.LinkTypeLinuxSLL2:
		return "LINUX_SLL2"
	}
	return fmt.Sprintf("%d", uint16(lt))
}

// Writer writes a LINKTYPE_RAW pcap with nanosecond timestamps.
type Writer struct {
	bw *bufio.Writer
	w  *pcapgo.Writer
	n  int
}

// outputSnaplen covers the largest IPv4 or IPv6 (non-jumbo) packet.
const outputSnaplen = 262144

// NewWriter writes the pcap file header to w.
func NewWriter(w io.Writer) (*Writer, error) {
	bw := bufio.NewWriter(w)
	pw := pcapgo.NewWriterNanos(bw)
	if err := pw.WriteFileHeader(outputSnaplen, layers.LinkTypeRaw); err != nil {
		return nil, fmt.Errorf("write pcap header: %w", err)
	}
	return &Writer{bw: bw, w: pw}, nil
}

// epoch replaces a missing timestamp: pcapgo would write the current time,
// which makes outputs differ from run to run.
var epoch = time.Unix(0, 0)

// Write appends one IP packet and returns its index in the output.
func (w *Writer) Write(ts time.Time, pkt []byte) (int, error) {
	if ts.IsZero() {
		ts = epoch
	}
	if len(pkt) > outputSnaplen {
		return 0, fmt.Errorf("output packet of %d bytes exceeds snap length %d", len(pkt), outputSnaplen)
	}
	ci := gopacket.CaptureInfo{Timestamp: ts, CaptureLength: len(pkt), Length: len(pkt)}
	if err := w.w.WritePacket(ci, pkt); err != nil {
		return 0, fmt.Errorf("write packet %d: %w", w.n, err)
	}
	w.n++
	return w.n - 1, nil
}

// Count returns the number of packets written.
func (w *Writer) Count() int { return w.n }

// Flush writes buffered data to the underlying writer.
func (w *Writer) Flush() error { return w.bw.Flush() }
