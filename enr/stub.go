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

	mu      sync.Mutex
	servers []*dns.Server
	done    chan error
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
	if s.servers != nil {
		return errors.New("start stub: already started")
	}
	pc, err := net.ListenPacket("udp", s.cfg.Listen.String())
	if err != nil {
		return fmt.Errorf("start stub: %w", err)
	}
	// TCP on the same port as UDP (port 0 picks one for UDP first).
	udpAddr := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	ln, err := net.Listen("tcp", netip.AddrPortFrom(s.cfg.Listen.Addr(), udpAddr.Port()).String())
	if err != nil {
		pc.Close()
		return fmt.Errorf("start stub: %w", err)
	}
	s.addr = netip.AddrPortFrom(s.cfg.Listen.Addr(), udpAddr.Port())
	udp := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(s.serveUDP)}
	tcp := &dns.Server{Listener: ln, Handler: dns.HandlerFunc(s.serveTCP)}
	s.servers = []*dns.Server{udp, tcp}
	s.done = make(chan error, 2)
	var started sync.WaitGroup
	for _, srv := range s.servers {
		started.Add(1)
		srv.NotifyStartedFunc = started.Done
		go func() { s.done <- srv.ActivateAndServe() }()
	}
	started.Wait()
	return nil
}

// Addr returns the address the stub listens on (valid after Start).
func (s *Stub) Addr() netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Shutdown stops both servers and waits for them within ctx.
func (s *Stub) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	servers := s.servers
	s.servers = nil
	s.mu.Unlock()
	var errs []error
	for _, srv := range servers {
		if err := srv.ShutdownContext(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	for range servers {
		select {
		case <-s.done:
		case <-ctx.Done():
			errs = append(errs, ctx.Err())
			return fmt.Errorf("shutdown stub: %w", errors.Join(errs...))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("shutdown stub: %w", errors.Join(errs...))
	}
	return nil
}

func (s *Stub) serveUDP(w dns.ResponseWriter, r *dns.Msg) { s.serve(w, r, clientUDPSize(r)) }
func (s *Stub) serveTCP(w dns.ResponseWriter, r *dns.Msg) { s.serve(w, r, dns.MaxMsgSize) }

// allowed reports whether a client may use the stub: loopback, or a
// configured prefix.
func (s *Stub) allowed(a net.Addr) bool {
	var ip netip.Addr
	switch v := a.(type) {
	case *net.UDPAddr:
		ip = v.AddrPort().Addr()
	case *net.TCPAddr:
		ip = v.AddrPort().Addr()
	default:
		return false
	}
	ip = ip.Unmap()
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

func (s *Stub) serve(w dns.ResponseWriter, r *dns.Msg, size int) {
	reply := func(m *dns.Msg) {
		if err := w.WriteMsg(m); err != nil {
			return // the client went away; nothing else to tell it
		}
	}
	if !s.allowed(w.RemoteAddr()) {
		reply(localAnswer(r, dns.RcodeRefused))
		return
	}
	if r.Response || r.Opcode != dns.OpcodeQuery {
		reply(localAnswer(r, dns.RcodeNotImplemented))
		return
	}
	if len(r.Question) != 1 {
		m := new(dns.Msg)
		m.SetRcodeFormatError(r)
		reply(m)
		return
	}
	var requester netip.Addr
	if ap, err := netip.ParseAddrPort(w.RemoteAddr().String()); err == nil {
		requester = ap.Addr().Unmap()
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
	defer cancel()
	out, err := s.enr.Resolve(ctx, r, requester, size)
	if err != nil || out == nil {
		reply(fitted(localAnswer(r, dns.RcodeServerFailure), size))
		return
	}
	reply(out)
}
