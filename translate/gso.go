package translate

import "github.com/bih-nfq/bih-nfq/internal/drop"

// Translate4to6GSO translates an IPv4 TCP super-packet: one the local stack
// handed over unsegmented (generic segmentation offload) and whose IPv6
// translation the kernel will cut into segments carrying at most seg bytes
// of TCP payload each. It is Translate4to6 with two differences: the §4.1
// size check applies to one such segment, and the TCP checksum is left
// partial, holding the IPv6 pseudo-header sum (RFC 8200 §8.1) over the whole
// length, for the segmentation to finish per segment (as the kernel's own
// CHECKSUM_PARTIAL packets do). Only unfragmented TCP with DF set qualifies:
// anything else is dropped with TooBigAfterXlat, and callers cut it
// themselves instead.
func (t *Translator) Translate4to6GSO(buf []byte, off, seg int) Result {
	if seg <= 0 || off < 0 || off+ipv4MinHeaderLen > len(buf) {
		return dropped(drop.TooBigAfterXlat)
	}
	h := ipv4(buf[off:])
	if h.version() != 4 || h.protocol() != protoTCP || !h.df() || h.mf() || h.fragOffset() != 0 {
		return dropped(drop.TooBigAfterXlat)
	}
	t.gsoSeg = seg
	defer func() { t.gsoSeg = 0 }()
	return t.Translate4to6(buf, off)
}
