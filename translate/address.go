package translate

// Address legality checks of RFC 7915 §4.1 and §5.1 "Source Address" ("If
// the translator gets an illegal source address (e.g., 0.0.0.0, 127.0.0.1,
// etc.), the translator SHOULD silently discard the packet"), which defer to
// RFC 1812 §5.3.7 for IPv4. The addresses of a packet embedded in an ICMP
// error are not checked: RFC 7915 §4.1 translates them "for the purpose of
// trouble shooting".

// illegalSource4 reports whether a may not appear as an IPv4 source: "this
// network" 0/8, loopback 127/8, multicast 224/4 and the reserved 240/4,
// which contains the limited broadcast address (RFC 1812 §5.3.7).
func illegalSource4(a [4]byte) bool {
	return a[0] == 0 || a[0] == 127 || a[0] >= 224
}

// illegalDestination4 reports whether a may not be translated as an IPv4
// destination: 0/8, loopback 127/8, and the reserved 240/4 including the
// limited broadcast 255.255.255.255 (RFC 1812 §5.3.7). Multicast is left to
// the Mapper.
func illegalDestination4(a [4]byte) bool {
	return a[0] == 0 || a[0] == 127 || a[0] >= 240
}

// illegalSource6 reports whether a may not appear as an IPv6 source: the
// unspecified address, loopback and multicast (RFC 4291 §2.5.2, §2.5.3,
// §2.7).
func illegalSource6(a *[16]byte) bool {
	return a[0] == 0xff || isUnspecifiedOrLoopback6(a)
}

// illegalDestination6 reports whether a may not be translated as an IPv6
// destination: the unspecified address and loopback.
func illegalDestination6(a *[16]byte) bool {
	return isUnspecifiedOrLoopback6(a)
}

func isUnspecifiedOrLoopback6(a *[16]byte) bool {
	for _, b := range a[:15] {
		if b != 0 {
			return false
		}
	}
	return a[15] <= 1
}
