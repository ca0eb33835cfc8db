package translate

import "github.com/bih-nfq/bih-nfq/internal/drop"

// ICMPv4 types and codes (RFC 792, RFC 1191, RFC 1812).
const (
	icmp4EchoReply       = 0
	icmp4DestUnreachable = 3
	icmp4SourceQuench    = 4
	icmp4Redirect        = 5
	icmp4AltHostAddress  = 6
	icmp4EchoRequest     = 8
	icmp4RouterAdvert    = 9
	icmp4RouterSolicit   = 10
	icmp4TimeExceeded    = 11
	icmp4ParamProblem    = 12
	icmp4Timestamp       = 13
	icmp4TimestampReply  = 14
	icmp4InfoRequest     = 15
	icmp4InfoReply       = 16
	icmp4MaskRequest     = 17
	icmp4MaskReply       = 18

	icmp4CodeProtoUnreachable = 2
	icmp4CodeFragNeeded       = 4
	icmp4CodeSourceRoute      = 5
)

// ICMPv6 types and codes (RFC 4443, RFC 4861, RFC 2710, RFC 3810).
const (
	icmp6DestUnreachable = 1
	icmp6PacketTooBig    = 2
	icmp6TimeExceeded    = 3
	icmp6ParamProblem    = 4
	icmp6EchoRequest     = 128
	icmp6EchoReply       = 129
	icmp6MLDQuery        = 130
	icmp6MLDReport       = 131
	icmp6MLDDone         = 132
	icmp6RouterSolicit   = 133
	icmp6Redirect        = 137
	icmp6MLDv2Report     = 143

	icmp6CodeUnrecognizedNH = 1
)

type icmpKind uint8

const (
	icmpDrop icmpKind = iota
	icmpEcho
	icmpError
)

// classifyICMPv4 sorts an ICMPv4 type per RFC 7915 §4.2: echo is translated,
// the three error types are translated with their embedded packet, the rest
// are single-hop, obsolete or unknown and silently dropped.
func classifyICMPv4(typ uint8) (icmpKind, drop.Reason) {
	switch typ {
	case icmp4EchoRequest, icmp4EchoReply:
		return icmpEcho, drop.None
	case icmp4DestUnreachable, icmp4TimeExceeded, icmp4ParamProblem:
		return icmpError, drop.None
	case icmp4Redirect, icmp4RouterAdvert, icmp4RouterSolicit,
		icmp4SourceQuench, icmp4AltHostAddress,
		icmp4Timestamp, icmp4TimestampReply, icmp4InfoRequest, icmp4InfoReply,
		icmp4MaskRequest, icmp4MaskReply:
		return icmpDrop, drop.ICMPSingleHop
	}
	return icmpDrop, drop.ICMPUnknownType
}

// classifyICMPv6 sorts an ICMPv6 type per RFC 7915 §5.2. Neighbor Discovery
// and MLD are never translated.
func classifyICMPv6(typ uint8) (icmpKind, drop.Reason) {
	switch {
	case typ == icmp6EchoRequest || typ == icmp6EchoReply:
		return icmpEcho, drop.None
	case typ >= icmp6DestUnreachable && typ <= icmp6ParamProblem:
		return icmpError, drop.None
	case typ >= icmp6MLDQuery && typ <= icmp6Redirect, typ == icmp6MLDv2Report:
		return icmpDrop, drop.ICMPSingleHop
	}
	return icmpDrop, drop.ICMPUnknownType
}

// isICMPv4Error and isICMPv6Error recognise errors embedded in errors
// (§4.3, §5.3: translation stops at the first embedded header). Every ICMPv6
// type below 128 is an error (RFC 4443 §2.1).
func isICMPv4Error(typ uint8) bool {
	k, _ := classifyICMPv4(typ)
	return k == icmpError || typ == icmp4SourceQuench || typ == icmp4Redirect
}

func isICMPv6Error(typ uint8) bool { return typ < 128 }

// errorXlat is the outcome of mapping an ICMP error's type and code.
type errorXlat struct {
	typ, code uint8
	// param is the second word of the translated header: MTU or pointer
	// (filled by the caller for Packet Too Big).
	param  uint32
	isPTB  bool // Packet Too Big / Fragmentation Needed: caller computes MTU
	hasLen bool // the translated type carries an RFC 4884 length attribute
}

// pointer4to6 is RFC 7915 Figure 3; -1 is "n/a" or not listed.
var pointer4to6 = [20]int8{0, 1, 4, 4, -1, -1, -1, -1, 7, 6, -1, -1, 8, 8, 8, 8, 24, 24, 24, 24}

// mapICMPv4Error maps an ICMPv4 error type/code to ICMPv6 (§4.2 "ICMPv4
// error messages"). pointer is the ICMPv4 Parameter Problem pointer.
func mapICMPv4Error(typ, code, pointer uint8) (errorXlat, drop.Reason) {
	switch typ {
	case icmp4DestUnreachable:
		x := errorXlat{typ: icmp6DestUnreachable, hasLen: true}
		switch code {
		case 0, 1, 5, 6, 7, 8, 11, 12:
			x.code = 0 // no route to destination
		case 2:
			// Protocol Unreachable → Parameter Problem 4/1 at Next Header.
			return errorXlat{typ: icmp6ParamProblem, code: icmp6CodeUnrecognizedNH, param: v6NextHeader}, drop.None
		case 3:
			x.code = 4 // port unreachable
		case 4:
			return errorXlat{typ: icmp6PacketTooBig, isPTB: true}, drop.None
		case 9, 10, 13, 15:
			x.code = 1 // administratively prohibited
		default: // 14 (host precedence violation) and unknown codes
			return x, drop.ICMPUnknownType
		}
		return x, drop.None
	case icmp4TimeExceeded:
		if code > 1 {
			return errorXlat{}, drop.ICMPUnknownType
		}
		return errorXlat{typ: icmp6TimeExceeded, code: code, hasLen: true}, drop.None
	case icmp4ParamProblem:
		if code != 0 && code != 2 { // code 1 "missing a required option" and unknown
			return errorXlat{}, drop.ICMPUnknownType
		}
		if int(pointer) >= len(pointer4to6) || pointer4to6[pointer] < 0 {
			return errorXlat{}, drop.ICMPUnknownType
		}
		return errorXlat{typ: icmp6ParamProblem, code: 0, param: uint32(pointer4to6[pointer])}, drop.None
	}
	return errorXlat{}, drop.ICMPUnknownType
}

// pointer6to4 is RFC 7915 Figure 6; -1 is "n/a" or not listed.
var pointer6to4 = [40]int8{
	0, 1, -1, -1, 2, 2, 9, 8,
	12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12,
	16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16,
}

// mapICMPv6Error maps an ICMPv6 error type/code to ICMPv4 (§5.2 "ICMPv6
// error messages"). pointer is the ICMPv6 Parameter Problem pointer.
func mapICMPv6Error(typ, code uint8, pointer uint32) (errorXlat, drop.Reason) {
	switch typ {
	case icmp6DestUnreachable:
		x := errorXlat{typ: icmp4DestUnreachable, hasLen: true}
		switch code {
		case 0, 2, 3:
			x.code = 1 // host unreachable
		case 1:
			x.code = 10 // host administratively prohibited
		case 4:
			x.code = 3 // port unreachable
		default:
			return x, drop.ICMPUnknownType
		}
		return x, drop.None
	case icmp6PacketTooBig:
		return errorXlat{typ: icmp4DestUnreachable, code: icmp4CodeFragNeeded, isPTB: true}, drop.None
	case icmp6TimeExceeded:
		if code > 1 {
			return errorXlat{}, drop.ICMPUnknownType
		}
		return errorXlat{typ: icmp4TimeExceeded, code: code, hasLen: true}, drop.None
	case icmp6ParamProblem:
		switch code {
		case 0:
			if pointer >= uint32(len(pointer6to4)) || pointer6to4[pointer] < 0 {
				return errorXlat{}, drop.ICMPUnknownType
			}
			return errorXlat{typ: icmp4ParamProblem, param: uint32(pointer6to4[pointer])}, drop.None
		case 1:
			return errorXlat{typ: icmp4DestUnreachable, code: icmp4CodeProtoUnreachable}, drop.None
		}
	}
	return errorXlat{}, drop.ICMPUnknownType
}

// plateaus are the RFC 1191 §7 MTU plateaus at or above the IPv6 minimum,
// greatest first (65535, 32000, 17914, 8166, 4352, 2002, 1492).
var plateaus = [...]int{65535, 32000, 17914, 8166, 4352, 2002, 1492}

// mtu4to6 computes the ICMPv6 Packet Too Big MTU from an ICMPv4
// Fragmentation Needed (§4.2 "Code 4"): max(1280, min(MTU+20,
// MTU_of_IPv6_nexthop, MTU_of_IPv4_nexthop+20)). A zero MTU (a router that
// predates RFC 1191) is replaced by the greatest plateau less than the
// returned Total Length and at least 1280.
func (t *Translator) mtu4to6(mtu4 uint16, innerTotalLen int) uint32 {
	m := int(mtu4)
	if m == 0 {
		m = minIPv6MTU - 20 // no plateau fits: the result is the IPv6 minimum
		for _, p := range plateaus {
			if p < innerTotalLen {
				m = p
				break
			}
		}
	}
	return uint32(max(minIPv6MTU, min(m+20, t.cfg.IPv6MTU, t.cfg.IPv4MTU+20)))
}

// mtu6to4 computes the ICMPv4 Fragmentation Needed MTU from an ICMPv6 Packet
// Too Big (§5.2 "Packet Too Big"): min(MTU-20, MTU_of_IPv4_nexthop,
// MTU_of_IPv6_nexthop-20), kept within the 16-bit field and at least the
// IPv4 minimum of 68.
func (t *Translator) mtu6to4(mtu6 uint32) uint16 {
	m := int64(mtu6) - 20
	m = min(m, int64(t.cfg.IPv4MTU), int64(t.cfg.IPv6MTU-20))
	return uint16(max(m, minIPv4MTU))
}
