package translate

import "github.com/bih-nfq/bih-nfq/internal/drop"

// ipv6Chain is what walking an IPv6 extension header chain found.
type ipv6Chain struct {
	upper   int   // offset of the upper-layer header (or of fragment data)
	nh      uint8 // upper-layer protocol
	hasFrag bool
	fragOff int // bytes
	fragM   bool
	fragID  uint32
	// routingSL is the offset of the Segments Left field of the first
	// Routing header with Segments Left != 0, or -1.
	routingSL int
}

// walkIPv6 follows the extension headers of the IPv6 packet p (RFC 7915
// §5.1 "Protocol"): Hop-by-Hop, Routing and Destination Options are
// skipped, a Fragment header is recorded (§5.1.1), and the first other
// value is the upper-layer protocol. A Fragment header followed by another
// extension header is refused (§5.1.1 "SHOULD be dropped").
func walkIPv6(p []byte) (ipv6Chain, drop.Reason) {
	c := ipv6Chain{routingSL: -1}
	nh := ipv6(p).nextHeader()
	pos := ipv6HeaderLen
	for {
		switch nh {
		case protoHopByHop, protoDestOpts, protoRouting:
			if len(p)-pos < 8 {
				return c, drop.BadExtensionChain
			}
			l := (int(p[pos+1]) + 1) * 8
			if l > len(p)-pos {
				return c, drop.BadExtensionChain
			}
			if nh == protoRouting && p[pos+3] != 0 && c.routingSL < 0 {
				c.routingSL = pos + 3
			}
			nh = p[pos]
			pos += l
			continue
		case protoFragment:
			if len(p)-pos < fragHeaderLen {
				return c, drop.BadExtensionChain
			}
			f := ipv6Fragment(p[pos : pos+fragHeaderLen])
			c.hasFrag, c.fragOff, c.fragM, c.fragID = true, f.offset(), f.more(), f.id()
			nh = f.nextHeader()
			pos += fragHeaderLen
			if isIPv6ExtensionHeader(nh) {
				return c, drop.UnknownNextHeader
			}
		}
		break
	}
	c.upper, c.nh = pos, nh
	return c, drop.None
}

// Translate6to4 translates the IPv6 packet buf[off:] (RFC 7915 §5). buf may
// be modified; the translation is built in place (the IPv4 header is written
// just before the unchanged upper-layer data; the IPv4 header is smaller
// than the IPv6 headers it replaces, so no headroom is needed). Trailing
// bytes beyond the IPv6 Payload Length are ignored. buf must not alias a
// Result of the same Translator.
func (t *Translator) Translate6to4(buf []byte, off int) Result {
	if off < 0 || off > len(buf) {
		return dropped(drop.TooShort)
	}
	p := buf[off:]
	if len(p) < ipv6HeaderLen {
		return dropped(drop.TooShort)
	}
	h := ipv6(p)
	if h.version() != 6 {
		return dropped(drop.BadVersion)
	}
	if ipv6HeaderLen+h.payloadLen() > len(p) {
		return dropped(drop.BadTotalLength)
	}
	p = p[:ipv6HeaderLen+h.payloadLen()]
	h = ipv6(p)
	src6, dst6 := h.src(), h.dst()
	// §5.1 "Source Address": illegal sources are silently dropped.
	if illegalSource6(&src6) {
		return dropped(drop.IllegalSource)
	}
	if illegalDestination6(&dst6) {
		return dropped(drop.IllegalDestination)
	}
	c, r := walkIPv6(p)
	if r != drop.None {
		return dropped(r)
	}
	upper := p[c.upper:]
	first := c.fragOff == 0
	whole := !c.hasFrag || (first && !c.fragM) // no fragment or an atomic one
	if c.fragOff+len(upper) > ipv4MaxTotalLen {
		return dropped(drop.BadTotalLength) // cannot be reassembled in IPv4
	}

	proto := c.nh
	icmpErr := false
	switch c.nh {
	case protoICMPv4:
		return dropped(drop.ProtocolMismatch)
	case protoICMPv6:
		proto = protoICMPv4
		if !whole {
			return dropped(drop.FragmentedICMP)
		}
		if len(upper) < icmpHeaderLen {
			return dropped(drop.ICMPTooShort)
		}
		kind, r := classifyICMPv6(upper[icmpType])
		if kind == icmpDrop {
			return dropped(r)
		}
		icmpErr = kind == icmpError
	case protoTCP:
		if first && len(upper) < tcpMinLen {
			return dropped(drop.TooShort)
		}
	case protoUDP:
		if first {
			if len(upper) < udpHeaderLen {
				return dropped(drop.TooShort)
			}
			// RFC 8200 §8.1: a zero UDP checksum is invalid in IPv6, and
			// translated as is it would mean "no checksum" in IPv4.
			if be16(upper[udpChecksum:]) == 0 {
				return dropped(drop.BadChecksum)
			}
		}
	}

	// §5.1 "Source Address", "Destination Address": Section 6 mapping.
	dst4, ok := t.cfg.Mapper.To4(dst6)
	if !ok {
		return dropped(drop.NoMappingDestination)
	}
	src4, ok := t.cfg.Mapper.To4(src6)
	if !ok {
		if !icmpErr {
			return dropped(drop.NoMappingSource)
		}
		// An ICMPv6 error from an IPv6 router: a mapping made on demand
		// (RFC 6535 §2.4), else the RFC 6791 source.
		if t.errMapper != nil {
			src4, ok = t.errMapper.ErrorSourceTo4(src6)
		}
		if !ok && t.hasICMPSrc4 {
			src4, ok = t.icmpSrc4, true
		}
		if !ok {
			return dropped(drop.NoMappingSource)
		}
	}

	// §5.1: Routing header with Segments Left != 0 → Parameter Problem 4/0
	// pointing at Segments Left; never in answer to an ICMPv6 error (§5.4).
	if c.routingSL >= 0 {
		if icmpErr {
			return dropped(drop.RoutingHeader)
		}
		return t.generateICMPv6Error(p, icmp6ParamProblem, 0, uint32(c.routingSL), drop.RoutingHeader)
	}

	hop := h.hopLimit()
	if t.cfg.Router {
		if hop <= 1 {
			if icmpErr {
				return dropped(drop.TTLExceeded)
			}
			return t.generateICMPv6Error(p, icmp6TimeExceeded, 0, 0, drop.TTLExceeded)
		}
		hop--
	}
	tos := h.trafficClass()
	if t.cfg.IgnoreTOS {
		tos = 0
	}

	if icmpErr {
		return t.icmpError6to4(p, c.upper, tos, hop, src4, dst4, &src6, &dst6)
	}

	total := ipv4MinHeaderLen + len(upper)
	fragment := false
	if total > t.cfg.IPv4MTU {
		// §5.1.1 last paragraph and §1.4: fragment what may be fragmented
		// (it came fragmented, or it is small enough to get DF clear),
		// otherwise Packet Too Big toward the IPv6 sender.
		if !c.hasFrag && len(p) > minIPv6MTU && total > dfThreshold {
			mtu := max(minIPv6MTU, t.cfg.IPv4MTU+ipv6HeaderLen-ipv4MinHeaderLen)
			return t.generateICMPv6Error(p, icmp6PacketTooBig, 0, uint32(mtu), drop.PacketTooBig)
		}
		fragment = true
	}

	// §5.5: transport checksums, incrementally (lengths do not change).
	if first {
		switch c.nh {
		case protoTCP:
			cs := upper[tcpChecksum:]
			put16(cs, pseudoAdjust6to4(be16(cs), &src6, &dst6, src4, dst4))
		case protoUDP:
			cs := upper[udpChecksum:]
			put16(cs, udpChecksumOut(pseudoAdjust6to4(be16(cs), &src6, &dst6, src4, dst4)))
		case protoICMPv6:
			translateEcho6to4(icmp(upper), &src6, &dst6, len(upper))
		}
	}

	f := ipv4Fields{tos: tos, totalLen: total, ttl: hop, protocol: proto, src: src4, dst: dst4}
	if c.hasFrag {
		// §5.1.1: low 16 bits of the identification, MF from M, DF clear.
		f.id, f.mf, f.fragOff = uint16(c.fragID), c.fragM, c.fragOff
	} else {
		// §5.1 "Flags": DF set only above 1260 bytes.
		f.id, f.df = t.nextID(), total > dfThreshold
	}
	if fragment {
		return t.fragment6to4(upper, &f)
	}
	start := off + c.upper - ipv4MinHeaderLen
	out := buf[start : off+len(p)]
	writeIPv4(out, &f)
	return t.one(Translated, drop.None, out)
}

// translateEcho6to4 turns an ICMPv6 echo request/reply into ICMPv4 in place
// (§5.2 "Echo Request and Echo Reply"): new type, and the checksum adjusted
// for the type change and for the ICMPv6 pseudo-header ICMPv4 lacks.
func translateEcho6to4(m icmp, src6, dst6 *[16]byte, msgLen int) {
	oldSum := combine(m.typeCode(), pseudoHeaderSum6(src6, dst6, protoICMPv6, msgLen))
	if m[icmpType] == icmp6EchoRequest {
		m[icmpType] = icmp4EchoRequest
	} else {
		m[icmpType] = icmp4EchoReply
	}
	m.setChecksum(updateChecksum(m.checksum(), oldSum, m.typeCode()))
}

// fragment6to4 emits IPv4 fragments of upper for a next hop whose MTU is
// smaller than the translation (RFC 7915 §5.1.1: "MUST perform IPv4
// fragmentation"; §1.4: the translator behaves as a router). f holds the
// header fields of the unfragmented translation, including the offset and
// MF of an IPv6 fragment.
func (t *Translator) fragment6to4(upper []byte, f *ipv4Fields) Result {
	chunk := (t.cfg.IPv4MTU - ipv4MinHeaderLen) &^ 7
	base, mf := f.fragOff, f.mf
	f.df = false
	t.pkts = t.pkts[:0]
	pos := 0
	for done := 0; done < len(upper); {
		n := min(chunk, len(upper)-done)
		last := done+n == len(upper)
		pkt := t.out[pos : pos+ipv4MinHeaderLen+n]
		f.totalLen = len(pkt)
		f.fragOff = base + done
		f.mf = !last || mf
		writeIPv4(pkt, f)
		copy(pkt[ipv4MinHeaderLen:], upper[done:done+n])
		t.pkts = append(t.pkts, pkt)
		pos += len(pkt)
		done += n
	}
	return Result{Action: Translated, Packets: t.pkts}
}
