package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"runtime"
	"strconv"
	"strings"

	"github.com/bih-nfq/bih-nfq/internal/config"
	"github.com/bih-nfq/bih-nfq/internal/hostnet"
	"github.com/bih-nfq/bih-nfq/nft"
)

const rulesUsage = `usage: bih-nfq rules [--config FILE | flags]

Print the nftables ruleset the daemon installs, as an nft script, for
sysadmins who load their own ruleset (rules: external). Load it with
nft -f FILE. Kernels built without nft's queue expression (CONFIG_NFT_QUEUE)
refuse its queue statements; let the daemon install the rules there.

With --config FILE the ruleset is the one bih-nfq run --config FILE would
install on this host: the configuration's pools (less those overlapping the
host's IPv4 networks), queues, mark, table, mode and router settings, and
the IPv6 source the daemon would use. It takes no other flag. Without it,
the flags below describe the ruleset.

flags:
  --config FILE          the daemon's configuration file
  --pools PFX[,PFX...]   IPv4 destination pools (default 10.170.160.0/20,
                         172.21.80.0/20, as the daemon)
  --source6 ADDR         IPv6 source of translated traffic (default: derived
                         from /etc/machine-id in the uplink's /64, as the
                         daemon does)
  --uplink NAME          uplink for --source6 derivation (default: the link of
                         the IPv6 default route)
  --xlat-queue N         first translation queue (default 0)
  --xlat-queues N        number of translation queues, flows spread by hash
                         (default: one per CPU, as the daemon)
  --dns-queue N          DNS queue (default 32)
  --mode MODE            host (default), router or host+router
  --lan NAME[,NAME...]   router mode: the LAN links
  --lan-hosts PFX[,...]  router mode: IPv4 prefixes of the LAN hosts translated
  --lan-addrs PFX[,...]  router mode: the LAN hosts' IPv6 prefixes (router.prefix,
                         or the /120s of it the hosts use, and router.map)
  --router-queue N       router mode: first router queue (default 16; as many
                         as --xlat-queues)
  --mark N               SO_MARK of the daemon's packets (default 0x62696800)
  --table NAME           name of the ip and ip6 tables (default bih_nfq)
`

func init() {
	register("rules", "print the nftables ruleset as an nft script", func(args []string, stdout, stderr io.Writer) error {
		cfg, err := parseRulesFlags(args, stdout, stderr)
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

func parseRulesFlags(args []string, stdout, stderr io.Writer) (nft.Config, error) {
	cfg := nft.DefaultConfig()
	// The daemon's default pools (pool.pools), not the package's.
	dc := config.Default()
	if p, err := dc.Pool.Prefixes(); err == nil {
		cfg.Pools = p
	}
	fs := flag.NewFlagSet("rules", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var configFile, pools, source6, uplink, table, lans, lanHosts, lanAddrs string
	mode := "host"
	routerQueue := uint64(nft.DefaultRouterNum)
	var xlatQueue, xlatQueues, dnsQueue, mark uint64 = uint64(cfg.Xlat.Num), uint64(runtime.NumCPU()), uint64(cfg.DNS.Num), uint64(cfg.Mark)
	fs.StringVar(&configFile, "config", "", "")
	fs.StringVar(&pools, "pools", "", "")
	fs.StringVar(&source6, "source6", "", "")
	fs.StringVar(&uplink, "uplink", "", "")
	fs.StringVar(&table, "table", nft.DefaultTable, "")
	fs.StringVar(&mode, "mode", mode, "")
	fs.StringVar(&lans, "lan", "", "")
	fs.StringVar(&lanHosts, "lan-hosts", "", "")
	fs.StringVar(&lanAddrs, "lan-addrs", "", "")
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
	uintFlag("router-queue", &routerQueue, 0xffff)
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
	if configFile != "" {
		var others []string
		fs.Visit(func(f *flag.Flag) {
			if f.Name != "config" {
				others = append(others, "--"+f.Name)
			}
		})
		if len(others) > 0 {
			return cfg, fmt.Errorf("%w: --config takes no other flag (got %s): the file says it all", errUsage, strings.Join(others, " "))
		}
		// Warnings (a pool overlapping the host's networks) go to stderr;
		// stdout stays a clean nft script.
		return rulesFromConfig(configFile, slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
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
	switch mode {
	case "host":
	case "router", "host+router":
		r := &nft.Router{Xlat: nft.Queue{Num: uint16(routerQueue), Count: uint16(max(xlatQueues, 1))}}
		for _, n := range strings.Split(lans, ",") {
			if n = strings.TrimSpace(n); n != "" {
				r.LAN = append(r.LAN, n)
			}
		}
		var err error
		if r.Hosts, err = prefixList(lanHosts); err != nil {
			return cfg, fmt.Errorf("%w: --lan-hosts: %v", errUsage, err)
		}
		if r.Addrs, err = prefixList(lanAddrs); err != nil {
			return cfg, fmt.Errorf("%w: --lan-addrs: %v", errUsage, err)
		}
		cfg.Router, cfg.NoHost = r, mode == "router"
	default:
		return cfg, fmt.Errorf("%w: --mode %q: want host, router or host+router", errUsage, mode)
	}
	if cfg.NoHost {
		// No host rules: no translation source to find.
	} else if source6 != "" {
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
	// Flow hash, as the daemon: CPU fanout splits one flow over queues.
	cfg.Xlat = nft.Queue{Num: uint16(xlatQueue), Count: uint16(xlatQueues)}
	cfg.DNS.Num = uint16(dnsQueue)
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("%w: %v", errUsage, err)
	}
	return cfg, nil
}

func prefixList(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}
