package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bih-nfq/bih-nfq/enr"
	"github.com/bih-nfq/bih-nfq/internal/config"
	"github.com/bih-nfq/bih-nfq/internal/drop"
	"github.com/bih-nfq/bih-nfq/internal/hostnet"
	"github.com/bih-nfq/bih-nfq/nft"
	"github.com/bih-nfq/bih-nfq/pool"
	"github.com/bih-nfq/bih-nfq/queue"
	"github.com/bih-nfq/bih-nfq/translate"
)

func init() {
	register("run", "run the daemon: steer, translate and synthesize (needs CAP_NET_ADMIN and CAP_NET_RAW)", cmdRun)
}

// runFlags are the command-line settings of `bih-nfq run`; everything else
// comes from the config file.
type runFlags struct {
	config, stateDir, statusSocket, metrics, logLevel string
}

func cmdRun(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f runFlags
	fs.StringVar(&f.config, "config", "", "YAML config file (default: built-in defaults)")
	fs.StringVar(&f.stateDir, "state-dir", "", "where mappings persist (overrides daemon.state-dir)")
	fs.StringVar(&f.statusSocket, "status-socket", "", "status socket path (overrides daemon.status-socket)")
	fs.StringVar(&f.metrics, "metrics", "", `Prometheus listen address (overrides daemon.metrics; "off" disables)`)
	fs.StringVar(&f.logLevel, "log-level", "", "debug, info, warn or error (overrides daemon.log-level)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%w: run takes no arguments", errUsage)
	}
	cfg := config.Default()
	if f.config != "" {
		var err error
		if cfg, err = config.Load(f.config); err != nil {
			return err
		}
	}
	if f.stateDir != "" {
		cfg.Daemon.StateDir = f.stateDir
	}
	if f.statusSocket != "" {
		cfg.Daemon.StatusSocket = f.statusSocket
	}
	if f.metrics != "" {
		cfg.Daemon.Metrics = f.metrics
	}
	if f.logLevel != "" {
		cfg.Daemon.LogLevel = f.logLevel
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.Daemon.LogLevel)); err != nil {
		return fmt.Errorf("daemon.log-level: %q is not a log level", cfg.Daemon.LogLevel)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if err := checkCapabilities(); err != nil {
		return err
	}
	d := &daemon{cfg: cfg, log: log, started: time.Now()}
	d.setState("starting")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := d.start(ctx); err != nil {
		if terr := d.teardown(); terr != nil {
			err = errors.Join(err, terr)
		}
		return err
	}
	d.setState("running")
	if cfg.HostMode() {
		log.Info("running", "mode", cfg.Mode, "pools", d.routedPools, "source4", d.host.Source4(),
			"source6", d.host.Source6(), "queues", len(d.workers), "procs", runtime.GOMAXPROCS(0),
			"backend", d.rules.Backend())
	} else {
		log.Info("running", "mode", cfg.Mode, "pools", d.routedPools, "queues", len(d.workers),
			"procs", runtime.GOMAXPROCS(0), "backend", d.rules.Backend())
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			d.setState("stopping")
			log.Info("stopping")
			return d.teardown()
		case err := <-d.fatal:
			d.setState("stopping")
			log.Error("stopping after a fatal error", "err", err)
			return errors.Join(err, d.teardown())
		case <-hup:
			d.reload(f.config)
		}
	}
}

// daemon holds the running parts, in start order; teardown undoes them in
// reverse.
type daemon struct {
	cfg     config.Config
	log     *slog.Logger
	started time.Time
	state   atomic.Pointer[string]
	fatal   chan error

	host        *hostnet.Host
	routedPools []netip.Prefix
	pool        *pool.Pool
	rules       *nft.Ruleset
	enr         *enr.ENR
	ic          *enr.Interceptor
	drops       drop.Counters
	xlat        []*queue.Translation
	xlatModes   []string // "host" or "router", per xlat handler
	router      *routerSide
	explicit    *explicitFirst // the ENR's view of the mappings
	dns         *queue.DNS
	workers     []*queue.Worker
	roles       []string
	nums        []uint16
	native4     atomic.Bool
	mark        uint32
	external    bool
	avoided     []netip.Prefix // pools overlapping host networks at start
	pools       []netip.Prefix
	mapper      *translate.SwapMapper // EAM, pool, pref64; SIGHUP replaces the chain
	whole       *os.File              // bih0 for whole TCP super-packets (queue.tcp-gso forward)

	cancel context.CancelFunc
	wg     sync.WaitGroup
	undo   []func() error
}

func (d *daemon) setState(s string) { d.state.Store(&s) }

func (d *daemon) onUndo(f func() error) { d.undo = append(d.undo, f) }

// teardown undoes every step taken, newest first, and reports every failure.
func (d *daemon) teardown() error {
	var errs []error
	for i := len(d.undo) - 1; i >= 0; i-- {
		if err := d.undo[i](); err != nil {
			errs = append(errs, err)
		}
	}
	d.undo = nil
	return errors.Join(errs...)
}

// checkCapabilities fails early, in one line, without the two capabilities
// every later step needs.
func checkCapabilities() error {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return fmt.Errorf("read capabilities: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		hex, ok := strings.CutPrefix(line, "CapEff:")
		if !ok {
			continue
		}
		var eff uint64
		if _, err := fmt.Sscanf(strings.TrimSpace(hex), "%x", &eff); err != nil {
			return fmt.Errorf("read capabilities: %w", err)
		}
		var missing []string
		if eff&(1<<12) == 0 {
			missing = append(missing, "CAP_NET_ADMIN")
		}
		if eff&(1<<13) == 0 {
			missing = append(missing, "CAP_NET_RAW")
		}
		if len(missing) > 0 {
			return fmt.Errorf("missing capabilities %s (run as root or grant them)", strings.Join(missing, " and "))
		}
		return nil
	}
	return errors.New("read capabilities: no CapEff line in /proc/self/status")
}

// procs is the daemon's GOMAXPROCS for queue.procs n. The data path's
// system calls do the kernel's work for each packet (reinjecting accepted
// ones, carrying raw sends through the stack) on the daemon's threads, and
// the applications at either end need CPUs too. With a P per CPU, every
// wake-up of a worker also wakes an idle thread that spins looking for more
// work, on the CPU an application or the kernel was about to use. Measured
// on 2 CPUs, one P against two, alternating on one lab: intercepted DNS
// about +10 % qps (noisy), TCP bulk unchanged. The stub, a DNS server with
// a reader and socket per P, is faster with all of them, as Unbound is with
// a thread per CPU. An explicit n wins; then the GOMAXPROCS environment
// variable (env, already applied by the runtime: startProcs).
func procs(n int, stub, env bool) int {
	switch {
	case n > 0:
		return n
	case env || stub:
		return startProcs
	}
	return max(1, startProcs/2)
}

// startProcs is GOMAXPROCS as the runtime set it: the CPUs the process may
// use, or the environment's GOMAXPROCS.
var startProcs = runtime.GOMAXPROCS(0)

func (d *daemon) start(parent context.Context) error {
	cfg := d.cfg
	// Validated at load; parsed here into the types the packages take.
	pools, err := cfg.Pool.Prefixes()
	if err != nil {
		return err
	}
	src4, src6, err := cfg.Host.Addrs()
	if err != nil {
		return err
	}
	if d.mark, err = cfg.NFT.MarkValue(); err != nil {
		return err
	}
	d.external = cfg.NFT.Rules == config.RulesExternal
	d.pools = pools
	release, err := lockInstance(cfg.Daemon.StateDir, cfg.NFT.Table)
	if err != nil {
		return err
	}
	d.onUndo(func() error { release(); return nil })
	runtime.GOMAXPROCS(procs(cfg.Queue.Procs, cfg.DNS.Mode == config.DNSStub, os.Getenv("GOMAXPROCS") != ""))
	d.fatal = make(chan error, 1)
	ctx, cancel := context.WithCancel(parent)
	d.cancel = cancel
	d.onUndo(func() error {
		cancel()
		d.wg.Wait()
		if d.whole != nil {
			d.whole.Close() // workers write to it until they stop
		}
		return nil
	})

	backend, err := nft.Probe(nft.Options{Logger: d.log})
	if err != nil {
		return fmt.Errorf("probe nftables: %w", err)
	}
	d.log.Info("nftables queue backend", "backend", backend)

	// Pools that overlap the host's own IPv4 networks are not routed into our
	// link, and the pool is told to avoid them (RFC 6535 §4.4).
	var overlap []netip.Prefix
	if d.routedPools, overlap, err = routablePools(pools, cfg.Host.Link, d.log); err != nil {
		return err
	}

	hcfg := hostnet.Config{
		LinkName: cfg.Host.Link,
		Source4:  netip.PrefixFrom(src4, 32),
		Pools:    d.routedPools,
		Uplink:   cfg.Host.Uplink,
		Source6:  src6,
		NoHost:   !cfg.HostMode(),
	}
	if cfg.RouterMode() {
		if d.router, err = planRouter(cfg, pools, d.log); err != nil {
			return err
		}
		hcfg.Router = d.router.hostnet()
	}
	d.host, err = hostnet.Setup(hcfg, hostnet.Options{Logger: d.log})
	if err != nil {
		return err
	}
	d.onUndo(d.host.Teardown)
	if cfg.Queue.TCPGSO == config.TCPGSOForward {
		// Without it TCP still works, cut here: a warning, not a refusal.
		if d.whole, err = d.host.OpenWhole(); err != nil {
			d.log.Warn("TCP super-packets are cut here", "reason", err)
		} else {
			d.log.Info("TCP super-packets leave whole", "link", d.host.LinkName())
			// They pass the ip6 forward hook: say so where a chain there
			// drops by default (its rules may still accept them).
			if drops, err := nft.DroppingForward(nft.Options{}); err == nil && len(drops) > 0 {
				d.log.Warn("forward chains drop by default: accept packets from the TUN link there, or set queue.tcp-gso: cut",
					"chains", drops, "rule", fmt.Sprintf("iifname %q accept", d.host.LinkName()))
			}
		}
	}

	pcfg := pool.DefaultConfig()
	pcfg.Pools = pools
	pcfg.StateDir = cfg.Daemon.StateDir
	pcfg.Grace = cfg.Pool.Grace
	pcfg.IdleTimeout = cfg.Pool.IdleTimeout
	pcfg.RequesterRate = cfg.Pool.RequesterRate
	pcfg.RequesterShare = cfg.Pool.RequesterShare
	pcfg.Logger = d.log
	// The host's own IPv4 source maps to the translation source (RFC 6535
	// §4.4): a static entry that never expires.
	if cfg.HostMode() {
		pcfg.Static = []pool.StaticMapping{{V4: d.host.Source4(), V6: d.host.Source6()}}
	}
	// Single-address explicit mappings inside a pool reserve their address,
	// so the pool never hands it to another name (RFC 7757 §3.3: the
	// explicit entry wins on the way back).
	eamTab, err := translate.ParseEAMTable(cfg.Translation.Map)
	if err != nil {
		return fmt.Errorf("translation.map: %w", err)
	}
	for _, e := range eamTab.Entries() {
		if e.V4.IsSingleIP() && e.V6.IsSingleIP() && slices.ContainsFunc(pools, func(p netip.Prefix) bool { return p.Contains(e.V4.Addr()) }) {
			pcfg.Static = append(pcfg.Static, pool.StaticMapping{V4: e.V4.Addr(), V6: e.V6.Addr()})
		}
	}
	if d.pool, err = pool.New(pcfg); err != nil {
		return fmt.Errorf("address pool: %w", err)
	}
	d.onUndo(d.pool.Close)
	d.pool.SetHostOverlap(overlap)
	d.avoided = overlap

	mapper, err := cfg.Translation.Mapper(d.pool)
	if err != nil {
		return err
	}
	// Translators keep this SwapMapper for good; a reload replaces the chain
	// behind it (see reload).
	if d.mapper, err = translate.NewSwapMapper(mapper); err != nil {
		return fmt.Errorf("address mapper: %w", err)
	}
	xcfg, err := cfg.Translation.Build(d.mapper)
	if err != nil {
		return err
	}
	xcfg.IPv6MTU = d.host.MTU() + 20
	// Host mode: the IPv4 side is this host's own stack, reached through
	// loopback, which never needs fragments.
	xcfg.IPv4MTU = 65535
	// In host mode the translation is inside the host (RFC 6535 §2); in
	// router mode the kernel's forward path has already decremented TTL
	// or hop limit and sent Time Exceeded before the queue: never twice.
	xcfg.Router = false
	if !xcfg.ICMPSource6.IsValid() && cfg.HostMode() {
		xcfg.ICMPSource6 = d.host.Source6()
	}

	ecfg, err := cfg.DNS.ENRConfig()
	if err != nil {
		return err
	}
	// A resolver the application reaches through translation is asked over
	// IPv6 directly: the ENR's own packets are never translated.
	inner := &enr.DNSUpstream{Control: enr.MarkControl(d.mark)}
	var stub config.StubSettings
	if cfg.DNS.Mode == config.DNSStub {
		if stub, err = cfg.DNS.Stub(); err != nil {
			return err
		}
		if inner, err = enr.NewUpstreamForStub(stub.Upstreams, "", stub.Listen, enr.MarkControl(d.mark)); err != nil {
			return fmt.Errorf("dns.stub-upstreams: %w", err)
		}
	}
	d.onUndo(inner.Close)
	up := viaMapper{inner, d.mapper}
	d.explicit = &explicitFirst{pool: d.pool}
	d.explicit.eam.Store(eamTab)
	if d.enr, err = enr.New(ecfg, d.explicit, up, &d.drops); err != nil {
		return fmt.Errorf("name resolver: %w", err)
	}
	d.enr.SetPassThrough(cfg.DNS.PassThrough)

	// Queues are bound before the rules that feed them exist, so no packet
	// meets a queue nobody reads.
	nq := queueCount(cfg)
	if err := checkQueues(cfg, nq); err != nil {
		return err
	}
	// Translated DNS answers carry their own mark: unlike the daemon's
	// other packets they must meet the DNS rules (queue.Translation).
	answers, err := d.newInjector(answerMark(d.mark))
	if err != nil {
		return err
	}
	// addXlat adds n translation workers from queue first. The udp-gso
	// queue's worker takes what the others hand on: its queue has no GSO
	// flag, so the kernel cuts UDP super-packets into datagrams first.
	addXlat := func(first, n int, xc translate.Config, mode, role string) error {
		for i := range n {
			x, err := translate.New(xc)
			if err != nil {
				return fmt.Errorf("translator: %w", err)
			}
			h := &queue.Translation{X: x, Drops: &d.drops, FailOpen: cfg.Queue.FailOpenTranslation, DNSAnswers: answers}
			if role == "udp-gso" {
				h.NoOffload = true
			} else {
				h.Uncut = queue.RequeueTo(uint16(cfg.Queue.UDPGSO))
			}
			if err := d.addWorker(uint16(first+i), h, role, false, failOpenFlag(cfg.Queue.FailOpenTranslation)); err != nil {
				return err
			}
			d.xlat = append(d.xlat, h)
			d.xlatModes = append(d.xlatModes, mode)
		}
		return nil
	}
	if cfg.HostMode() {
		if err := addXlat(cfg.Queue.Translation, nq, xcfg, config.RunHost, "translation"); err != nil {
			return err
		}
	}
	uncut := xcfg
	if cfg.RouterMode() {
		rx, err := d.router.translateConfig(xcfg, d.mapper, d.host)
		if err != nil {
			return err
		}
		if err := addXlat(cfg.Queue.Router, nq, rx, config.RunRouter, "router"); err != nil {
			return err
		}
		// The router's chain maps the host's addresses too.
		uncut = rx
	}
	if err := addXlat(cfg.Queue.UDPGSO, 1, uncut, cfg.Mode, "udp-gso"); err != nil {
		return err
	}
	inject, err := d.newInjector(d.mark)
	if err != nil {
		return err
	}
	d.dns = &queue.DNS{Drops: &d.drops, Inject: inject}
	d.ic = enr.NewInterceptor(d.enr, enr.InterceptOptions{Inject: func(p []byte) {
		if err := inject(p); err != nil {
			d.drops.Add(drop.EmitFailed)
		}
	}})
	d.onUndo(func() error { d.ic.Close(); return nil })
	d.dns.ENR = d.ic
	if err := d.addWorker(uint16(cfg.Queue.DNS), d.dns, "dns", true, failOpenFlag(cfg.Queue.FailOpenDNS)); err != nil {
		return err
	}

	var router *routerSide
	if cfg.RouterMode() {
		router = d.router
	}
	ncfg := daemonRules(cfg, d.routedPools, d.host.Source6(), router, nq, d.mark)
	if d.external {
		d.rules, err = nft.Verify(ncfg, nft.Options{Logger: d.log})
	} else {
		d.rules, err = nft.Install(ncfg, nft.Options{Logger: d.log, Backend: backend})
	}
	if err != nil {
		return err
	}
	if !d.external {
		d.onUndo(d.rules.Remove)
	}

	// Workers read the queues before anything slow happens: the ruleset is
	// live, and a queue nobody reads is an outage.
	for i, w := range d.workers {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			if err := w.Run(ctx); err != nil && ctx.Err() == nil {
				select {
				case d.fatal <- fmt.Errorf("queue %d (%s): %w", d.nums[i], d.roles[i], err):
				default:
				}
			}
		}()
	}
	d.followPool(ctx)
	d.watchHost(ctx)

	if stop, err := serveStatus(ctx, cfg.Daemon.StatusSocket, d.status); err != nil {
		return err
	} else {
		d.onUndo(func() error { stop(); return nil })
	}
	if cfg.Daemon.Metrics != "" && cfg.Daemon.Metrics != "off" {
		stop, err := serveMetrics(ctx, cfg.Daemon.Metrics, false, func() Status { return d.statusWith(false) })
		if err != nil {
			return err
		}
		d.onUndo(func() error { stop(); return nil })
	}
	if cfg.DNS.Mode == config.DNSStub {
		st, err := enr.NewStub(d.enr, enr.StubConfig{Listen: stub.Listen, AllowClients: stub.Allow})
		if err != nil {
			return fmt.Errorf("dns.stub-listen: %w", err)
		}
		if err := st.Start(); err != nil {
			return fmt.Errorf("dns.stub-listen: %w", err)
		}
		d.onUndo(func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			return st.Shutdown(ctx)
		})
		d.log.Info("stub resolver listening", "addr", st.Addr(), "upstreams", inner.Servers)
	}
	// Synthesized answers cached before we ran point nowhere now (RFC 6535
	// §2.3.4), and on exit they must go too.
	d.flushHostCaches()
	d.onUndo(func() error { d.flushHostCaches(); return nil })
	return nil
}

// checkQueues refuses overlapping queue ranges: a queue has one reader.
func checkQueues(cfg config.Config, nq int) error {
	type span struct {
		key         string
		first, size int
	}
	spans := []span{{"queue.dns", cfg.Queue.DNS, 1}, {"queue.udp-gso", cfg.Queue.UDPGSO, 1}}
	if cfg.HostMode() {
		spans = append(spans, span{"queue.translation", cfg.Queue.Translation, nq})
	}
	if cfg.RouterMode() {
		spans = append(spans, span{"queue.router", cfg.Queue.Router, nq})
	}
	for i, a := range spans {
		if a.first+a.size > 65536 {
			return fmt.Errorf("%s: queues %d to %d exceed 65535", a.key, a.first, a.first+a.size-1)
		}
		for _, b := range spans[:i] {
			if a.first < b.first+b.size && b.first < a.first+a.size {
				return fmt.Errorf("%s: queues %d to %d overlap %s (%d to %d)", a.key, a.first, a.first+a.size-1,
					b.key, b.first, b.first+b.size-1)
			}
		}
	}
	return nil
}

// failOpenFlag asks the kernel to accept, rather than drop, packets that
// find the queue full.
func failOpenFlag(on bool) uint32 {
	if on {
		return queue.FlagFailOpen
	}
	return 0
}

// addWorker opens queue num and an emitter and prepares its worker.
func (d *daemon) addWorker(num uint16, h queue.Handler, role string, async bool, flags uint32) error {
	conn, err := queue.Open(queue.Config{Num: num, Flags: flags})
	if err != nil {
		return err
	}
	em, err := queue.NewEmitter(queue.EmitterConfig{Mark: d.mark, TUN: d.whole})
	if err != nil {
		conn.Close()
		return err
	}
	d.onUndo(func() error { em.Close(); conn.Close(); return nil })
	if dh, ok := h.(*queue.DNS); ok {
		dh.Verdicts = conn
	}
	d.workers = append(d.workers, &queue.Worker{Conn: conn, Emitter: em, Handler: h, Drops: &d.drops,
		Stats: new(queue.Stats), Async: async})
	d.roles = append(d.roles, role)
	d.nums = append(d.nums, num)
	return nil
}

// newInjector returns a goroutine-safe way to send single datagrams with
// mark: late answers the ENR originates, translated DNS answers.
func (d *daemon) newInjector(mark uint32) (func([]byte) error, error) {
	em, err := queue.NewEmitter(queue.EmitterConfig{Mark: mark, Batch: 1})
	if err != nil {
		return nil, err
	}
	d.onUndo(em.Close)
	var mu sync.Mutex
	return func(p []byte) error {
		mu.Lock()
		defer mu.Unlock()
		if err := em.Add(p, true); err != nil {
			return err
		}
		if em.Flush() != 0 {
			return em.LastErr
		}
		return nil
	}, nil
}

// followPool keeps the kernel set of mapped IPv6 addresses in step with the
// pool.
func (d *daemon) followPool(ctx context.Context) {
	sub, current := d.pool.Subscribe(0)
	// The restored table goes in at once: one netlink round trip per
	// mapping took minutes for a full pool.
	elems := make([]nft.MappedElement, 0, len(current))
	for _, m := range current {
		elems = append(elems, nft.MappedElement{Addr: m.V6, TTL: d.mappedTTL(m)})
	}
	if err := d.rules.AddMappedAll(elems); err != nil {
		d.log.Warn("load the set of mapped IPv6 addresses", "mappings", len(elems), "err", err)
	}
	// Stopped before the ruleset is removed (undo runs newest first), so no
	// update is tried against a set that is gone.
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	d.onUndo(func() error { cancel(); <-done; return nil })
	go func() {
		defer close(done)
		defer sub.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-sub.Events():
				if !ok {
					return
				}
				switch ev.Kind {
				case pool.Added, pool.Refreshed:
					d.setMapped(ev.Mapping, true)
				case pool.Removed:
					d.setMapped(ev.Mapping, false)
				case pool.Flushed, pool.Overflow:
					// Rebuild from the table itself.
					for _, m := range d.pool.Snapshot() {
						d.setMapped(m, true)
					}
				}
			}
		}
	}()
}

// mappedTTL is how long the kernel keeps m in set mapped6: its DNS lifetime
// plus the idle time the pool allows after it (0: static, no timeout).
func (d *daemon) mappedTTL(m pool.Mapping) time.Duration {
	if m.Expires.IsZero() {
		return 0
	}
	return max(time.Until(m.Expires)+d.cfg.Pool.IdleTimeout, time.Second)
}

func (d *daemon) setMapped(m pool.Mapping, present bool) {
	var err error
	switch ttl := d.mappedTTL(m); {
	case !present:
		err = d.rules.RemoveMapped(m.V6)
	case ttl == 0:
		err = d.rules.AddMapped(m.V6, 0)
	default:
		err = d.rules.RefreshMapped(m.V6, ttl)
	}
	if err != nil {
		d.log.Warn("update set of mapped IPv6 addresses", "addr", m.V6, "err", err)
	}
}

// watchHost follows the host's IPv4 connectivity (RFC 6535 §4.5): when
// native IPv4 appears, names with real A records already go native (the
// ENR never replaces a real A answer); pools that now overlap a host network
// are avoided for new mappings, and synthesized DNS state is flushed.
func (d *daemon) watchHost(ctx context.Context) {
	// A router's LAN addresses are not native IPv4 connectivity.
	opt := hostnet.Options{Logger: d.log}
	if d.router != nil {
		opt.IgnoreLinks = d.router.plan.LAN
	}
	if n, err := hostnet.CurrentNative4(d.cfg.Host.Link, opt); err == nil {
		d.native4.Store(n.Present())
	}
	events, err := hostnet.Watch(ctx, d.cfg.Host.Link, opt)
	if err != nil {
		d.log.Warn("cannot watch host network changes", "err", err)
		return
	}
	avoided := d.avoided
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		for ev := range events {
			present := ev.Native4.Present()
			if present == d.native4.Swap(present) {
				continue
			}
			d.log.Info("native IPv4 connectivity changed", "present", present, "addrs", ev.Native4.Addrs)
			conflicts, err := hostnet.Conflicts(d.pools, d.cfg.Host.Link, hostnet.Options{Logger: d.log})
			if err != nil {
				d.log.Warn("check pool conflicts", "err", err)
			}
			var overlap []netip.Prefix
			for _, c := range conflicts {
				overlap = append(overlap, c.Pool)
			}
			d.pool.SetHostOverlap(overlap)
			// RFC 6535 §2.3.4, §4.5: synthesized answers may now be wrong
			// (a name may have gone native or vice versa): flush them. When
			// a pool became overlapped, its mappings point into a native
			// network: drop the mappings too, so names map afresh into a
			// pool that does not overlap.
			if !slices.Equal(overlap, avoided) {
				d.pool.Flush()
				avoided = overlap
			}
			d.enr.Flush()
			d.flushHostCaches()
			d.log.Info("flushed synthesized DNS state", "avoided_pools", overlap)
		}
	}()
}

func (d *daemon) flushHostCaches() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	enr.FlushHostCaches(ctx, d.log, nil)
}

// reload re-reads the config file on SIGHUP and applies, without dropping
// flows, what can change at run time: the static mappings (translation.map,
// RFC 7757, and translation.pref64, RFC 6052) behind the translators'
// SwapMapper, with the same pool kept in the chain so existing flows keep
// their addresses; and the ENR's exclusion sets (RFC 6535 §2.3.1) and
// pass-through switch. An invalid file changes nothing. Other settings are
// read once at start: a change is reported as needing a restart, not
// applied. daemon.* keys are not compared, since command-line flags
// override them.
func (d *daemon) reload(path string) {
	if path == "" {
		d.log.Info("SIGHUP: no config file to reload")
		return
	}
	cfg, err := config.Load(path)
	if err != nil {
		d.log.Error("SIGHUP: config not reloaded", "err", err)
		return
	}
	// Build everything before changing anything.
	mapper, err := cfg.Translation.Mapper(d.pool)
	if err != nil {
		d.log.Error("SIGHUP: config not reloaded", "err", err)
		return
	}
	excludeA, excludeAAAA, err := cfg.DNS.Exclusions()
	if err != nil {
		d.log.Error("SIGHUP: config not reloaded", "err", err)
		return
	}
	newEAM, err := translate.ParseEAMTable(cfg.Translation.Map)
	if err != nil {
		d.log.Error("SIGHUP: config not reloaded", "err", err)
		return
	}

	live := map[string]bool{"translation.map": true, "translation.pref64": true,
		"dns.exclude-a": true, "dns.exclude-aaaa": true, "dns.pass-through": true}
	var restart []string
	if cfg.Mode != d.cfg.Mode {
		restart = append(restart, "mode")
	}
	was, now := reflect.ValueOf(d.cfg), reflect.ValueOf(cfg)
	for i := range was.NumField() {
		sf := was.Type().Field(i)
		sec, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if !sf.IsExported() || sec == "" || sec == "daemon" || sf.Type.Kind() != reflect.Struct {
			continue
		}
		for j := range sf.Type.NumField() {
			f := sf.Type.Field(j)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			key := sec + "." + name
			if !f.IsExported() || name == "" || live[key] {
				continue
			}
			if !reflect.DeepEqual(was.Field(i).Field(j).Interface(), now.Field(i).Field(j).Interface()) {
				restart = append(restart, key)
			}
		}
	}

	// Live keys are compared parsed, so "::ffff:0:0/96" and
	// "::ffff:0.0.0.0/96" are the same set. The running values parsed
	// when they were loaded, so the errors ignored here cannot happen.
	old := d.cfg
	oldA, oldAAAA, _ := old.DNS.Exclusions()
	eam := func(t config.Translation) []translate.EAMEntry {
		if tab, err := translate.ParseEAMTable(t.Map); err == nil {
			return tab.Entries()
		}
		return nil
	}
	// SetExclusions is the one step that can refuse (it re-checks what the
	// config already checked); it goes first so a refusal changes nothing.
	var changed []any
	if !slices.Equal(oldA, excludeA) || !slices.Equal(oldAAAA, excludeAAAA) {
		if err := d.enr.SetExclusions(excludeA, excludeAAAA); err != nil {
			d.log.Error("SIGHUP: config not reloaded", "err", err)
			return
		}
		d.cfg.DNS.ExcludeA, d.cfg.DNS.ExcludeAAAA = cfg.DNS.ExcludeA, cfg.DNS.ExcludeAAAA
		if !slices.Equal(oldA, excludeA) {
			changed = append(changed, "dns.exclude-a", excludeA)
		}
		if !slices.Equal(oldAAAA, excludeAAAA) {
			changed = append(changed, "dns.exclude-aaaa", excludeAAAA)
		}
	}
	if old.DNS.PassThrough != cfg.DNS.PassThrough {
		d.enr.SetPassThrough(cfg.DNS.PassThrough)
		d.cfg.DNS.PassThrough = cfg.DNS.PassThrough
		changed = append(changed, "dns.pass-through", cfg.DNS.PassThrough)
	}
	dnsChanged := len(changed) > 0
	mapChanged := !slices.Equal(eam(old.Translation), newEAM.Entries())
	if pref64 := cfg.Translation.Pref64; mapChanged || old.Translation.Pref64 != pref64 {
		// The pool is the same member of the new chain: its flows go on.
		if err := d.mapper.Store(mapper); err != nil {
			d.log.Error("SIGHUP: static mappings not replaced", "err", err)
		} else {
			if mapChanged {
				d.explicit.eam.Store(newEAM)
				changed = append(changed, "translation.map", cfg.Translation.Map)
			}
			if old.Translation.Pref64 != pref64 {
				changed = append(changed, "translation.pref64", pref64)
			}
			d.cfg.Translation.Map, d.cfg.Translation.Pref64 = cfg.Translation.Map, pref64
		}
	}
	if dnsChanged {
		// Answers the host's own caches hold were decided under the old
		// sets (RFC 6535 §2.3.4: flush what synthesis no longer backs).
		d.flushHostCaches()
	}
	if len(restart) > 0 {
		d.log.Warn("SIGHUP: changed settings need a restart; not applied", "keys", strings.Join(restart, ","))
	}
	if len(changed) == 0 {
		d.log.Info("SIGHUP: config reloaded; nothing to apply", "file", path)
		return
	}
	d.log.Info("SIGHUP: config reloaded", append([]any{"file", path}, changed...)...)
}

func (d *daemon) status() Status { return d.statusWith(true) }

// statusWith assembles the status; mappings are listed only when asked.
func (d *daemon) statusWith(mappings bool) Status {
	st := Status{
		State: *d.state.Load(), Mode: d.cfg.Mode, Version: version, Started: d.started,
		NativeV4: d.native4.Load(), Drops: d.drops.Snapshot(), Translated: map[string]uint64{},
		DNS: map[string]uint64{},
	}
	if d.host != nil && d.cfg.HostMode() {
		st.Source4, st.Source6 = d.host.Source4().String(), d.host.Source6().String()
	}
	if d.rules != nil {
		st.Ruleset = "installed (" + d.rules.Backend().String() + ")"
		if d.external {
			st.Ruleset = "external"
		}
	}
	if d.pool != nil {
		ps := d.pool.Stats()
		for _, r := range ps.Pools {
			st.Pools = append(st.Pools, PoolStatus{Prefix: r.Prefix.String(), Active: !r.Avoided,
				Used: r.Mapped + r.Static, Size: r.Usable + r.Static})
		}
		if mappings {
			for _, m := range d.pool.Snapshot() {
				ms := MappingStatus{IPv4: m.V4.String(), IPv6: m.V6.String(), Static: m.Kind == pool.Static,
					Created: m.Created, LastUsed: m.LastUse, Expires: m.Expires}
				if m.Requester.IsValid() {
					ms.Owner = m.Requester.String()
				}
				st.Mappings = append(st.Mappings, ms)
			}
		}
	}
	st.TranslatedByMode = map[string]map[string]uint64{}
	for i, x := range d.xlat {
		mode := d.xlatModes[i]
		m := st.TranslatedByMode[mode]
		if m == nil {
			m = map[string]uint64{}
			st.TranslatedByMode[mode] = m
		}
		for k, v := range map[string]uint64{
			"4to6_packets": x.Stats.Packets4to6.Load(), "4to6_bytes": x.Stats.Bytes4to6.Load(),
			"6to4_packets": x.Stats.Packets6to4.Load(), "6to4_bytes": x.Stats.Bytes6to4.Load(),
			"errors_ipv4": x.Stats.Errors4.Load(), "errors_ipv6": x.Stats.Errors6.Load(),
			"4to6_whole": x.Stats.Whole.Load(),
		} {
			m[k] += v
			st.Translated[k] += v
		}
	}
	if d.router != nil && d.pool != nil {
		st.LANHosts = d.lanHosts()
	}
	if d.dns != nil {
		s := &d.dns.Stats
		st.DNS["queries"] = s.Queries.Load()
		st.DNS["responses"] = s.Responses.Load()
		st.DNS["rewritten"] = s.Rewritten.Load()
		st.DNS["untouched"] = s.Untouched.Load()
		st.DNS["injected"] = s.Injected.Load()
		st.DNS["held"] = s.Held.Load()
		st.DNS["cached"] = s.Cached.Load()
	}
	kstats := map[uint16]queue.KernelStats{}
	if f, err := os.Open("/proc/net/netfilter/nfnetlink_queue"); err == nil {
		if ks, err := queue.ParseKernelStats(f); err == nil {
			for _, k := range ks {
				kstats[k.Queue] = k
			}
		}
		f.Close()
	}
	for i, w := range d.workers {
		k := kstats[d.nums[i]]
		st.Queues = append(st.Queues, QueueStatus{Num: d.nums[i], Role: d.roles[i],
			Received: w.Stats.Received.Load(), Emitted: w.Stats.Emitted.Load(), EmitFails: w.Stats.EmitFails.Load(),
			UDPTrains: w.Stats.UDPTrains.Load(),
			Waiting:   k.Waiting, QueueDrops: k.QueueDrops, UserDrops: k.UserDrops})
	}
	return st
}
