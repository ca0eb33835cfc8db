//go:build !linux

package nft

import (
	"errors"
	"log/slog"
)

// Options are the run-time settings that are not part of the ruleset.
type Options struct {
	NetNS   int
	Backend Backend
	Logger  *slog.Logger
}

// Ruleset needs Linux.
type Ruleset struct{}

var errNotLinux = errors.New("nftables needs Linux")

func Probe(Options) (Backend, error)            { return BackendUnknown, errNotLinux }
func Install(Config, Options) (*Ruleset, error) { return nil, errNotLinux }
func Verify(Config, Options) (*Ruleset, error)  { return nil, errNotLinux }
func DroppingForward(Options) ([]string, error) { return nil, errNotLinux }
