// Package translate implements stateless IP/ICMP translation (SIIT, RFC 7915)
// between IPv4 and IPv6, for bih-nfq's Bump-in-the-Host data path (RFC 6535).
//
// It is pure Go with no Linux-only imports: it sees byte slices, never sockets.
// A Translator is not safe for concurrent use; give each worker its own (they
// may share one Mapper, which must then be safe for concurrent use).
package translate

import (
	"net/netip"

	"github.com/bih-nfq/bih-nfq/internal/drop"
)

// Headroom is the space a caller should leave in front of an IPv4 packet so
// that Translate4to6 can write the larger IPv6 header (40 bytes, plus an 8-byte
// Fragment header) in place without copying the payload.
const Headroom = 64

// Mapper maps addresses between the families (RFC 7915 §6: the translator's
// address mapping; RFC 7757 explicit mappings, RFC 6052 prefixes and bih-nfq's
// dynamic pool all implement it). Implementations used by several workers
// must be safe for concurrent use and must not allocate.
type Mapper interface {
	// To6 returns the IPv6 address that represents IPv4 address a.
	To6(a [4]byte) ([16]byte, bool)
	// To4 returns the IPv4 address that represents IPv6 address a.
	To4(a [16]byte) ([4]byte, bool)
}

// ErrorSourceMapper is optionally implemented by a Mapper that can create a
// mapping on demand for the IPv6 source of an ICMPv6 error (an IPv6 router on
// the path, e.g. a traceroute hop: RFC 6535 §2.4 case 3). The translator asks
// it only when To4 fails for an ICMPv6 error's source, before falling back to
// Config.ICMPSource4 (RFC 6791).
type ErrorSourceMapper interface {
	ErrorSourceTo4(a [16]byte) ([4]byte, bool)
}

// UDPZeroChecksum says what to do with IPv4 UDP packets whose checksum is zero
// (RFC 7915 §4.5).
type UDPZeroChecksum uint8

const (
	// UDPZeroCompute computes the checksum for unfragmented packets and drops
	// fragments (the default).
	UDPZeroCompute UDPZeroChecksum = iota
	// UDPZeroDrop drops every IPv4 UDP packet with a zero checksum.
	UDPZeroDrop
)

// Config holds the translator's settings. The zero value is not usable: Mapper
// is required; New fills the documented defaults for zero numeric fields.
type Config struct {
	// Mapper maps both addresses of every translated packet.
	Mapper Mapper
	// ICMPSource4 is the RFC 6791 IPv4 source used for ICMPv4 errors
	// translated from ICMPv6 errors whose source has no mapping. Invalid (zero)
	// means such errors are dropped.
	ICMPSource4 netip.Addr
	// ICMPSource6 is the RFC 6791-style IPv6 source used for ICMPv6 errors
	// translated from ICMPv4 errors whose source has no mapping, and for ICMPv6
	// errors the translator itself generates toward the IPv6 side.
	ICMPSource6 netip.Addr
	// Router selects router mode: decrement TTL/hop limit and generate Time
	// Exceeded. Host mode (false, RFC 6535) leaves them alone.
	Router bool
	// IgnoreTOS sets the IPv6 traffic class / IPv4 TOS to zero instead of
	// copying it (RFC 7915 §4.1 "Traffic Class", §5.1 "Type of Service").
	IgnoreTOS bool
	// LowestIPv6MTU is the size IPv4 packets with DF=0 are fragmented to
	// (RFC 7915 §4, "lowest-ipv6-mtu"). Default 1280.
	LowestIPv6MTU int
	// IPv6MTU is the next-hop MTU on the IPv6 side. Default 1500.
	IPv6MTU int
	// IPv4MTU is the next-hop MTU on the IPv4 side. Default 1500.
	IPv4MTU int
	// UDPZeroChecksum selects compute (default) or drop.
	UDPZeroChecksum UDPZeroChecksum
}

// Action is what became of one input packet.
type Action uint8

const (
	// Translated: Result.Packets hold the translation (in the other family),
	// one packet or several fragments.
	Translated Action = iota + 1
	// Dropped: nothing to emit; Result.Reason says why.
	Dropped
	// GeneratedError: the input was refused and Result.Packets holds one ICMP
	// error addressed back to the input's source, in the input's family;
	// Result.Reason says why the input was refused.
	GeneratedError
)

func (a Action) String() string {
	switch a {
	case Translated:
		return "translated"
	case Dropped:
		return "dropped"
	case GeneratedError:
		return "generated-error"
	}
	return "unknown"
}

// Result describes the outcome of one Translate call. Packets alias buffers
// owned by the Translator (or the caller's input buffer) and are valid only
// until the next call on the same Translator.
type Result struct {
	Action  Action
	Reason  drop.Reason
	Packets [][]byte
}
