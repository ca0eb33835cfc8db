package translate

import "github.com/bih-nfq/bih-nfq/internal/drop"

// icmpErrorTOS is the TOS of generated ICMPv4 errors: precedence 6,
// internetwork control (RFC 1812 §4.3.2.5 SHOULD).
const icmpErrorTOS = 0xc0

// generateICMPv4Error builds the ICMPv4 error the translator sends back to
// the source of the refused IPv4 packet orig (RFC 7915 §4.1 and §4.4):
// Source Route Failed, Time Exceeded or Fragmentation Needed. It carries as
// much of orig as fits in 576 bytes (RFC 1812 §4.3.2.3).
//
// Source address: Config.ICMPSource4 when set; otherwise the destination of
// orig, the pool address the application sent to. On a Bump-in-the-Host the
// translator sits inside the host, so the error appears to come from the
// far end the application knows, which every IPv4 stack accepts for PMTU
// discovery and reports sensibly for the other errors.
func (t *Translator) generateICMPv4Error(orig []byte, typ, code uint8, mtu uint16, r drop.Reason) Result {
	h := ipv4(orig)
	src := h.dst()
	if t.hasICMPSrc4 {
		src = t.icmpSrc4
	}
	n := min(len(orig), maxICMPv4ErrorLen-ipv4MinHeaderLen-icmpHeaderLen)
	total := ipv4MinHeaderLen + icmpHeaderLen + n
	out := t.out[:total]
	writeIPv4(out, &ipv4Fields{
		tos:      icmpErrorTOS,
		totalLen: total,
		id:       t.nextID(),
		ttl:      generatedTTL,
		protocol: protoICMPv4,
		src:      src,
		dst:      h.src(),
	})
	m := icmp(out[ipv4MinHeaderLen:])
	m[icmpType], m[icmpCode] = typ, code
	put16(m[icmpChecksum:], 0)
	put16(m[icmpRest:], 0)
	put16(m[icmp4MTU:], mtu)
	copy(m[icmpHeaderLen:], orig[:n])
	m.setChecksum(checksumOf(m, 0))
	return t.one(GeneratedError, r, out)
}

// generateICMPv6Error builds the ICMPv6 error the translator sends back to
// the source of the refused IPv6 packet orig (RFC 7915 §5.1 and §5.4):
// Parameter Problem for a Routing header, Time Exceeded or Packet Too Big.
// param is the second header word (pointer or MTU). It carries as much of
// orig as fits in 1280 bytes (RFC 4443 §2.4 (c)).
//
// Source address: Config.ICMPSource6 when set; otherwise the destination of
// orig, the address that stands for the IPv4 host (as for ICMPv4 errors,
// the far end the IPv6 sender knows).
func (t *Translator) generateICMPv6Error(orig []byte, typ, code uint8, param uint32, r drop.Reason) Result {
	h := ipv6(orig)
	src, dst := h.dst(), h.src()
	if t.hasICMPSrc6 {
		src = t.icmpSrc6
	}
	n := min(len(orig), maxICMPv6ErrorLen-ipv6HeaderLen-icmpHeaderLen)
	msgLen := icmpHeaderLen + n
	out := t.out[:ipv6HeaderLen+msgLen]
	writeIPv6(out, 0, msgLen, protoICMPv6, generatedTTL, &src, &dst)
	m := icmp(out[ipv6HeaderLen:])
	m[icmpType], m[icmpCode] = typ, code
	put16(m[icmpChecksum:], 0)
	put32(m[icmpRest:], param)
	copy(m[icmpHeaderLen:], orig[:n])
	m.setChecksum(checksumOf(m, pseudoHeaderSum6(&src, &dst, protoICMPv6, msgLen)))
	return t.one(GeneratedError, r, out)
}
