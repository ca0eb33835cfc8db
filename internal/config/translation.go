package config

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/bih-nfq/bih-nfq/translate"
)

// Translation modes (RFC 6535 §2: the translator inside a host does not
// act as a router hop).
const (
	ModeHost   = "host"
	ModeRouter = "router"
)

// Values of udp-zero-checksum (RFC 7915 §4.5).
const (
	UDPZeroCompute = "compute"
	UDPZeroDrop    = "drop"
)

// MTU bounds: IPv6 links carry at least 1280 bytes (RFC 8200 §5), IPv4 links
// at least 68 (RFC 791); neither length field goes beyond 65535.
const (
	minIPv6MTU = 1280
	minIPv4MTU = 68
	maxMTU     = 65535
)

// Translation is the translation: section. Map entries stay text so that
// errors can quote them; addresses and prefixes are parsed while decoding.
type Translation struct {
	// Map lists explicit address mappings "V4PFX=V6PFX" (RFC 7757); a bare
	// address is a /32 or /128. Tried before Pref64.
	Map []string `yaml:"map"`
	// Pref64 is the RFC 6052 prefix for addresses no Map entry covers;
	// invalid (unset): none.
	Pref64 netip.Prefix `yaml:"pref64"`
	// ICMPSource4 is the RFC 6791 IPv4 source for ICMPv4 errors translated
	// from ICMPv6 errors whose source has no mapping; unset: drop them.
	ICMPSource4 netip.Addr `yaml:"icmp-source4"`
	// ICMPSource6 is the IPv6 source for ICMPv6 errors translated from
	// ICMPv4 errors whose source has no mapping, and for ICMPv6 errors the
	// translator generates; unset: drop them.
	ICMPSource6 netip.Addr `yaml:"icmp-source6"`
	// Mode is host (TTL/hop limit untouched) or router (decrement, emit
	// Time Exceeded).
	Mode string `yaml:"mode"`
	// LowestIPv6MTU is the size DF=0 IPv4 packets are fragmented to
	// (RFC 7915 §4).
	LowestIPv6MTU int `yaml:"lowest-ipv6-mtu"`
	// IPv6MTU and IPv4MTU are the next-hop MTUs on each side.
	IPv6MTU int `yaml:"ipv6-mtu"`
	IPv4MTU int `yaml:"ipv4-mtu"`
	// UDPZeroChecksum is compute or drop (RFC 7915 §4.5).
	UDPZeroChecksum string `yaml:"udp-zero-checksum"`
	// IgnoreTOS zeroes the traffic class / TOS instead of copying it.
	IgnoreTOS bool `yaml:"ignore-tos"`
}

func (t *Translation) validate() error {
	const sec = "translation"
	for i, m := range t.Map {
		if _, err := translate.ParseEAMEntry(m); err != nil {
			return &KeyError{Key: fmt.Sprintf("%s.map[%d]", sec, i), Err: oneLine(err)}
		}
	}
	if len(t.Map) > 0 {
		if _, err := translate.ParseEAMTable(t.Map); err != nil {
			return &KeyError{Key: sec + ".map", Err: oneLine(err)}
		}
	}
	if t.Pref64.IsValid() {
		if _, err := translate.NewRFC6052Prefix(t.Pref64); err != nil {
			return &KeyError{Key: sec + ".pref64", Err: oneLine(err)}
		}
	}
	if err := checkSource(t.ICMPSource4, true); err != nil {
		return &KeyError{Key: sec + ".icmp-source4", Err: err}
	}
	if err := checkSource(t.ICMPSource6, false); err != nil {
		return &KeyError{Key: sec + ".icmp-source6", Err: err}
	}
	switch t.Mode {
	case ModeHost, ModeRouter:
	default:
		return keyErr(sec+".mode", "%q is not %s or %s", t.Mode, ModeHost, ModeRouter)
	}
	for _, m := range []struct {
		key       string
		v, lo, hi int
	}{
		{"lowest-ipv6-mtu", t.LowestIPv6MTU, minIPv6MTU, maxMTU},
		{"ipv6-mtu", t.IPv6MTU, minIPv6MTU, maxMTU},
		{"ipv4-mtu", t.IPv4MTU, minIPv4MTU, maxMTU},
	} {
		if m.v < m.lo || m.v > m.hi {
			return keyErr(sec+"."+m.key, "%d is outside %d..%d", m.v, m.lo, m.hi)
		}
	}
	switch t.UDPZeroChecksum {
	case UDPZeroCompute, UDPZeroDrop:
	default:
		return keyErr(sec+".udp-zero-checksum", "%q is not %s or %s", t.UDPZeroChecksum, UDPZeroCompute, UDPZeroDrop)
	}
	return nil
}

// checkSource checks an optional ICMP error source of one family.
func checkSource(a netip.Addr, want4 bool) error {
	switch {
	case !a.IsValid():
		return nil
	case want4 && !a.Is4():
		return fmt.Errorf("%s is not an IPv4 address", a)
	case !want4 && (!a.Is6() || a.Is4In6()):
		return fmt.Errorf("%s is not an IPv6 address", a)
	case a.Zone() != "":
		return fmt.Errorf("%s: zones are not allowed", a)
	case !a.IsGlobalUnicast():
		// Loopback, link-local, multicast...: RFC 7915 refuses such
		// sources, so errors sent from them would be useless.
		return fmt.Errorf("%s is not a unicast address", a)
	}
	return nil
}

// oneLine keeps joined errors (several bad entries) on one line.
func oneLine(err error) error {
	return errors.New(strings.ReplaceAll(err.Error(), "\n", "; "))
}

// ErrNoMapping is returned by TranslateConfig when neither map nor pref64 is
// set.
var ErrNoMapping = errors.New("no address mapping: set map or pref64")

// Mapper builds the address mapper: the RFC 7757 table first, then the
// dynamic mapper if any (the daemon's pool), then the RFC 6052 prefix
// (RFC 7757 §3.3: explicit entries before algorithmic ones). It returns
// ErrNoMapping when there is nothing to map with.
func (t *Translation) Mapper(dynamic translate.Mapper) (translate.Mapper, error) {
	var ms []translate.Mapper
	if len(t.Map) > 0 {
		eam, err := translate.ParseEAMTable(t.Map)
		if err != nil {
			return nil, &KeyError{Key: "translation.map", Err: oneLine(err)}
		}
		ms = append(ms, eam)
	}
	if dynamic != nil {
		ms = append(ms, dynamic)
	}
	if t.Pref64.IsValid() {
		p, err := translate.NewRFC6052Prefix(t.Pref64)
		if err != nil {
			return nil, &KeyError{Key: "translation.pref64", Err: oneLine(err)}
		}
		ms = append(ms, p)
	}
	if len(ms) == 0 {
		return nil, ErrNoMapping
	}
	c, err := translate.NewChain(ms...)
	if err != nil {
		return nil, fmt.Errorf("address mapper: %w", err)
	}
	return c, nil
}

// TranslateConfig validates the section and builds the translator's
// configuration with the static mapper (see Mapper).
func (t *Translation) TranslateConfig() (translate.Config, error) {
	if err := t.validate(); err != nil {
		return translate.Config{}, err
	}
	m, err := t.Mapper(nil)
	if err != nil {
		return translate.Config{}, err
	}
	return t.Build(m)
}

// Build validates the section and returns the translator's configuration
// with mapper m, for callers that chain more mappers (the daemon's pool).
func (t *Translation) Build(m translate.Mapper) (translate.Config, error) {
	if err := t.validate(); err != nil {
		return translate.Config{}, err
	}
	udp := translate.UDPZeroCompute
	if t.UDPZeroChecksum == UDPZeroDrop {
		udp = translate.UDPZeroDrop
	}
	return translate.Config{
		Mapper:          m,
		ICMPSource4:     t.ICMPSource4,
		ICMPSource6:     t.ICMPSource6,
		Router:          t.Mode == ModeRouter,
		IgnoreTOS:       t.IgnoreTOS,
		LowestIPv6MTU:   t.LowestIPv6MTU,
		IPv6MTU:         t.IPv6MTU,
		IPv4MTU:         t.IPv4MTU,
		UDPZeroChecksum: udp,
	}, nil
}
