package replay

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync/atomic"
	"time"

	"github.com/bih-nfq/bih-nfq/enr"
	"github.com/bih-nfq/bih-nfq/pool"
)

// dnsPort is where resolvers listen; the daemon's nftables rules queue UDP
// to and from it (nft/rules.go: udp dport 53, udp sport 53).
const dnsPort = 53

// DNSConfig configures the ENR of a replay.
type DNSConfig struct {
	// Upstream answers the ENR's AAAA and PTR lookups; replay uses an
	// enr.ZoneUpstream so that results do not depend on the network.
	Upstream enr.Upstream
	// Pool configures the address mapper. Clock, StateDir and Logger are
	// set by NewDNS; ClockResolution and SweepInterval count capture time;
	// the rest is kept (zero: defaults).
	Pool pool.Config
	// ENR configures the resolver rules. Now is set by NewDNS, and
	// ATimeoutSynthesis is turned off: a timer-driven answer belongs to no
	// input packet.
	ENR enr.Config
}

// DNS is the daemon's DNS path in replay: the network-layer ENR
// (RFC 6535 §2.3) over a pool of synthetic addresses (§2.4), with time
// taken from the capture, so the same capture always gives the same answers
// and the same addresses. It claims UDP packets to or from port 53; its pool
// also maps addresses for the translator (see Pool).
//
// It implements Handler and Clocked. Not safe for concurrent use.
type DNS struct {
	pool *pool.Pool
	ic   *enr.Interceptor
	// now is the capture time in Unix ns, for the ENR. coarse is the
	// pool's clock: it moves in steps of ClockResolution, each followed by
	// a Tick, so mapping use is recorded at the same capture times whatever
	// the pool's own ticker does; swept is when expired mappings were last
	// removed, every SweepInterval of capture time.
	now, coarse           atomic.Int64
	swept                 int64
	resolution, sweepStep int64
	started               bool
}

// NewDNS builds the ENR and its pool. Close releases them.
func NewDNS(cfg DNSConfig) (*DNS, error) {
	if cfg.Upstream == nil {
		return nil, errors.New("replay dns: no upstream")
	}
	d := &DNS{}
	pc := cfg.Pool
	pc.StateDir = "" // in memory: allocation starts from the start of each pool
	pc.Logger = slog.New(slog.DiscardHandler)
	pc.Clock = func() time.Time { return time.Unix(0, d.coarse.Load()) }
	if pc.ClockResolution == 0 {
		pc.ClockResolution = pool.DefaultClockResolution
	}
	if pc.SweepInterval == 0 {
		pc.SweepInterval = pool.DefaultSweepInterval
	}
	d.resolution, d.sweepStep = int64(pc.ClockResolution), int64(pc.SweepInterval)
	// Expired mappings are swept at capture times (Advance), never by the
	// pool's wall-clock ticker.
	pc.SweepInterval = math.MaxInt64
	p, err := pool.New(pc)
	if err != nil {
		return nil, fmt.Errorf("replay dns: %w", err)
	}
	ec := cfg.ENR
	ec.Now = func() time.Time { return time.Unix(0, d.now.Load()) }
	ec.ATimeoutSynthesis = 0
	e, err := enr.New(ec, p, cfg.Upstream, nil)
	if err != nil {
		p.Close() // its error adds nothing: nothing was persisted
		return nil, fmt.Errorf("replay dns: %w", err)
	}
	d.pool = p
	d.ic = enr.NewInterceptor(e, enr.InterceptOptions{Synchronous: true, ResolverPort: dnsPort})
	return d, nil
}

// Pool returns the address mapper the ENR allocates from; chained with the
// static mappers it also serves the translator (config.Translation.Mapper).
func (d *DNS) Pool() *pool.Pool { return d.pool }

// Close stops the ENR and the pool's background work.
func (d *DNS) Close() error {
	d.ic.Close()
	if err := d.pool.Close(); err != nil {
		return fmt.Errorf("replay dns: close pool: %w", err)
	}
	return nil
}

// Advance implements Clocked: time moves to ts (never backwards, so a
// capture with reordered timestamps still replays the same way).
func (d *DNS) Advance(ts time.Time) {
	if ts.IsZero() {
		ts = epoch
	}
	n := ts.UnixNano()
	if d.started && n <= d.now.Load() {
		return
	}
	d.now.Store(n)
	if d.started && n-d.coarse.Load() < d.resolution {
		return
	}
	d.coarse.Store(n)
	d.pool.Tick()
	if !d.started || n-d.swept >= d.sweepStep {
		d.swept = n
		d.pool.Sweep()
	}
	d.started = true
}

// Handle implements Handler: UDP to port 53 is a query leaving an
// application, other UDP from port 53 a response arriving, as the daemon's
// DNS queue sees them. Other packets, and fragments after the first, are
// left to the translator.
func (d *DNS) Handle(buf []byte, off int, network Network) (Outcome, bool, error) {
	pkt := buf[off:]
	sport, dport, ok := udpPorts(pkt, network)
	if !ok || (sport != dnsPort && dport != dnsPort) {
		return Outcome{}, false, nil
	}
	var r enr.Result
	if dport == dnsPort {
		r = d.ic.Query(pkt)
	} else {
		// No completion callback: the lookup already ran with the query
		// (synchronous mode), so the response is never held.
		r = d.ic.Response(pkt, nil)
	}
	switch r.Verdict {
	case enr.Accept:
		if r.Packet != nil {
			return Outcome{Action: ActionRewritten, Reason: r.Reason, Packets: [][]byte{r.Packet}}, true, nil
		}
		return Outcome{Action: ActionPassed, Reason: r.Reason, Packets: [][]byte{pkt}}, true, nil
	case enr.Drop:
		if r.Inject != nil {
			return Outcome{Action: ActionAnswered, Reason: r.Reason, Packets: [][]byte{r.Inject}}, true, nil
		}
		return Outcome{Action: ActionDropped, Reason: r.Reason}, true, nil
	}
	return Outcome{}, true, fmt.Errorf("dns: the resolver returned verdict %s for a packet it must decide at once", r.Verdict)
}

// udpPorts reads the UDP ports of an unfragmented datagram or a first
// fragment (whose ports are present). IPv6 extension headers are not
// followed, as in the daemon's ENR.
func udpPorts(p []byte, network Network) (sport, dport uint16, ok bool) {
	var l4 []byte
	switch network {
	case IPv4:
		if len(p) < 20 || p[0]>>4 != 4 || p[9] != 17 {
			return 0, 0, false
		}
		ihl := int(p[0]&0x0f) * 4
		if ihl < 20 || binary.BigEndian.Uint16(p[6:8])&0x1fff != 0 {
			return 0, 0, false
		}
		if len(p) < ihl+4 {
			return 0, 0, false
		}
		l4 = p[ihl:]
	case IPv6:
		if len(p) < 44 || p[0]>>4 != 6 || p[6] != 17 {
			return 0, 0, false
		}
		l4 = p[40:]
	default:
		return 0, 0, false
	}
	return binary.BigEndian.Uint16(l4[0:2]), binary.BigEndian.Uint16(l4[2:4]), true
}

// Interface checks.
var (
	_ Handler = (*DNS)(nil)
	_ Clocked = (*DNS)(nil)
)
