package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"slices"

	"github.com/bih-nfq/bih-nfq/internal/config"
	"github.com/bih-nfq/bih-nfq/internal/hostnet"
	"github.com/bih-nfq/bih-nfq/nft"
)

// routablePools splits pools into those routed into the daemon's link and
// those that overlap the host's own IPv4 networks, which are not (RFC 6535
// §4.4).
func routablePools(pools []netip.Prefix, link string, log *slog.Logger) (routed, overlap []netip.Prefix, err error) {
	conflicts, err := hostnet.Conflicts(pools, link, hostnet.Options{Logger: log})
	if err != nil {
		return nil, nil, fmt.Errorf("check pool conflicts: %w", err)
	}
	for _, c := range conflicts {
		log.Warn("destination pool overlaps the host's IPv4 networks", "conflict", c.String())
		overlap = append(overlap, c.Pool)
	}
	for _, p := range pools {
		if !slices.Contains(overlap, p) {
			routed = append(routed, p)
		}
	}
	if len(routed) == 0 {
		return nil, nil, errors.New("pool.pools: every destination pool overlaps the host's IPv4 networks")
	}
	return routed, overlap, nil
}

// queueCount is how many translation queues the daemon reads per mode.
func queueCount(cfg config.Config) int {
	if cfg.Queue.Count > 0 {
		return cfg.Queue.Count
	}
	return runtime.NumCPU()
}

// daemonRules is the ruleset the daemon installs (or, with rules:
// external, verifies) for cfg; `bih-nfq rules --config` prints the same.
// router is nil outside router mode.
func daemonRules(cfg config.Config, pools []netip.Prefix, source6 netip.Addr, router *routerSide, nq int, mark uint32) nft.Config {
	n := nft.Config{
		Table4: cfg.NFT.Table, Table6: cfg.NFT.Table, Mark: mark,
		Pools: pools, Source6: source6,
		// Spread by flow hash, not by CPU: CPU fanout splits one flow over
		// queues, and the reordering cost many retransmits in the lab.
		Xlat: nft.Queue{Num: uint16(cfg.Queue.Translation), Count: uint16(nq), CPUFanout: false,
			Bypass: cfg.Queue.FailOpenTranslation},
		DNS:       nft.Queue{Num: uint16(cfg.Queue.DNS), Count: 1, Bypass: cfg.Queue.FailOpenDNS},
		NoHost:    !cfg.HostMode(),
		NoHostDNS: cfg.DNS.Mode == config.DNSStub,
	}
	if router != nil {
		n.Router = router.rules(nft.Queue{Num: uint16(cfg.Queue.Router), Count: uint16(nq),
			Bypass: cfg.Queue.FailOpenTranslation})
	}
	return n
}

// rulesFromConfig plans, from the configuration file at path and this
// host's links and addresses, the ruleset `bih-nfq run` would install with
// it; it changes nothing.
func rulesFromConfig(path string, log *slog.Logger) (nft.Config, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nft.Config{}, err
	}
	pools, err := cfg.Pool.Prefixes()
	if err != nil {
		return nft.Config{}, err
	}
	_, src6, err := cfg.Host.Addrs()
	if err != nil {
		return nft.Config{}, err
	}
	mark, err := cfg.NFT.MarkValue()
	if err != nil {
		return nft.Config{}, err
	}
	routed, _, err := routablePools(pools, cfg.Host.Link, log)
	if err != nil {
		return nft.Config{}, err
	}
	var source6 netip.Addr
	if cfg.HostMode() {
		if _, source6, err = hostnet.PlanSource6(hostnet.Config{Uplink: cfg.Host.Uplink, Source6: src6}, hostnet.Options{Logger: log}); err != nil {
			return nft.Config{}, fmt.Errorf("IPv6 source: %w", err)
		}
	}
	var router *routerSide
	if cfg.RouterMode() {
		if router, err = planRouter(cfg, pools, log); err != nil {
			return nft.Config{}, err
		}
	}
	nq := queueCount(cfg)
	if err := checkQueues(cfg, nq); err != nil {
		return nft.Config{}, err
	}
	n := daemonRules(cfg, routed, source6, router, nq, mark)
	return n, n.Validate()
}
