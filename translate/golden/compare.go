package golden

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Check compares a translation outcome with the case: action and reason
// names, the number of packets, and every byte of every packet. The result
// is nil on a match, otherwise an error whose text lists the differing
// header fields.
//
// One field is not fixed by the RFCs and is compared loosely: the IPv4
// Identification of a packet the translator creates without an ID to copy (a
// 6→4 translation without a Fragment Header, RFC 7915 §5.1 "set according
// to a Fragment Identification generator", including the packet quoted in a
// translated ICMP error, and an ICMPv4 error the translator generates). Any
// value is accepted there, provided the checksums match it and IPv4
// fragments of one packet share it; the expected files write zero.
func (c Case) Check(action, reason string, outputs [][]byte) error {
	var errs []string
	if action != c.Action {
		errs = append(errs, fmt.Sprintf("action: got %s, want %s", action, c.Action))
	}
	if reason != c.Reason {
		errs = append(errs, fmt.Sprintf("reason: got %s, want %s", reason, c.Reason))
	}
	if len(outputs) != len(c.Outputs) {
		errs = append(errs, fmt.Sprintf("packets: got %d, want %d", len(outputs), len(c.Outputs)))
	}
	var firstID []byte
	for i := 0; i < len(outputs) && i < len(c.Outputs); i++ {
		got := append([]byte(nil), outputs[i]...)
		want := c.Outputs[i]
		outer, inner := c.freeIDs(want)
		if outer && len(got) >= 20 && version(got) == 4 {
			if firstID == nil {
				firstID = append([]byte(nil), got[4:6]...)
			} else if string(firstID) != string(got[4:6]) {
				errs = append(errs, fmt.Sprintf("packet %d: ipv4.id %x differs from the first fragment's %x; fragments of one packet share one ID", i, got[4:6], firstID))
			}
			setID(got, 0, want, nil)
		}
		if inner && len(got) >= 20 {
			ihl := int(got[0]&0x0f) * 4
			if len(got) >= ihl+8+20 && len(want) >= ihl+8+20 && version(got[ihl+8:]) == 4 {
				setID(got, ihl+8, want, got[ihl+2:ihl+4])
			}
		}
		if d := Diff(got, want); d != "" {
			errs = append(errs, fmt.Sprintf("packet %d differs:\n%s", i, d))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errors.New(strings.Join(errs, "\n"))
}

// freeIDs says which IPv4 Identification fields of an expected output the
// RFCs leave to the translator: the outer header's, and the header quoted
// in an ICMPv4 error.
func (c Case) freeIDs(want []byte) (outer, inner bool) {
	if len(want) < 20 || version(want) != 4 {
		return false, false
	}
	switch {
	case c.Dir == Dir4to6 && c.Action == ActionGeneratedError:
		return true, false // a new ICMPv4 error; it quotes the input verbatim
	case c.Dir != Dir6to4 || c.Action != ActionTranslated:
		return false, false
	}
	outer = !hasFragmentHeader(c.Input)
	ihl := int(want[0]&0x0f) * 4
	if want[9] == 1 && binary.BigEndian.Uint16(want[6:8])&0x3fff == 0 && len(want) >= ihl+8 {
		switch want[ihl] {
		case 3, 11, 12: // ICMPv4 errors quoting a translated IPv6 packet
			if q, ok := icmp6Quote(c.Input); ok {
				inner = !hasFragmentHeader(q)
			}
		}
	}
	return outer, inner
}

// setID copies want's Identification at off into got and fixes the header
// checksum, and the enclosing ICMP checksum icmpCks when set, by RFC 1624
// incremental updates, so a checksum that was wrong stays wrong.
func setID(got []byte, off int, want []byte, icmpCks []byte) {
	oldID := binary.BigEndian.Uint16(got[off+4:])
	newID := binary.BigEndian.Uint16(want[off+4:])
	if oldID == newID {
		return
	}
	oldCk := binary.BigEndian.Uint16(got[off+10:])
	newCk := adjust(oldCk, oldID, newID)
	binary.BigEndian.PutUint16(got[off+4:], newID)
	binary.BigEndian.PutUint16(got[off+10:], newCk)
	if icmpCks != nil {
		ck := binary.BigEndian.Uint16(icmpCks)
		ck = adjust(ck, oldID, newID)
		ck = adjust(ck, oldCk, newCk)
		binary.BigEndian.PutUint16(icmpCks, ck)
	}
}

// adjust is RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m').
func adjust(hc, old, new uint16) uint16 {
	s := uint32(^hc) + uint32(^old) + uint32(new)
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

func version(p []byte) int { return int(p[0] >> 4) }

// hasFragmentHeader reports whether the IPv6 packet p has a Fragment
// Header before its upper layer.
func hasFragmentHeader(p []byte) bool {
	if len(p) < 40 || version(p) != 6 {
		return false
	}
	nh, off := p[6], 40
	for {
		switch nh {
		case 44:
			return true
		case 0, 43, 60:
			if off+2 > len(p) {
				return false
			}
			nh, off = p[off], off+(int(p[off+1])+1)*8
		default:
			return false
		}
	}
}

// icmp6Quote returns the packet quoted by the ICMPv6 error p.
func icmp6Quote(p []byte) ([]byte, bool) {
	if len(p) < 48 || version(p) != 6 {
		return nil, false
	}
	nh, off := p[6], 40
	for nh == 0 || nh == 43 || nh == 60 {
		if off+2 > len(p) {
			return nil, false
		}
		nh, off = p[off], off+(int(p[off+1])+1)*8
	}
	if nh != 58 || off+8 > len(p) || p[off] >= 128 {
		return nil, false
	}
	return p[off+8:], true
}

// Field names a byte range of a packet.
type Field struct {
	Name     string
	Off, Len int
}

// Fields decodes the layout of an IPv4 or IPv6 packet, with its transport
// header and, for ICMP errors, the quoted packet (names prefixed "inner."),
// as far as the bytes go. It never fails; what it cannot decode is "data".
func Fields(p []byte) []Field {
	var fs []Field
	fields(p, 0, "", &fs, 0)
	return fs
}

func fields(p []byte, base int, prefix string, fs *[]Field, depth int) {
	add := func(name string, off, n int) bool {
		if off >= len(p) {
			return false
		}
		if off+n > len(p) {
			n = len(p) - off
		}
		*fs = append(*fs, Field{prefix + name, base + off, n})
		return true
	}
	if len(p) == 0 {
		return
	}
	var proto byte
	var l4 int
	switch version(p) {
	case 4:
		ihl := int(p[0]&0x0f) * 4
		for _, f := range []Field{{"ipv4.version_ihl", 0, 1}, {"ipv4.tos", 1, 1}, {"ipv4.total_length", 2, 2}, {"ipv4.id", 4, 2},
			{"ipv4.flags_offset", 6, 2}, {"ipv4.ttl", 8, 1}, {"ipv4.protocol", 9, 1}, {"ipv4.checksum", 10, 2}, {"ipv4.src", 12, 4}, {"ipv4.dst", 16, 4}} {
			add(f.Name, f.Off, f.Len)
		}
		if ihl > 20 {
			add("ipv4.options", 20, ihl-20)
		}
		if len(p) < 20 || ihl < 20 {
			return
		}
		proto, l4 = p[9], ihl
		if binary.BigEndian.Uint16(p[6:8])&0x1fff != 0 {
			add("data", l4, len(p)-l4)
			return
		}
	case 6:
		for _, f := range []Field{{"ipv6.version_tc_flow", 0, 4}, {"ipv6.payload_length", 4, 2}, {"ipv6.next_header", 6, 1},
			{"ipv6.hop_limit", 7, 1}, {"ipv6.src", 8, 16}, {"ipv6.dst", 24, 16}} {
			add(f.Name, f.Off, f.Len)
		}
		if len(p) < 40 {
			return
		}
		proto, l4 = p[6], 40
	ext:
		for l4+2 <= len(p) {
			switch proto {
			case 0, 43, 60:
				n := (int(p[l4+1]) + 1) * 8
				add(fmt.Sprintf("ipv6.ext%d", proto), l4, n)
				proto, l4 = p[l4], l4+n
			case 44:
				add("ipv6.frag.next_header", l4, 1)
				add("ipv6.frag.reserved", l4+1, 1)
				add("ipv6.frag.offset_m", l4+2, 2)
				add("ipv6.frag.id", l4+4, 4)
				if l4+4 > len(p) {
					return
				}
				frag := binary.BigEndian.Uint16(p[l4+2:]) &^ 7
				proto, l4 = p[l4], l4+8
				if frag != 0 {
					add("data", l4, len(p)-l4)
					return
				}
			default:
				break ext
			}
		}
	default:
		add("data", 0, len(p))
		return
	}
	switch proto {
	case 6:
		for _, f := range []Field{{"tcp.src_port", 0, 2}, {"tcp.dst_port", 2, 2}, {"tcp.seq", 4, 4}, {"tcp.ack", 8, 4}, {"tcp.offset_flags", 12, 2},
			{"tcp.window", 14, 2}, {"tcp.checksum", 16, 2}, {"tcp.urgent", 18, 2}} {
			add(f.Name, l4+f.Off, f.Len)
		}
		add("tcp.data", l4+20, len(p)-l4-20)
	case 17:
		for _, f := range []Field{{"udp.src_port", 0, 2}, {"udp.dst_port", 2, 2}, {"udp.length", 4, 2}, {"udp.checksum", 6, 2}} {
			add(f.Name, l4+f.Off, f.Len)
		}
		add("udp.data", l4+8, len(p)-l4-8)
	case 1, 58:
		name := "icmpv4"
		if proto == 58 {
			name = "icmpv6"
		}
		add(name+".type", l4, 1)
		add(name+".code", l4+1, 1)
		add(name+".checksum", l4+2, 2)
		add(name+".rest", l4+4, 4)
		if l4 >= len(p) {
			return
		}
		t := p[l4]
		isErr := proto == 1 && (t == 3 || t == 4 || t == 5 || t == 11 || t == 12) || proto == 58 && t < 128
		if isErr && depth == 0 && l4+8 < len(p) {
			fields(p[l4+8:], base+l4+8, prefix+"inner.", fs, depth+1)
		} else {
			add(name+".data", l4+8, len(p)-l4-8)
		}
	default:
		add("data", l4, len(p)-l4)
	}
}

// Diff describes how got differs from want, field by field (named after
// want's layout), or returns "" when they are equal.
func Diff(got, want []byte) string {
	if string(got) == string(want) {
		return ""
	}
	var b strings.Builder
	if len(got) != len(want) {
		fmt.Fprintf(&b, "  length: got %d, want %d\n", len(got), len(want))
	}
	covered := 0
	for _, f := range Fields(want) {
		g, w := slice(got, f.Off, f.Len), slice(want, f.Off, f.Len)
		if f.Off+f.Len > covered {
			covered = f.Off + f.Len
		}
		if string(g) == string(w) {
			continue
		}
		if f.Len <= 16 {
			fmt.Fprintf(&b, "  %s @%d: got % x, want % x\n", f.Name, f.Off, g, w)
			continue
		}
		i := 0
		for i < len(g) && i < len(w) && g[i] == w[i] {
			i++
		}
		fmt.Fprintf(&b, "  %s @%d (%d bytes): first difference at byte %d: got % x, want % x\n", f.Name, f.Off, f.Len, f.Off+i, slice(g, i, 8), slice(w, i, 8))
	}
	if len(got) > covered {
		fmt.Fprintf(&b, "  extra bytes @%d: % x\n", covered, slice(got, covered, 16))
	}
	fmt.Fprintf(&b, "  got:  % x\n  want: % x", slice(got, 0, 96), slice(want, 0, 96))
	if len(got) > 96 || len(want) > 96 {
		b.WriteString(" ...")
	}
	return b.String()
}

func slice(p []byte, off, n int) []byte {
	if off >= len(p) {
		return nil
	}
	if off+n > len(p) {
		n = len(p) - off
	}
	return p[off : off+n]
}
