package translate

import "github.com/bih-nfq/bih-nfq/internal/drop"

// RFC 4884 §4: when an extension structure follows, the "original datagram"
// field holds at least 128 octets, zero padded to 32-bit (ICMPv4) or 64-bit
// (ICMPv6) words, and the length attribute counts those words.
const rfc4884MinOriginal = 128

// icmpError4to6 translates the ICMPv4 error message in p[hl:] (RFC 7915
// §4.2, §4.3) into an ICMPv6 error in scratch space: new type, code and
// second word, the embedded IPv4 packet translated one level deep (its
// TTL kept), the RFC 4884 extension carried with its length attribute
// recounted in 64-bit words, the whole kept within 1280 bytes, outer length
// and checksum recomputed. The outer addresses and hop limit are already
// translated.
func (t *Translator) icmpError4to6(p []byte, hl int, tc, hop uint8, src6, dst6 *[16]byte) Result {
	m := icmp(p[hl:])
	// The checksum is recomputed below; verify first so that a corrupt
	// message does not leave with a valid checksum.
	if !checksumValid(m, 0) {
		return dropped(drop.BadChecksum)
	}
	x, r := mapICMPv4Error(m.typ(), m.code(), m[icmpRest])
	if r != drop.None {
		return dropped(r)
	}
	orig, ext := split4884(m[icmpHeaderLen:], int(m[icmp4Length])*4)
	if orig == nil {
		return dropped(drop.ICMPBadExtension)
	}
	if !x.hasLen {
		ext = nil // the ICMPv6 type has no length attribute to describe it
	}

	// The embedded packet (§4.3).
	if len(orig) < ipv4MinHeaderLen {
		return dropped(drop.ICMPTooShort)
	}
	in := ipv4(orig)
	ihl := in.headerLen()
	if in.version() != 4 || ihl < ipv4MinHeaderLen || ihl > len(orig) {
		return dropped(drop.ICMPInnerMalformed)
	}
	itl := in.totalLen()
	if itl < ihl {
		return dropped(drop.ICMPInnerMalformed)
	}
	inPayload := orig[ihl:]
	if len(inPayload) > itl-ihl {
		inPayload = inPayload[:itl-ihl] // drop RFC 4884 or link padding
	}
	iproto := in.protocol()
	if unrepresentableIn6(iproto) {
		return dropped(drop.ICMPInnerMalformed)
	}
	inh := iproto
	ifragOff := in.fragOffset()
	ifrag := in.mf() || ifragOff != 0
	if iproto == protoICMPv4 {
		inh = protoICMPv6
		if ifragOff == 0 && len(inPayload) > 0 {
			if isICMPv4Error(inPayload[icmpType]) {
				return dropped(drop.ICMPNestedError)
			}
			if k, _ := classifyICMPv4(inPayload[icmpType]); k != icmpEcho {
				return dropped(drop.ICMPInnerMalformed)
			}
		}
	} else if iproto == protoICMPv6 {
		return dropped(drop.ICMPInnerMalformed)
	}
	isrc4, idst4 := in.src(), in.dst()
	isrc6, ok := t.cfg.Mapper.To6(isrc4)
	if !ok {
		return dropped(drop.ICMPInnerMalformed)
	}
	idst6, ok := t.cfg.Mapper.To6(idst4)
	if !ok {
		return dropped(drop.ICMPInnerMalformed)
	}
	itc := in.tos()
	if t.cfg.IgnoreTOS {
		itc = 0
	}

	// Layout: IPv6 | ICMPv6 header | inner IPv6 (+Fragment) | inner data
	// [| zero padding | extension], at most 1280 bytes.
	const maxMsg = maxICMPv6ErrorLen - ipv6HeaderLen
	innerHdr := ipv6HeaderLen
	if ifrag {
		innerHdr += fragHeaderLen
	}
	body := innerHdr + len(inPayload)
	field := 0 // padded original-datagram length when ext != nil
	if ext != nil {
		maxOrig := (maxMsg - icmpHeaderLen - len(ext)) &^ 7
		if maxOrig < rfc4884MinOriginal {
			ext = nil // §4.2: an extension that does not fit is dropped
		} else {
			body = min(body, maxOrig)
			field = max(rfc4884MinOriginal, (body+7)&^7)
		}
	}
	if ext == nil {
		body = min(body, maxMsg-icmpHeaderLen)
		field = body
	}
	msgLen := icmpHeaderLen + field + len(ext)
	out := t.out[:ipv6HeaderLen+msgLen]
	msg := icmp(out[ipv6HeaderLen:])
	inner := msg[icmpHeaderLen:]

	ipl := itl - ihl // from the header field: the packet as it was sent
	if ifrag {
		writeIPv6(inner, itc, ipl+fragHeaderLen, protoFragment, in.ttl(), &isrc6, &idst6)
		writeFragment(inner[ipv6HeaderLen:], inh, ifragOff, in.mf(), in.id())
	} else {
		writeIPv6(inner, itc, ipl, inh, in.ttl(), &isrc6, &idst6)
	}
	ip := inner[innerHdr:body]
	copy(ip, inPayload)
	clear(inner[body:field])
	copy(inner[field:], ext)
	if ifragOff == 0 {
		fixInnerTransport4to6(iproto, ip, isrc4, idst4, &isrc6, &idst6, ipl)
	}

	msg[icmpType], msg[icmpCode] = x.typ, x.code
	put16(msg[icmpChecksum:], 0)
	switch {
	case x.isPTB:
		put32(msg[icmpRest:], t.mtu4to6(be16(m[icmp4MTU:]), itl))
	case x.hasLen:
		put32(msg[icmpRest:], 0)
		if ext != nil {
			msg[icmpRest] = uint8(field / 8) // RFC 4884 §4.4, §4.5
		}
	default:
		put32(msg[icmpRest:], x.param)
	}
	writeIPv6(out, tc, msgLen, protoICMPv6, hop, src6, dst6)
	msg.setChecksum(checksumOf(msg, pseudoHeaderSum6(src6, dst6, protoICMPv6, msgLen)))
	return t.one(Translated, drop.None, out)
}

// split4884 splits the data after an ICMP error header into the original
// datagram field and the RFC 4884 extension structure, given the length
// attribute in bytes (0: no extension). It returns nil when the attribute
// points past the end of the message.
func split4884(rest []byte, n int) (orig, ext []byte) {
	if n == 0 {
		return rest, nil
	}
	if n > len(rest) {
		return nil, nil
	}
	if n == len(rest) {
		return rest, nil
	}
	return rest[:n], rest[n:]
}

// fixInnerTransport4to6 updates the checksum of the embedded transport
// header, when present in the truncated data, for the translated addresses
// (and type, for an embedded echo), so that the receiver can match the
// error to its socket. Lengths are those of the original packet.
func fixInnerTransport4to6(proto uint8, ip []byte, src4, dst4 [4]byte, src6, dst6 *[16]byte, upperLen int) {
	switch proto {
	case protoTCP:
		if len(ip) >= tcpChecksum+2 {
			c := ip[tcpChecksum:]
			put16(c, pseudoAdjust4to6(be16(c), src4, dst4, src6, dst6))
		}
	case protoUDP:
		if len(ip) >= udpHeaderLen && be16(ip[udpChecksum:]) != 0 {
			c := ip[udpChecksum:]
			put16(c, udpChecksumOut(pseudoAdjust4to6(be16(c), src4, dst4, src6, dst6)))
		}
	case protoICMPv4:
		if len(ip) >= 4 {
			translateEcho4to6(icmp(ip), src6, dst6, upperLen)
		}
	}
}

// icmpError6to4 translates the ICMPv6 error message in p[l4:] (RFC 7915
// §5.2, §5.3) into an ICMPv4 error in scratch space: new type, code and
// second word, the embedded IPv6 packet translated one level deep (its hop
// limit kept), the RFC 4884 extension carried with its length attribute
// recounted in 32-bit words, the whole kept within 576 bytes, outer length
// and checksum recomputed.
func (t *Translator) icmpError6to4(p []byte, l4 int, tos, ttl uint8, src4, dst4 [4]byte, src6, dst6 *[16]byte) Result {
	m := icmp(p[l4:])
	if !checksumValid(m, pseudoHeaderSum6(src6, dst6, protoICMPv6, len(m))) {
		return dropped(drop.BadChecksum)
	}
	x, r := mapICMPv6Error(m.typ(), m.code(), be32(m[icmpRest:]))
	if r != drop.None {
		return dropped(r)
	}
	lenAttr := 0
	if m.typ() == icmp6DestUnreachable || m.typ() == icmp6TimeExceeded {
		lenAttr = int(m[icmpRest]) * 8 // RFC 4884 §4.4, §4.5
	}
	orig, ext := split4884(m[icmpHeaderLen:], lenAttr)
	if orig == nil {
		return dropped(drop.ICMPBadExtension)
	}
	if !x.hasLen {
		ext = nil
	}

	// The embedded packet (§5.3).
	if len(orig) < ipv6HeaderLen {
		return dropped(drop.ICMPTooShort)
	}
	in := ipv6(orig)
	if in.version() != 6 {
		return dropped(drop.ICMPInnerMalformed)
	}
	c, ok := walkInnerIPv6(orig)
	if !ok {
		return dropped(drop.ICMPInnerMalformed)
	}
	extLen := c.upper - ipv6HeaderLen
	ipl := in.payloadLen() - extLen // upper-layer length as sent
	if ipl < 0 || ipl+ipv4MinHeaderLen > ipv4MaxTotalLen {
		return dropped(drop.ICMPInnerMalformed)
	}
	inPayload := orig[c.upper:]
	if len(inPayload) > ipl {
		inPayload = inPayload[:ipl]
	}
	iproto := c.nh
	switch c.nh {
	case protoICMPv6:
		iproto = protoICMPv4
		if c.fragOff == 0 && len(inPayload) > 0 {
			if isICMPv6Error(inPayload[icmpType]) {
				return dropped(drop.ICMPNestedError)
			}
			if k, _ := classifyICMPv6(inPayload[icmpType]); k != icmpEcho {
				return dropped(drop.ICMPInnerMalformed)
			}
		}
	case protoICMPv4:
		return dropped(drop.ICMPInnerMalformed)
	}
	isrc6, idst6 := in.src(), in.dst()
	isrc4, ok := t.cfg.Mapper.To4(isrc6)
	if !ok {
		return dropped(drop.ICMPInnerMalformed)
	}
	idst4, ok := t.cfg.Mapper.To4(idst6)
	if !ok {
		return dropped(drop.ICMPInnerMalformed)
	}
	itos := in.trafficClass()
	if t.cfg.IgnoreTOS {
		itos = 0
	}

	// Layout: IPv4 | ICMPv4 header | inner IPv4 | inner data [| zero
	// padding | extension], at most 576 bytes.
	const maxMsg = maxICMPv4ErrorLen - ipv4MinHeaderLen
	body := ipv4MinHeaderLen + len(inPayload)
	field := 0
	if ext != nil {
		maxOrig := (maxMsg - icmpHeaderLen - len(ext)) &^ 3
		if maxOrig < rfc4884MinOriginal {
			ext = nil
		} else {
			body = min(body, maxOrig)
			field = max(rfc4884MinOriginal, (body+3)&^3)
		}
	}
	if ext == nil {
		body = min(body, maxMsg-icmpHeaderLen)
		field = body
	}
	msgLen := icmpHeaderLen + field + len(ext)
	out := t.out[:ipv4MinHeaderLen+msgLen]
	msg := icmp(out[ipv4MinHeaderLen:])
	inner := msg[icmpHeaderLen:]

	itl := ipv4MinHeaderLen + ipl
	f := ipv4Fields{tos: itos, totalLen: itl, ttl: in.hopLimit(), protocol: iproto, src: isrc4, dst: idst4}
	if c.hasFrag {
		f.id, f.mf, f.fragOff = uint16(c.fragID), c.fragM, c.fragOff
	} else {
		// The original IPv4 identification is unknown here; DF as §5.1
		// would have set it.
		f.df = itl > dfThreshold
	}
	writeIPv4(inner, &f)
	ip := inner[ipv4MinHeaderLen:body]
	copy(ip, inPayload)
	clear(inner[body:field])
	copy(inner[field:], ext)
	if c.fragOff == 0 {
		fixInnerTransport6to4(c.nh, ip, &isrc6, &idst6, isrc4, idst4, ipl)
	}

	msg[icmpType], msg[icmpCode] = x.typ, x.code
	put16(msg[icmpChecksum:], 0)
	put32(msg[icmpRest:], 0)
	switch {
	case x.isPTB:
		put16(msg[icmp4MTU:], t.mtu6to4(be32(m[icmpRest:])))
	case x.hasLen:
		if ext != nil {
			msg[icmp4Length] = uint8(field / 4) // RFC 4884 §4.1, §4.2
		}
	case x.typ == icmp4ParamProblem:
		msg[icmpRest] = uint8(x.param)
	}
	msg.setChecksum(checksumOf(msg, 0))
	writeIPv4(out, &ipv4Fields{
		tos:      tos,
		totalLen: len(out),
		id:       t.nextID(),
		ttl:      ttl,
		protocol: protoICMPv4,
		src:      src4,
		dst:      dst4,
	})
	return t.one(Translated, drop.None, out)
}

// walkInnerIPv6 walks the extension headers of an IPv6 packet embedded in
// an ICMPv6 error. Unlike walkIPv6 it skips a Routing header whatever its
// Segments Left (the packet is quoted, not forwarded); ok is false when the
// chain is truncated or cannot be represented in IPv4.
func walkInnerIPv6(p []byte) (ipv6Chain, bool) {
	c, r := walkIPv6(p)
	return c, r == drop.None
}

// fixInnerTransport6to4 is the inverse of fixInnerTransport4to6.
func fixInnerTransport6to4(nh uint8, ip []byte, src6, dst6 *[16]byte, src4, dst4 [4]byte, upperLen int) {
	switch nh {
	case protoTCP:
		if len(ip) >= tcpChecksum+2 {
			c := ip[tcpChecksum:]
			put16(c, pseudoAdjust6to4(be16(c), src6, dst6, src4, dst4))
		}
	case protoUDP:
		if len(ip) >= udpHeaderLen && be16(ip[udpChecksum:]) != 0 {
			c := ip[udpChecksum:]
			put16(c, udpChecksumOut(pseudoAdjust6to4(be16(c), src6, dst6, src4, dst4)))
		}
	case protoICMPv6:
		if len(ip) >= 4 {
			translateEcho6to4(icmp(ip), src6, dst6, upperLen)
		}
	}
}
