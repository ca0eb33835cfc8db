//go:build !linux

package hostnet

import (
	"errors"
	"net/netip"
)

// Options are the run-time settings that are not host configuration.
type Options struct{ NetNS int }

// PlanSource6 needs Linux.
func PlanSource6(Config, Options) (string, netip.Addr, error) {
	return "", netip.Addr{}, errors.New("host set-up needs Linux")
}
