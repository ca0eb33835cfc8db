package translate

import (
	"errors"

	"github.com/bih-nfq/bih-nfq/internal/drop"
)

// Translator translates packets with one Config. It owns scratch buffers, so
// use one per goroutine.
type Translator struct {
	cfg Config
}

// New checks cfg, fills defaults and returns a Translator.
func New(cfg Config) (*Translator, error) {
	if cfg.Mapper == nil {
		return nil, errors.New("translate: Config.Mapper is required")
	}
	return &Translator{cfg: cfg}, nil
}

// Translate4to6 translates the IPv4 packet buf[off:] (RFC 7915 §4). buf may be
// modified; with off >= Headroom the translation is built in place.
func (t *Translator) Translate4to6(buf []byte, off int) Result {
	return Result{Action: Dropped, Reason: drop.TooShort} // placeholder until the core lands
}

// Translate6to4 translates the IPv6 packet buf[off:] (RFC 7915 §5).
func (t *Translator) Translate6to4(buf []byte, off int) Result {
	return Result{Action: Dropped, Reason: drop.TooShort} // placeholder until the core lands
}
