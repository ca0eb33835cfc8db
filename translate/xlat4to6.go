package translate

import (
	"github.com/bih-nfq/bih-nfq/internal/drop"
)

// IPv4 option types that carry a source route (RFC 791 §3.1).
const (
	optEnd  = 0
	optNOP  = 1
	optLSRR = 131
	optSSRR = 137
)

// Translate4to6 translates the IPv4 packet buf[off:] (RFC 7915 §4). buf may be
// modified; with off >= Headroom the translation is built in place: the IPv6
// header is written just before the unchanged payload and the result aliases
// buf. Without enough headroom the packet is first copied into the
// Translator's scratch space. Trailing bytes beyond the IPv4 Total Length
// are ignored. buf must not alias a Result of the same Translator.
func (t *Translator) Translate4to6(buf []byte, off int) Result {
	if off < 0 || off > len(buf) {
		return dropped(drop.TooShort)
	}
	p := buf[off:]
	if len(p) < ipv4MinHeaderLen {
		return dropped(drop.TooShort)
	}
	h := ipv4(p)
	if h.version() != 4 {
		return dropped(drop.BadVersion)
	}
	hl := h.headerLen()
	if hl < ipv4MinHeaderLen || hl > len(p) {
		return dropped(drop.BadHeaderLength)
	}
	tl := h.totalLen()
	if tl < hl || tl > len(p) {
		return dropped(drop.BadTotalLength)
	}
	if !checksumValid(p[:hl], 0) {
		return dropped(drop.BadHeaderChecksum)
	}
	p = p[:tl]
	h = ipv4(p)
	src4, dst4 := h.src(), h.dst()
	// §4.1 "Source Address": illegal sources are silently discarded.
	if illegalSource4(src4) {
		return dropped(drop.IllegalSource)
	}
	if illegalDestination4(dst4) {
		return dropped(drop.IllegalDestination)
	}

	proto := h.protocol()
	fragOff := h.fragOffset()
	id, mf := h.id(), h.mf()
	isFrag := mf || fragOff != 0
	first := fragOff == 0
	payload := p[hl:]
	if fragOff+len(payload) > ipv4MaxTotalLen {
		return dropped(drop.BadTotalLength) // a fragment reaching past 64 KiB
	}

	if unrepresentableIn6(proto) {
		return dropped(drop.UnknownNextHeader)
	}
	nh := proto
	icmpErr := false
	computeUDP := false
	switch proto {
	case protoIGMP:
		return dropped(drop.ICMPSingleHop) // §4.2 "IGMP messages"
	case protoICMPv6:
		return dropped(drop.ProtocolMismatch)
	case protoICMPv4:
		nh = protoICMPv6
		// §4.2: the ICMPv6 checksum covers a pseudo-header with the length
		// of the whole message, which a fragment does not show.
		if isFrag {
			return dropped(drop.FragmentedICMP)
		}
		if len(payload) < icmpHeaderLen {
			return dropped(drop.ICMPTooShort)
		}
		kind, r := classifyICMPv4(payload[icmpType])
		if kind == icmpDrop {
			return dropped(r)
		}
		icmpErr = kind == icmpError
	case protoTCP:
		if first && len(payload) < tcpMinLen {
			return dropped(drop.TooShort)
		}
	case protoUDP:
		if first {
			if len(payload) < udpHeaderLen {
				return dropped(drop.TooShort)
			}
			if be16(payload[udpChecksum:]) == 0 {
				// §4.5: zero UDP checksum.
				switch {
				case t.cfg.UDPZeroChecksum == UDPZeroDrop:
					return dropped(drop.ZeroUDPChecksum)
				case isFrag:
					return dropped(drop.FragmentedZeroUDP)
				case int(be16(payload[udpLength:])) != len(payload):
					return dropped(drop.BadTotalLength)
				}
				computeUDP = true
			}
		}
	}

	// §4.1 "Source Address", "Destination Address": Section 6 mapping.
	dst6, ok := t.cfg.Mapper.To6(dst4)
	if !ok {
		return dropped(drop.NoMappingDestination)
	}
	src6, ok := t.cfg.Mapper.To6(src4)
	if !ok {
		// RFC 6791-style: an ICMPv4 error from an IPv4 router with no
		// mapping still reaches the IPv6 node, from ICMPSource6.
		if !icmpErr || !t.hasICMPSrc6 {
			return dropped(drop.NoMappingSource)
		}
		src6 = t.icmpSrc6
	}

	// §4.1: an unexpired source route is refused with ICMPv4 3/5; no error
	// answers an ICMPv4 error (§4.4).
	if hasUnexpiredSourceRoute(p[ipv4MinHeaderLen:hl]) {
		if icmpErr {
			return dropped(drop.SourceRoute)
		}
		return t.generateICMPv4Error(p, icmp4DestUnreachable, icmp4CodeSourceRoute, 0, drop.SourceRoute)
	}

	// §4.1 "Hop Limit": only a router decrements (RFC 6535 §2.3: the host
	// translator is not a hop).
	hop := h.ttl()
	if t.cfg.Router {
		if hop <= 1 {
			if icmpErr {
				return dropped(drop.TTLExceeded)
			}
			return t.generateICMPv4Error(p, icmp4TimeExceeded, 0, 0, drop.TTLExceeded)
		}
		hop--
	}
	tc := h.tos()
	if t.cfg.IgnoreTOS {
		tc = 0
	}

	if icmpErr {
		return t.icmpError4to6(p, hl, tc, hop, &src6, &dst6)
	}

	// §4.1: packet size and DF.
	hdr6 := ipv6HeaderLen
	if isFrag {
		hdr6 += fragHeaderLen
	}
	size6 := hdr6 + len(payload)
	if t.gsoSeg > 0 && len(payload) >= tcpMinLen {
		size6 = hdr6 + int(payload[12]>>4)*4 + t.gsoSeg // one segment
	}
	refragment := false
	if h.df() {
		if size6 > t.cfg.IPv6MTU {
			// "MUST send an ICMPv4 Fragmentation Needed": the MTU an IPv4
			// packet must fit so that its translation fits.
			mtu := t.cfg.IPv6MTU - (hdr6 - ipv4MinHeaderLen)
			return t.generateICMPv4Error(p, icmp4DestUnreachable, icmp4CodeFragNeeded, uint16(mtu), drop.FragmentNeeded)
		}
	} else if size6 > t.cfg.LowestIPv6MTU {
		refragment = true
	}

	// §4.5 / §4.2: transport checksums. Lengths do not change, so the
	// update is incremental; only a missing UDP checksum is computed.
	if first {
		switch proto {
		case protoTCP:
			c := payload[tcpChecksum:]
			if t.gsoSeg > 0 {
				put16(c, pseudoHeaderSum6(&src6, &dst6, protoTCP, len(payload)))
				break
			}
			put16(c, pseudoAdjust4to6(be16(c), src4, dst4, &src6, &dst6))
		case protoUDP:
			c := payload[udpChecksum:]
			if computeUDP {
				sum := pseudoHeaderSum6(&src6, &dst6, protoUDP, len(payload))
				put16(c, udpChecksumOut(checksumOf(payload, sum)))
			} else {
				put16(c, udpChecksumOut(pseudoAdjust4to6(be16(c), src4, dst4, &src6, &dst6)))
			}
		case protoICMPv4:
			translateEcho4to6(icmp(payload), &src6, &dst6, len(payload))
		}
	}

	if refragment {
		return t.fragment4to6(payload, tc, nh, hop, &src6, &dst6, id, fragOff, mf)
	}

	start := off + hl - hdr6
	if start < 0 {
		// Not enough headroom: move the packet (already updated) into
		// scratch space that has it.
		n := copy(t.in[Headroom:], p)
		buf, off = t.in[:Headroom+n], Headroom
		start = off + hl - hdr6
	}
	out := buf[start : off+tl]
	if isFrag {
		writeIPv6(out, tc, len(payload)+fragHeaderLen, protoFragment, hop, &src6, &dst6)
		writeFragment(out[ipv6HeaderLen:], nh, fragOff, mf, id)
	} else {
		writeIPv6(out, tc, len(payload), nh, hop, &src6, &dst6)
	}
	return t.one(Translated, drop.None, out)
}

// unrepresentableIn6 reports whether IPv4 protocol number proto, copied
// into an IPv6 Next Header (§4.1 "Next Header"), would make the receiver
// parse the payload as one of the IPv6 headers that §5.1 skips or
// interprets (Hop-by-Hop, Routing, Fragment, Destination Options), which
// are not there. Every other protocol number is copied, as the RFC asks.
func unrepresentableIn6(proto uint8) bool {
	switch proto {
	case protoHopByHop, protoRouting, protoFragment, protoDestOpts:
		return true
	}
	return false
}

// hasUnexpiredSourceRoute reports whether the IPv4 options opts hold a Loose
// or Strict Source Route whose pointer has not passed the end of the route
// (RFC 791 §3.1: the route is exhausted when pointer > length). Malformed
// options end the scan: options are otherwise ignored (RFC 7915 §4.1).
func hasUnexpiredSourceRoute(opts []byte) bool {
	for len(opts) > 0 {
		switch opts[0] {
		case optEnd:
			return false
		case optNOP:
			opts = opts[1:]
			continue
		}
		if len(opts) < 2 {
			return false
		}
		l := int(opts[1])
		if l < 2 || l > len(opts) {
			return false
		}
		if (opts[0] == optLSRR || opts[0] == optSSRR) && l >= 3 && int(opts[2]) <= l {
			return true
		}
		opts = opts[l:]
	}
	return false
}

// translateEcho4to6 turns an ICMPv4 echo request/reply into ICMPv6 in place
// (§4.2 "Echo and Echo Reply"): new type, and the checksum adjusted for the
// type change and for the ICMPv6 pseudo-header that ICMPv4 lacks.
func translateEcho4to6(m icmp, src6, dst6 *[16]byte, msgLen int) {
	old := m.typeCode()
	if m[icmpType] == icmp4EchoRequest {
		m[icmpType] = icmp6EchoRequest
	} else {
		m[icmpType] = icmp6EchoReply
	}
	newSum := combine(m.typeCode(), pseudoHeaderSum6(src6, dst6, protoICMPv6, msgLen))
	m.setChecksum(updateChecksum(m.checksum(), old, newSum))
}

// fragment4to6 emits the IPv6 fragments of an IPv4 packet (or fragment)
// with DF clear whose translation exceeds LowestIPv6MTU (§4.1: "SHOULD be
// fragmented so that the resulting IPv6 packet (with Fragment Header added
// to each fragment) will be less than or equal to lowest-ipv6-mtu").
// payload is the IPv4 payload, transport checksum already translated;
// fragOff and mf are the IPv4 fragment fields (zero, false when whole).
func (t *Translator) fragment4to6(payload []byte, tc, nh, hop uint8, src6, dst6 *[16]byte, id uint16, fragOff int, mf bool) Result {
	chunk := (t.cfg.LowestIPv6MTU - ipv6HeaderLen - fragHeaderLen) &^ 7
	t.pkts = t.pkts[:0]
	pos := 0
	for done := 0; done < len(payload); {
		n := min(chunk, len(payload)-done)
		last := done+n == len(payload)
		pkt := t.out[pos : pos+ipv6HeaderLen+fragHeaderLen+n]
		writeIPv6(pkt, tc, fragHeaderLen+n, protoFragment, hop, src6, dst6)
		writeFragment(pkt[ipv6HeaderLen:], nh, fragOff+done, !last || mf, id)
		copy(pkt[ipv6HeaderLen+fragHeaderLen:], payload[done:done+n])
		t.pkts = append(t.pkts, pkt)
		pos += len(pkt)
		done += n
	}
	return Result{Action: Translated, Packets: t.pkts}
}
