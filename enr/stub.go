package enr

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

// DefaultStubListen is where the stub resolver listens unless configured:
// a loopback address of its own, so it never collides with
// systemd-resolved's 127.0.0.53.
var DefaultStubListen = netip.MustParseAddrPort("127.0.0.35:53")

// DefaultResolvConf is read for upstreams when none are configured.
const DefaultResolvConf = "/etc/resolv.conf"

// StubConfig configures the stub-resolver mode (RFC 6535 Appendix A style:
// the host's resolver points at the ENR).
type StubConfig struct {
	// Listen is the UDP and TCP address (default DefaultStubListen; port 0
	// picks one).
	Listen netip.AddrPort
	// AllowClients lists non-loopback client prefixes to serve. Empty: only
	// loopback clients; everyone else gets REFUSED (never an open resolver).
	AllowClients []netip.Prefix
	// Timeout bounds the handling of one query (default 5 s).
	Timeout time.Duration
}

// Stub is a DNS server applying the ENR rules to what it forwards.
type Stub struct {
	enr  *ENR
	cfg  StubConfig
	addr netip.AddrPort

	mu   sync.Mutex
	udp  *udpServer
	tcp  *dns.Server
	done chan error // the TCP server's end
}

// NewUpstreamForStub returns the stub's upstream: servers when given, else
// the nameservers of resolvConf (DefaultResolvConf when empty) other than
// the stub's own address. control is applied to its sockets (may be nil).
func NewUpstreamForStub(servers []netip.AddrPort, resolvConf string, listen netip.AddrPort, control func(string, string, syscall.RawConn) error) (*DNSUpstream, error) {
	if len(servers) == 0 {
		if resolvConf == "" {
			resolvConf = DefaultResolvConf
		}
		var err error
		if servers, err = ReadResolvConf(resolvConf, listen); err != nil {
			return nil, fmt.Errorf("stub upstream: %w", err)
		}
	}
	return &DNSUpstream{Servers: servers, Control: control}, nil
}

// NewStub returns a stub server using e (whose Upstream forwards the
// application's queries).
func NewStub(e *ENR, cfg StubConfig) (*Stub, error) {
	if !cfg.Listen.IsValid() {
		cfg.Listen = DefaultStubListen
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if !cfg.Listen.Addr().IsLoopback() && len(cfg.AllowClients) == 0 {
		return nil, fmt.Errorf("new stub: %v is not a loopback address and no clients are allowed", cfg.Listen)
	}
	return &Stub{enr: e, cfg: cfg}, nil
}

// Start listens on UDP and TCP and serves in the background.
func (s *Stub) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.udp != nil {
		return errors.New("start stub: already started")
	}
	pc, ln, err := listenBoth(s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("start stub: %w", err)
	}
	udpAddr := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	s.addr = netip.AddrPortFrom(s.cfg.Listen.Addr(), udpAddr.Port())
	udp := &udpServer{stub: s, pc: pc}
	if err := udp.start(); err != nil {
		pc.Close()
		ln.Close()
		return fmt.Errorf("start stub: %w", err)
	}
	s.udp = udp
	s.tcp = &dns.Server{Listener: ln, Handler: dns.HandlerFunc(s.serveTCP)}
	s.done = make(chan error, 1)
	started := make(chan struct{})
	s.tcp.NotifyStartedFunc = func() { close(started) }
	go func() { s.done <- s.tcp.ActivateAndServe() }()
	select {
	case <-started:
	case err := <-s.done:
		s.udp.close()
		s.udp, s.tcp = nil, nil
		return fmt.Errorf("start stub: %w", err)
	}
	return nil
}

// listenBoth opens UDP and TCP on the same port. Port 0 lets UDP pick one;
// when TCP finds that port taken, another is tried.
func listenBoth(addr netip.AddrPort) (*net.UDPConn, net.Listener, error) {
	for tries := 0; ; tries++ {
		pc, err := listenUDP(addr)
		retry := addr.Port() == 0 && tries < 9
		if err != nil {
			if retry && errors.Is(err, syscall.EADDRINUSE) {
				continue
			}
			return nil, nil, err
		}
		port := pc.LocalAddr().(*net.UDPAddr).AddrPort().Port()
		ln, err := net.Listen("tcp", netip.AddrPortFrom(addr.Addr(), port).String())
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		if !retry || !errors.Is(err, syscall.EADDRINUSE) {
			return nil, nil, err
		}
	}
}

// listenUDP binds the stub's first UDP socket. With SO_REUSEPORT, a plain
// bind goes first: the option alone would join another server's sockets on
// the port (same user, option set) instead of failing.
func listenUDP(addr netip.AddrPort) (*net.UDPConn, error) {
	if reusePortConfig.Control != nil {
		probe, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
		if err != nil {
			return nil, err
		}
		addr = netip.AddrPortFrom(addr.Addr(), probe.LocalAddr().(*net.UDPAddr).AddrPort().Port())
		probe.Close()
	}
	c, err := reusePortConfig.ListenPacket(context.Background(), "udp", addr.String())
	if err != nil {
		return nil, err
	}
	return c.(*net.UDPConn), nil
}

// Addr returns the address the stub listens on (valid after Start).
func (s *Stub) Addr() netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Shutdown stops both servers and waits for them, and for the queries
// being answered, within ctx.
func (s *Stub) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	udp, tcp, done := s.udp, s.tcp, s.done
	s.udp, s.tcp = nil, nil
	s.mu.Unlock()
	if udp == nil {
		return nil
	}
	udpDone := udp.close()
	var errs []error
	if err := tcp.ShutdownContext(ctx); err != nil {
		errs = append(errs, err)
	} else {
		select {
		case <-done:
		case <-ctx.Done():
			errs = append(errs, ctx.Err())
		}
	}
	select {
	case <-udpDone:
	case <-ctx.Done():
		errs = append(errs, ctx.Err())
	}
	if len(errs) > 0 {
		return fmt.Errorf("shutdown stub: %w", errors.Join(errs...))
	}
	return nil
}

func (s *Stub) serveTCP(w dns.ResponseWriter, r *dns.Msg) { s.serve(w, r, dns.MaxMsgSize) }

// allowed reports whether a client may use the stub: loopback, or a
// configured prefix.
func (s *Stub) allowed(a net.Addr) bool {
	ip, ok := clientIP(a)
	return ok && s.allowedIP(ip)
}

func (s *Stub) allowedIP(ip netip.Addr) bool {
	if ip.IsLoopback() {
		return true
	}
	for _, p := range s.cfg.AllowClients {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func clientIP(a net.Addr) (netip.Addr, bool) {
	switch v := a.(type) {
	case *net.UDPAddr:
		return v.AddrPort().Addr().Unmap(), true
	case *net.TCPAddr:
		return v.AddrPort().Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

func (s *Stub) serve(w dns.ResponseWriter, r *dns.Msg, size int) {
	ip, ok := clientIP(w.RemoteAddr())
	if !ok {
		ip = netip.IPv4Unspecified() // neither loopback nor allowed: REFUSED
	}
	if err := w.WriteMsg(s.answerFrom(ip, r, size)); err != nil {
		return // the client went away; nothing else to tell it
	}
}

// answerFrom returns the reply to query r from the client at ip.
func (s *Stub) answerFrom(ip netip.Addr, r *dns.Msg, size int) *dns.Msg {
	if out := s.refuse(ip, r); out != nil {
		return out
	}
	plan := s.enr.Plan(r)
	if out, _ := s.enr.resolveCached(r, plan, ip, size); out != nil {
		return out
	}
	return s.resolve(r, plan, ip, size)
}

// refuse returns the local reply to a query the stub does not resolve:
// REFUSED for clients not allowed, NOTIMP, FORMERR; nil for the others.
func (s *Stub) refuse(ip netip.Addr, r *dns.Msg) *dns.Msg {
	if !s.allowedIP(ip) {
		return localAnswer(r, dns.RcodeRefused)
	}
	if r.Response || r.Opcode != dns.OpcodeQuery {
		return localAnswer(r, dns.RcodeNotImplemented)
	}
	if len(r.Question) != 1 {
		m := new(dns.Msg)
		m.SetRcodeFormatError(r)
		return m
	}
	return nil
}

// resolve answers r through the upstream, within the stub's timeout.
func (s *Stub) resolve(r *dns.Msg, plan QueryPlan, ip netip.Addr, size int) *dns.Msg {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
	defer cancel()
	out, err := s.enr.resolvePlanned(ctx, r, plan, ip, size)
	if err != nil || out == nil {
		return fitted(localAnswer(r, dns.RcodeServerFailure), size)
	}
	return out
}
