//go:build !linux

package main

import (
	"errors"
	"log/slog"

	"github.com/bih-nfq/bih-nfq/nft"
)

// rulesFromConfig reads the host's links: Linux only.
func rulesFromConfig(string, *slog.Logger) (nft.Config, error) {
	return nft.Config{}, errors.New("rules --config needs Linux (it reads the host's links)")
}
