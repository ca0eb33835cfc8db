package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"

	"github.com/bih-nfq/bih-nfq/internal/hostnet"
	"github.com/bih-nfq/bih-nfq/nft"
)

const rulesUsage = `usage: bih-nfq rules [flags]

Print the nftables ruleset the daemon installs, as an nft script, for
sysadmins who load their own ruleset (rules: external). Load it with
nft -f FILE. Kernels built without nft's queue expression (CONFIG_NFT_QUEUE)
refuse its queue statements; let the daemon install the rules there.

flags:
  --pools PFX[,PFX...]   IPv4 destination pools (default 10.170.160.0/20)
  --source6 ADDR         IPv6 source of translated traffic (default: derived
                         from /etc/machine-id in the uplink's /64, as the
                         daemon does)
  --uplink NAME          uplink for --source6 derivation (default: the link of
                         the IPv6 default route)
  --xlat-queue N         first translation queue (default 0)
  --xlat-queues N        number of translation queues, CPU fanout (default 1)
  --dns-queue N          DNS queue (default 32)
  --mark N               SO_MARK of the daemon's packets (default 0x62696800)
  --table NAME           name of the ip and ip6 tables (default bih_nfq)
`

func init() {
	register("rules", "print the nftables ruleset as an nft script", func(args []string, stdout, _ io.Writer) error {
		cfg, err := parseRulesFlags(args, stdout)
		if err != nil {
			return err
		}
		text, err := nft.Render(cfg)
		if err != nil {
			return err
		}
		_, err = io.WriteString(stdout, text)
		return err
	})
}

// source6Planner finds the daemon's IPv6 source; tests replace it.
var source6Planner = func(uplink string) (netip.Addr, error) {
	_, a, err := hostnet.PlanSource6(hostnet.Config{Uplink: uplink}, hostnet.Options{})
	return a, err
}

func parseRulesFlags(args []string, stdout io.Writer) (nft.Config, error) {
	cfg := nft.DefaultConfig()
	fs := flag.NewFlagSet("rules", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var pools, source6, uplink, table string
	var xlatQueue, xlatQueues, dnsQueue, mark uint64 = uint64(cfg.Xlat.Num), 1, uint64(cfg.DNS.Num), uint64(cfg.Mark)
	fs.StringVar(&pools, "pools", "", "")
	fs.StringVar(&source6, "source6", "", "")
	fs.StringVar(&uplink, "uplink", "", "")
	fs.StringVar(&table, "table", nft.DefaultTable, "")
	uintFlag := func(name string, p *uint64, limit uint64) {
		fs.Func(name, "", func(s string) error {
			v, err := strconv.ParseUint(s, 0, 64)
			if err != nil || v > limit {
				return fmt.Errorf("not a number from 0 to %d", limit)
			}
			*p = v
			return nil
		})
	}
	uintFlag("xlat-queue", &xlatQueue, 0xffff)
	uintFlag("xlat-queues", &xlatQueues, 0xffff)
	uintFlag("dns-queue", &dnsQueue, 0xffff)
	uintFlag("mark", &mark, 0xffffffff)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			io.WriteString(stdout, rulesUsage)
			return cfg, err
		}
		return cfg, fmt.Errorf("%w: %v (see bih-nfq rules -h)", errUsage, err)
	}
	if fs.NArg() != 0 {
		return cfg, fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if pools != "" {
		cfg.Pools = nil
		for _, s := range strings.Split(pools, ",") {
			p, err := netip.ParsePrefix(strings.TrimSpace(s))
			if err != nil {
				return cfg, fmt.Errorf("%w: --pools: %v", errUsage, err)
			}
			cfg.Pools = append(cfg.Pools, p)
		}
	}
	if source6 != "" {
		a, err := netip.ParseAddr(source6)
		if err != nil {
			return cfg, fmt.Errorf("%w: --source6: %v", errUsage, err)
		}
		cfg.Source6 = a
	} else {
		a, err := source6Planner(uplink)
		if err != nil {
			return cfg, fmt.Errorf("%w: cannot derive the IPv6 source (%v): pass --source6", errUsage, err)
		}
		cfg.Source6 = a
	}
	if xlatQueues == 0 {
		return cfg, fmt.Errorf("%w: --xlat-queues must be at least 1", errUsage)
	}
	cfg.Table4, cfg.Table6 = table, table
	cfg.Mark = uint32(mark)
	cfg.Xlat = nft.Queue{Num: uint16(xlatQueue), Count: uint16(xlatQueues), CPUFanout: true}
	cfg.DNS.Num = uint16(dnsQueue)
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("%w: %v", errUsage, err)
	}
	return cfg, nil
}
