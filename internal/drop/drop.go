// Package drop names every reason bih-nfq refuses a packet or a DNS message.
// One enum serves translate/, enr/, pool/ and queue/ so that a counter, a log
// line and a replay verdict all use the same words.
package drop

import "sync/atomic"

// Reason says why a packet was not translated (or not rewritten). The zero
// value None means "not dropped".
type Reason uint16

// Append new reasons at the end of their group; names are part of the metrics
// and replay-verdict interface, so never rename one.
const (
	None Reason = iota

	// Malformed input (RFC 7915 §4, §5 preconditions).
	TooShort          // shorter than the headers it claims
	BadVersion        // IP version nibble does not match the queue/family
	BadHeaderLength   // IPv4 IHL < 5 or beyond the packet
	BadTotalLength    // IPv4 total length / IPv6 payload length lies
	BadHeaderChecksum // IPv4 header checksum wrong
	BadChecksum       // transport checksum wrong where it must be recomputed
	BadExtensionChain // IPv6 extension headers truncated or looping

	// Addresses (RFC 7915 §4.1, §5.1; RFC 6535 §4).
	NoMappingSource      // source address has no mapping
	NoMappingDestination // destination address has no mapping
	IllegalSource        // unspecified, loopback, multicast, broadcast... source
	IllegalDestination   // loopback, unspecified... destination

	// Header rules.
	SourceRoute       // unexpired IPv4 LSRR/SSRR (ICMPv4 3/5 sent)
	RoutingHeader     // IPv6 Routing header with segments left != 0 (ICMPv6 4/0 sent)
	TTLExceeded       // router mode: TTL/hop limit reached zero (Time Exceeded sent)
	FragmentNeeded    // DF=1 and too big for the IPv6 path (ICMPv4 3/4 sent)
	PacketTooBig      // IPv6 packet too big for the IPv4 next hop (ICMPv6 2/0 sent)
	FragmentedZeroUDP // IPv4 UDP fragment with zero checksum (RFC 7915 §4.5)
	ZeroUDPChecksum   // IPv4 UDP with zero checksum and mode "drop"
	FragmentedICMP    // fragmented ICMP cannot have its checksum translated
	UnknownNextHeader // IPv6 upper layer cannot be represented in IPv4
	ProtocolMismatch  // ICMPv4 in IPv6 or ICMPv6 in IPv4
	AtomicFragment    // IPv6 fragment header carrying a whole packet we cannot map
	TooBigAfterXlat   // output would exceed a limit we cannot fragment around

	// ICMP (RFC 7915 §4.2, §4.3, §5.2, §5.3).
	ICMPTooShort       // ICMP header or embedded packet truncated
	ICMPUnknownType    // type/code with no translation; silently dropped per RFC
	ICMPSingleHop      // single-hop or obsolete message (ND, MLD, redirects, ...)
	ICMPNestedError    // ICMP error inside an ICMP error
	ICMPInnerMalformed // embedded packet cannot be translated
	ICMPBadExtension   // RFC 4884 extension with an impossible length

	// DNS / ENR (RFC 6535 §2.3).
	DNSMalformed        // not a parseable DNS message
	DNSUnmatched        // response matching no outstanding query
	DNSTooManyQueries   // outstanding-query table full
	DNSUpstreamFailed   // AAAA/PTR lookup failed or timed out
	DNSPoolExhausted    // synthesis refused by the pool
	DNSMultipleQuestion // QDCOUNT != 1
	DNSLateResponse     // response to a query the ENR already answered itself

	// Pool (RFC 6535 §6.3).
	PoolExhausted   // no free address and nothing reclaimable
	PoolRateLimited // requester over its rate of new mappings
	PoolQuota       // requester over its share of the pool

	// Daemon plumbing.
	EmitFailed    // raw socket send failed
	QueueFailOpen // packet accepted untranslated because fail-open is on
	Unclassified  // queued packet matching no handler

	numReasons
)

var names = [numReasons]string{
	None:                 "none",
	TooShort:             "too_short",
	BadVersion:           "bad_version",
	BadHeaderLength:      "bad_header_length",
	BadTotalLength:       "bad_total_length",
	BadHeaderChecksum:    "bad_header_checksum",
	BadChecksum:          "bad_checksum",
	BadExtensionChain:    "bad_extension_chain",
	NoMappingSource:      "no_mapping_source",
	NoMappingDestination: "no_mapping_destination",
	IllegalSource:        "illegal_source",
	IllegalDestination:   "illegal_destination",
	SourceRoute:          "source_route",
	RoutingHeader:        "routing_header",
	TTLExceeded:          "ttl_exceeded",
	FragmentNeeded:       "fragment_needed",
	PacketTooBig:         "packet_too_big",
	FragmentedZeroUDP:    "fragmented_zero_udp_checksum",
	ZeroUDPChecksum:      "zero_udp_checksum",
	FragmentedICMP:       "fragmented_icmp",
	UnknownNextHeader:    "unknown_next_header",
	ProtocolMismatch:     "protocol_mismatch",
	AtomicFragment:       "atomic_fragment",
	TooBigAfterXlat:      "too_big_after_translation",
	ICMPTooShort:         "icmp_too_short",
	ICMPUnknownType:      "icmp_unknown_type",
	ICMPSingleHop:        "icmp_single_hop",
	ICMPNestedError:      "icmp_nested_error",
	ICMPInnerMalformed:   "icmp_inner_malformed",
	ICMPBadExtension:     "icmp_bad_extension",
	DNSMalformed:         "dns_malformed",
	DNSUnmatched:         "dns_unmatched",
	DNSTooManyQueries:    "dns_too_many_queries",
	DNSUpstreamFailed:    "dns_upstream_failed",
	DNSPoolExhausted:     "dns_pool_exhausted",
	DNSMultipleQuestion:  "dns_multiple_question",
	DNSLateResponse:      "dns_late_response",
	PoolExhausted:        "pool_exhausted",
	PoolRateLimited:      "pool_rate_limited",
	PoolQuota:            "pool_quota",
	EmitFailed:           "emit_failed",
	QueueFailOpen:        "queue_fail_open",
	Unclassified:         "unclassified",
}

// String returns the stable snake_case name used in metrics and verdicts.
func (r Reason) String() string {
	if r < numReasons && names[r] != "" {
		return names[r]
	}
	return "unknown"
}

// All returns every reason except None, in enum order.
func All() []Reason {
	rs := make([]Reason, 0, numReasons-1)
	for r := Reason(1); r < numReasons; r++ {
		rs = append(rs, r)
	}
	return rs
}

// Parse returns the reason with the given name.
func Parse(name string) (Reason, bool) {
	for r, n := range names {
		if n == name {
			return Reason(r), true
		}
	}
	return None, false
}

// Counters counts drops by reason. The zero value is ready; Add is safe for
// concurrent use and does not allocate, so workers can share one.
type Counters struct {
	n [numReasons]atomic.Uint64
}

// Add counts one drop of reason r (None and unknown values are ignored).
func (c *Counters) Add(r Reason) {
	if r != None && r < numReasons {
		c.n[r].Add(1)
	}
}

// Get returns the count for r.
func (c *Counters) Get(r Reason) uint64 {
	if r >= numReasons {
		return 0
	}
	return c.n[r].Load()
}

// Snapshot returns the non-zero counts by name.
func (c *Counters) Snapshot() map[string]uint64 {
	m := make(map[string]uint64)
	for r := Reason(1); r < numReasons; r++ {
		if v := c.n[r].Load(); v != 0 {
			m[names[r]] = v
		}
	}
	return m
}
