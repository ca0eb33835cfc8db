package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/bih-nfq/bih-nfq/enr"
	"github.com/bih-nfq/bih-nfq/internal/config"
	"github.com/bih-nfq/bih-nfq/internal/replay"
	"github.com/bih-nfq/bih-nfq/pool"
	"github.com/bih-nfq/bih-nfq/translate"
)

const replayUsage = `usage: bih-nfq replay [flags] IN.pcap OUT.pcap

Translate every packet of a capture (pcap or pcapng; raw IP, Ethernet, Linux
cooked SLL/SLL2) as the daemon would, and write what it would emit to OUT.pcap
(LINKTYPE_RAW, the input's timestamps).

flags:
  --config FILE               daemon config file; the flags below override it
  --map V4PFX=V6PFX           explicit address mapping (RFC 7757), repeatable (/32=/128 for one host)
  --pref64 PFX                RFC 6052 prefix for addresses no --map covers
  --icmp-source4 ADDR         RFC 6791 IPv4 source for ICMPv6 errors from unmappable sources
  --icmp-source6 ADDR         RFC 6791 IPv6 source for ICMPv4 errors from unmappable sources
  --router                    router mode: decrement TTL/hop limit, emit Time Exceeded
  --lowest-ipv6-mtu N         default 1280
  --ipv6-mtu N, --ipv4-mtu N  next-hop MTUs on each side, default 1500
  --udp-zero-checksum MODE    compute (default) or drop
  --ignore-tos                zero the traffic class / TOS instead of copying it
  --zone FILE                 run DNS (UDP port 53) through the name resolver (RFC 6535 §2.3),
                              answering its AAAA and PTR lookups from this RFC 1035 master
                              file; synthesized pool addresses then translate too
  --pool PFX                  destination pool for --zone, repeatable (default: the config's
                              pool.pools, 10.170.160.0/20 then 172.21.80.0/20)
  --verdicts FILE             one JSON object per input packet: index, action
                              (translated|passed|dropped|generated-error, and with --zone
                              rewritten|answered), reason, outputs; - for standard output
`

func init() {
	register("replay", "translate a capture offline: replay [flags] IN.pcap OUT.pcap", runReplay)
}

// replayFlags holds the command line; set records which flags were given so
// that only those override the config file.
type replayFlags struct {
	configFile   string
	verdictsFile string
	zoneFile     string
	maps         []string
	pools        []string
	t            config.Translation
	router       bool
	set          map[string]bool
	args         []string
}

func parseReplayFlags(args []string) (*replayFlags, error) {
	f := &replayFlags{set: make(map[string]bool)}
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	// Messages are ours, on one line; -h prints replayUsage to stdout.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVar(&f.configFile, "config", "", "")
	fs.StringVar(&f.verdictsFile, "verdicts", "", "")
	fs.Func("map", "", func(s string) error { f.maps = append(f.maps, s); return nil })
	fs.StringVar(&f.zoneFile, "zone", "", "")
	fs.Func("pool", "", func(s string) error { f.pools = append(f.pools, s); return nil })
	fs.TextVar(&f.t.Pref64, "pref64", netip.Prefix{}, "")
	fs.TextVar(&f.t.ICMPSource4, "icmp-source4", netip.Addr{}, "")
	fs.TextVar(&f.t.ICMPSource6, "icmp-source6", netip.Addr{}, "")
	fs.BoolVar(&f.router, "router", false, "")
	fs.IntVar(&f.t.LowestIPv6MTU, "lowest-ipv6-mtu", 0, "")
	fs.IntVar(&f.t.IPv6MTU, "ipv6-mtu", 0, "")
	fs.IntVar(&f.t.IPv4MTU, "ipv4-mtu", 0, "")
	fs.StringVar(&f.t.UDPZeroChecksum, "udp-zero-checksum", "", "")
	fs.BoolVar(&f.t.IgnoreTOS, "ignore-tos", false, "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %v (see bih-nfq replay -h)", errUsage, err)
	}
	fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	f.args = fs.Args()
	if len(f.args) != 2 {
		return nil, fmt.Errorf("%w: want IN.pcap OUT.pcap after the flags, got %d argument(s) (see bih-nfq replay -h)", errUsage, len(f.args))
	}
	if f.set["pool"] && !f.set["zone"] {
		return nil, fmt.Errorf("%w: --pool needs --zone (pools only serve the name resolver's synthesized addresses)", errUsage)
	}
	if f.set["zone"] && f.zoneFile == "" {
		return nil, fmt.Errorf("%w: --zone: empty file name", errUsage)
	}
	return f, nil
}

// load reads the config file, or gives the defaults without one.
func (f *replayFlags) load() (config.Config, error) {
	if f.configFile == "" {
		return config.Default(), nil
	}
	return config.Load(f.configFile)
}

// translation merges the config file (or the defaults) with the flags that
// were given. --map replaces the file's whole map list.
func (f *replayFlags) translation() (config.Translation, error) {
	c, err := f.load()
	if err != nil {
		return config.Translation{}, err
	}
	return f.mergeTranslation(c.Translation), nil
}

// mergeTranslation applies the translation flags that were given to t.
func (f *replayFlags) mergeTranslation(t config.Translation) config.Translation {
	for name := range f.set {
		switch name {
		case "map":
			t.Map = f.maps
		case "pref64":
			t.Pref64 = f.t.Pref64
		case "icmp-source4":
			t.ICMPSource4 = f.t.ICMPSource4
		case "icmp-source6":
			t.ICMPSource6 = f.t.ICMPSource6
		case "router":
			t.Mode = config.ModeHost
			if f.router {
				t.Mode = config.ModeRouter
			}
		case "lowest-ipv6-mtu":
			t.LowestIPv6MTU = f.t.LowestIPv6MTU
		case "ipv6-mtu":
			t.IPv6MTU = f.t.IPv6MTU
		case "ipv4-mtu":
			t.IPv4MTU = f.t.IPv4MTU
		case "udp-zero-checksum":
			t.UDPZeroChecksum = f.t.UDPZeroChecksum
		case "ignore-tos":
			t.IgnoreTOS = f.t.IgnoreTOS
		}
	}
	return t
}

// flagForKey names the flag that sets a translation key, if it was given.
func (f *replayFlags) flagForKey(key string) (string, bool) {
	name := strings.TrimPrefix(key, "translation.")
	if i := strings.IndexByte(name, '['); i >= 0 {
		name = name[:i]
	}
	if name == "mode" {
		name = "router"
	}
	return "--" + name, f.set[name]
}

// translateConfig builds the translator configuration from t, blaming the
// flag or the file for a bad value. dynamic, when not nil, is the name
// resolver's pool: tried after the explicit mappings and before the RFC 6052
// prefix (RFC 7757 §3.3), as in the daemon.
func (f *replayFlags) translateConfig(t config.Translation, dynamic translate.Mapper) (translate.Config, error) {
	// Build validates every key first, so errors name the key at fault.
	tc, err := t.Build(nil)
	if err == nil {
		var m translate.Mapper
		if m, err = t.Mapper(dynamic); err == nil {
			tc, err = t.Build(m)
		}
	}
	if err != nil {
		return translate.Config{}, f.translationErr(err)
	}
	return tc, nil
}

// translationErr blames the flag or the config file for a translation error.
func (f *replayFlags) translationErr(err error) error {
	var ke *config.KeyError
	switch {
	case errors.Is(err, config.ErrNoMapping):
		return fmt.Errorf("%w: no address mapping: give --map or --pref64 (or translation.map / translation.pref64 in --config)", errUsage)
	case errors.As(err, &ke):
		if fl, ok := f.flagForKey(ke.Key); ok {
			return fmt.Errorf("%w: %s: %v", errUsage, fl, ke.Err)
		}
		ke.File = f.configFile
		return ke
	}
	return err
}

// poolConfig gives the destination pools and lifetimes of the name
// resolver's pool: the config's pool section, with --pool replacing its
// pools.
func (f *replayFlags) poolConfig(c config.Pool) (pool.Config, error) {
	if f.set["pool"] {
		c.Pools = f.pools
	}
	pfx, err := c.Prefixes()
	if err != nil {
		var ke *config.KeyError
		if f.set["pool"] && errors.As(err, &ke) {
			return pool.Config{}, fmt.Errorf("%w: --pool: %v", errUsage, ke.Err)
		}
		return pool.Config{}, err
	}
	return pool.Config{
		Pools:          pfx,
		Grace:          c.Grace,
		IdleTimeout:    c.IdleTimeout,
		RequesterRate:  c.RequesterRate,
		RequesterShare: c.RequesterShare,
	}, nil
}

// newDNS loads the zone and builds the name resolver with its pool.
func (f *replayFlags) newDNS(c config.Config) (*replay.DNS, error) {
	pc, err := f.poolConfig(c.Pool)
	if err != nil {
		return nil, err
	}
	zone, err := enr.LoadZoneFile(f.zoneFile, "")
	if err != nil {
		return nil, err
	}
	ecfg, err := c.DNS.ENRConfig()
	if err != nil {
		return nil, err
	}
	d, err := replay.NewDNS(replay.DNSConfig{Upstream: zone, Pool: pc, ENR: ecfg})
	if err != nil {
		if f.set["pool"] {
			// The pools parsed; what is left to refuse is their number.
			return nil, fmt.Errorf("%w: --pool: %v", errUsage, err)
		}
		return nil, err
	}
	return d, nil
}

func runReplay(args []string, stdout, stderr io.Writer) error {
	f, err := parseReplayFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, replayUsage)
		return err
	}
	if err != nil {
		return err
	}
	inPath, outPath := f.args[0], f.args[1]
	vfile := f.verdictsFile != "" && f.verdictsFile != "-"
	if sameFile(inPath, outPath) || (vfile && (sameFile(inPath, f.verdictsFile) || sameFile(outPath, f.verdictsFile))) {
		return fmt.Errorf("%w: IN, OUT and --verdicts must be different files", errUsage)
	}
	cfg, err := f.load()
	if err != nil {
		return err
	}
	t := f.mergeTranslation(cfg.Translation)
	pl := &replay.Pipeline{}
	var dynamic translate.Mapper
	if f.zoneFile != "" {
		// A bad translation flag is reported before the zone is read.
		if _, err := t.Build(nil); err != nil {
			return f.translationErr(err)
		}
		d, err := f.newDNS(cfg)
		if err != nil {
			return err
		}
		defer d.Close() // in memory: nothing to lose on close
		pl.Handlers = []replay.Handler{d}
		dynamic = d.Pool()
	}
	tc, err := f.translateConfig(t, dynamic)
	if err != nil {
		return err
	}
	if pl.Translator, err = translate.New(tc); err != nil {
		return fmt.Errorf("translator: %w", err)
	}

	in, err := os.Open(inPath)
	if err != nil {
		return fmt.Errorf("open input: %w", err)
	}
	defer in.Close() // read-only: nothing to lose on close
	out, err := os.Create(outPath)
	if err != nil {
		return fmt.Errorf("create output: %w", err)
	}
	var verdicts io.Writer
	var vf *os.File
	switch f.verdictsFile {
	case "":
	case "-":
		verdicts = stdout
	default:
		if vf, err = os.Create(f.verdictsFile); err != nil {
			out.Close() // already failing; its error adds nothing
			return fmt.Errorf("create verdicts: %w", err)
		}
		verdicts = vf
	}

	sum, runErr := replay.Run(in, out, verdicts, pl)
	closeErr := out.Close()
	if vf != nil {
		if err := vf.Close(); err != nil && closeErr == nil {
			closeErr = err
		}
	}
	if runErr != nil {
		if sum.Packets > 0 {
			return fmt.Errorf("%s: %w (the %d packet(s) before it were replayed)", inPath, runErr, sum.Packets)
		}
		// Nothing was replayed: leave no empty files that look like results
		// (best effort; the run's error is the one to report).
		os.Remove(outPath)
		if vf != nil {
			os.Remove(f.verdictsFile)
		}
		return fmt.Errorf("%s: %w", inPath, runErr)
	}
	if closeErr != nil {
		return fmt.Errorf("write output: %w", closeErr)
	}
	// On stderr: stdout may carry the verdicts.
	fmt.Fprintf(stderr, "replayed %d packet(s) from %s: %s; wrote %d packet(s) to %s\n",
		sum.Packets, inPath, actionCounts(sum), sum.Outputs, outPath)
	return nil
}

func actionCounts(sum replay.Summary) string {
	var parts []string
	for _, a := range []replay.Action{replay.ActionTranslated, replay.ActionRewritten, replay.ActionAnswered,
		replay.ActionGeneratedError, replay.ActionDropped, replay.ActionPassed} {
		if n := sum.ByAction[a]; n > 0 {
			parts = append(parts, strconv.Itoa(n)+" "+string(a))
		}
	}
	if len(parts) == 0 {
		return "nothing to do"
	}
	return strings.Join(parts, ", ")
}

// sameFile reports whether a and b name the same file (existing or not).
func sameFile(a, b string) bool {
	if filepath.Clean(a) == filepath.Clean(b) {
		return true
	}
	sa, errA := os.Stat(a)
	sb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(sa, sb)
}
