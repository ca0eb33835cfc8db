// Package enr is the Extension Name Resolver of Bump-in-the-Host (RFC 6535
// §2.3): it answers an IPv4-only application's A query with pool addresses
// mapped to the target's IPv6 addresses when the name has no usable A record,
// and answers PTR queries for pool addresses from the ip6.arpa name of the
// mapped IPv6 address (§2.3.3).
//
// The rules are the mirror image of DNS64 (RFC 6147 §5): synthesize only when
// the A answer is empty or holds excluded addresses only, keep CNAME/DNAME
// chains, take the TTL from the AAAA records and the negative answer, never
// touch a query whose client validates (CD set).
//
// Two placements share the same decision core (decide.go):
//   - Intercept (network-layer ENR, RFC 6535 §2.3): Interceptor takes raw
//     IPv4/IPv6 UDP/53 packets seen on the queue and returns what to deliver.
//   - Stub (RFC 6535 Appendix A style): Stub is a loopback DNS server that
//     forwards to the host's resolvers.
//
// The address mapper and the upstream resolver are interfaces (Mapper,
// Upstream) so that tests and the offline replay inject their own.
package enr
