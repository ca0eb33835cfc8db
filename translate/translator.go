package translate

import (
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/bih-nfq/bih-nfq/internal/drop"
)

// Defaults filled by New for zero Config fields.
const (
	DefaultLowestIPv6MTU = 1280 // RFC 7915 §4.1 "lowest-ipv6-mtu"
	DefaultIPv6MTU       = 1500
	DefaultIPv4MTU       = 1500

	minIPv6MTU = 1280 // RFC 8200 §5
	minIPv4MTU = 68   // RFC 791

	// Sizes ICMP errors are kept within: RFC 1812 §4.3.2.3 (576, the minimum
	// IPv4 reassembly buffer) and RFC 4443 §2.4 (c) (the minimum IPv6 MTU).
	maxICMPv4ErrorLen = 576
	maxICMPv6ErrorLen = 1280

	// RFC 7915 §5.1 "Flags": translated IPv4 packets up to this size leave
	// DF clear, larger ones set it (1280 - 20).
	dfThreshold = 1260

	// generatedTTL is the TTL / hop limit of ICMP errors the translator
	// originates.
	generatedTTL = 64
)

// Translator translates packets with one Config. It owns scratch buffers, so
// use one per goroutine.
type Translator struct {
	cfg Config

	icmpSrc4    [4]byte
	hasICMPSrc4 bool
	icmpSrc6    [16]byte
	hasICMPSrc6 bool
	errMapper   ErrorSourceMapper // Config.Mapper if it implements it

	// in receives a copy of an IPv4 packet given without enough headroom.
	in []byte
	// out receives fragments, generated ICMP errors and translated ICMP
	// errors: everything that cannot be built in place.
	out []byte
	// pkts backs Result.Packets.
	pkts [][]byte
	// ipID is the fragment identification generator of RFC 7915 §5.1
	// "Identification" for translated IPv4 packets that had no Fragment
	// header.
	ipID uint16
	// gsoSeg is the segment payload size while Translate4to6GSO runs.
	gsoSeg int
}

// New checks cfg, fills defaults and returns a Translator. Scratch space for
// the largest packet and its fragments is allocated here, once.
func New(cfg Config) (*Translator, error) {
	if cfg.Mapper == nil {
		return nil, errors.New("translate: Config.Mapper is required")
	}
	if cfg.LowestIPv6MTU == 0 {
		cfg.LowestIPv6MTU = DefaultLowestIPv6MTU
	}
	if cfg.IPv6MTU == 0 {
		cfg.IPv6MTU = DefaultIPv6MTU
	}
	if cfg.IPv4MTU == 0 {
		cfg.IPv4MTU = DefaultIPv4MTU
	}
	if cfg.LowestIPv6MTU < minIPv6MTU || cfg.LowestIPv6MTU > ipv4MaxTotalLen {
		return nil, fmt.Errorf("translate: LowestIPv6MTU %d out of range [%d, %d] (RFC 7915 §4.1)",
			cfg.LowestIPv6MTU, minIPv6MTU, ipv4MaxTotalLen)
	}
	if cfg.IPv6MTU < minIPv6MTU || cfg.IPv6MTU > ipv4MaxTotalLen+ipv6HeaderLen {
		return nil, fmt.Errorf("translate: IPv6MTU %d out of range [%d, %d]",
			cfg.IPv6MTU, minIPv6MTU, ipv4MaxTotalLen+ipv6HeaderLen)
	}
	if cfg.LowestIPv6MTU > cfg.IPv6MTU {
		return nil, fmt.Errorf("translate: LowestIPv6MTU %d exceeds IPv6MTU %d", cfg.LowestIPv6MTU, cfg.IPv6MTU)
	}
	if cfg.IPv4MTU < minIPv4MTU || cfg.IPv4MTU > ipv4MaxTotalLen {
		return nil, fmt.Errorf("translate: IPv4MTU %d out of range [%d, %d]", cfg.IPv4MTU, minIPv4MTU, ipv4MaxTotalLen)
	}
	if cfg.UDPZeroChecksum > UDPZeroDrop {
		return nil, fmt.Errorf("translate: unknown UDPZeroChecksum mode %d", cfg.UDPZeroChecksum)
	}
	t := &Translator{cfg: cfg, ipID: uint16(rand.Uint32())}
	if a := cfg.ICMPSource4; a.IsValid() {
		if !a.Is4() {
			return nil, fmt.Errorf("translate: ICMPSource4 %v is not an IPv4 address", a)
		}
		if illegalSource4(a.As4()) {
			return nil, fmt.Errorf("translate: ICMPSource4 %v cannot be a source address", a)
		}
		t.icmpSrc4, t.hasICMPSrc4 = a.As4(), true
	}
	if a := cfg.ICMPSource6; a.IsValid() {
		if !a.Is6() || a.Is4In6() {
			return nil, fmt.Errorf("translate: ICMPSource6 %v is not an IPv6 address", a)
		}
		a16 := a.As16()
		if illegalSource6(&a16) {
			return nil, fmt.Errorf("translate: ICMPSource6 %v cannot be a source address", a)
		}
		t.icmpSrc6, t.hasICMPSrc6 = a16, true
	}
	t.errMapper, _ = cfg.Mapper.(ErrorSourceMapper) // optional interface

	// Worst case fragment counts: 4→6 chunks of LowestIPv6MTU-48 bytes, 6→4
	// chunks of IPv4MTU-20 bytes, each rounded down to 8.
	chunk6 := (cfg.LowestIPv6MTU - ipv6HeaderLen - fragHeaderLen) &^ 7
	chunk4 := (cfg.IPv4MTU - ipv4MinHeaderLen) &^ 7
	maxFrags := max(ipv4MaxTotalLen/chunk6, ipv4MaxTotalLen/chunk4) + 2
	t.pkts = make([][]byte, 0, maxFrags)
	t.out = make([]byte, ipv4MaxTotalLen+ipv6HeaderLen+maxFrags*(ipv6HeaderLen+fragHeaderLen))
	t.in = make([]byte, Headroom+ipv4MaxTotalLen)
	return t, nil
}

// Config returns the configuration in use, defaults filled.
func (t *Translator) Config() Config { return t.cfg }

func dropped(r drop.Reason) Result { return Result{Action: Dropped, Reason: r} }

// one returns a Result carrying the single packet p.
func (t *Translator) one(a Action, r drop.Reason, p []byte) Result {
	t.pkts = append(t.pkts[:0], p)
	return Result{Action: a, Reason: r, Packets: t.pkts}
}

// nextID returns the next IPv4 identification value (RFC 7915 §5.1
// "Identification": "a Fragment Identification generator at the
// translator"; RFC 6864 asks only that it not repeat quickly per flow).
func (t *Translator) nextID() uint16 {
	t.ipID++
	return t.ipID
}
