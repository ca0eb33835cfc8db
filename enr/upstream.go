package enr

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

// Upstream is where the ENR sends queries: the application's resolver in
// intercept mode, the configured resolvers in stub mode, a zone file in
// replay. Exchange must honour ctx's deadline.
type Upstream interface {
	// Exchange sends m to server and returns the response. A zero server
	// means the upstream's own default.
	Exchange(ctx context.Context, m *dns.Msg, server netip.AddrPort) (*dns.Msg, error)
}

// DNSUpstream queries real resolvers over UDP, retrying over TCP when the
// answer is truncated. UDP queries share a few long-lived connected sockets
// per server, each query under a random ID; Close releases them. Use it by
// pointer.
type DNSUpstream struct {
	// Servers are used in order when Exchange gets no server.
	Servers []netip.AddrPort
	// Control, when set, is applied to every socket before it connects;
	// the daemon passes MarkControl so its own queries are not queued
	// again by the nftables rules.
	Control func(network, address string, c syscall.RawConn) error
	// UDPSize is the smallest UDP receive buffer for one-off sockets
	// (default 1232); shared sockets take any size.
	UDPSize uint16

	pools udpPools
}

// Close releases the shared sockets; queries waiting on them fail. Later
// queries use a socket of their own each.
func (u *DNSUpstream) Close() error {
	u.pools.close()
	return nil
}

// Exchange implements Upstream.
func (u *DNSUpstream) Exchange(ctx context.Context, m *dns.Msg, server netip.AddrPort) (*dns.Msg, error) {
	servers := u.Servers
	if server.IsValid() {
		servers = []netip.AddrPort{server}
	}
	if len(servers) == 0 {
		return nil, errors.New("exchange: no upstream server")
	}
	var errs []error
	for _, s := range servers {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		r, err := u.exchangeOne(ctx, m, s)
		if err == nil {
			return r, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("exchange: %w", errors.Join(errs...))
}

func (u *DNSUpstream) exchangeOne(ctx context.Context, m *dns.Msg, s netip.AddrPort) (*dns.Msg, error) {
	if p := u.pooled(m, s); p != nil {
		r, err := u.exchangePooled(ctx, p, m)
		switch {
		case err == nil && !r.Truncated:
			return r, nil
		case err == nil: // truncated: ask again over TCP below
		case errors.Is(err, errSocketFull):
			p.stats.fallbacks.Add(1)
			return u.exchangeDial(ctx, m, s, "udp", "tcp")
		default:
			return nil, fmt.Errorf("udp %s: %w", s, err)
		}
		return u.exchangeDial(ctx, m, s, "tcp")
	}
	return u.exchangeDial(ctx, m, s, "udp", "tcp")
}

// pooled returns the shared sockets for a query to s, or nil when the query
// takes a socket of its own: not one plain question, or a name with escapes
// (matched on the wire only without them).
func (u *DNSUpstream) pooled(m *dns.Msg, s netip.AddrPort) *udpPool {
	if len(m.Question) != 1 || strings.ContainsRune(m.Question[0].Name, '\\') {
		return nil
	}
	return u.pools.get(s, u.Control)
}

func (u *DNSUpstream) exchangePooled(ctx context.Context, p *udpPool, m *dns.Msg) (*dns.Msg, error) {
	packed, err := m.Pack()
	if err != nil {
		return nil, err
	}
	b, err := p.exchange(ctx, packed, m.Question[0])
	if err != nil {
		return nil, err
	}
	r := new(dns.Msg)
	if err := r.Unpack(b); err != nil {
		return nil, err
	}
	r.Id = m.Id
	return r, nil
}

// exchangeDial asks s over a socket of its own per try, in the order of
// networks, moving to the next only when the answer is truncated.
func (u *DNSUpstream) exchangeDial(ctx context.Context, m *dns.Msg, s netip.AddrPort, networks ...string) (*dns.Msg, error) {
	size := u.UDPSize
	if size == 0 {
		size = serverUDPSize
	}
	if opt := m.IsEdns0(); opt != nil && opt.UDPSize() > size {
		size = opt.UDPSize()
	}
	addr := s.String()
	var r *dns.Msg
	for _, network := range networks {
		timeout := 2 * time.Second
		if dl, ok := ctx.Deadline(); ok {
			timeout = time.Until(dl)
		}
		c := &dns.Client{
			Net:     network,
			UDPSize: size,
			Timeout: timeout,
			Dialer:  &net.Dialer{Timeout: timeout, Control: u.Control},
		}
		var err error
		r, _, err = c.ExchangeContext(ctx, m, addr)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", network, addr, err)
		}
		if !r.Truncated {
			return r, nil
		}
	}
	return r, nil
}

// ReadResolvConf returns the nameservers of a resolv.conf file (RFC 1035
// master-file-like syntax of resolver(5)), port 53 unless it says otherwise,
// leaving out skip (the stub's own address, to avoid asking itself).
func ReadResolvConf(path string, skip netip.AddrPort) ([]netip.AddrPort, error) {
	cc, err := dns.ClientConfigFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	port, err := strconv.ParseUint(cc.Port, 10, 16)
	if err != nil {
		port = 53
	}
	var out []netip.AddrPort
	for _, s := range cc.Servers {
		a, err := netip.ParseAddr(s)
		if err != nil {
			continue // a scoped link-local name we cannot dial; skip it
		}
		ap := netip.AddrPortFrom(a.Unmap(), uint16(port))
		if ap != skip {
			out = append(out, ap)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("read %s: no usable nameserver", path)
	}
	return out, nil
}
