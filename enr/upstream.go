package enr

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
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
// answer is truncated.
type DNSUpstream struct {
	// Servers are used in order when Exchange gets no server.
	Servers []netip.AddrPort
	// Control, when set, is applied to every socket before it connects;
	// the daemon passes MarkControl so its own queries are not queued
	// again by the nftables rules.
	Control func(network, address string, c syscall.RawConn) error
	// UDPSize is advertised on queries without EDNS0 of their own
	// (default 1232).
	UDPSize uint16
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
	size := u.UDPSize
	if size == 0 {
		size = serverUDPSize
	}
	if opt := m.IsEdns0(); opt != nil && opt.UDPSize() > size {
		size = opt.UDPSize()
	}
	addr := s.String()
	for _, network := range []string{"udp", "tcp"} {
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
		r, _, err := c.ExchangeContext(ctx, m, addr)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", network, addr, err)
		}
		if !r.Truncated {
			return r, nil
		}
		if network == "tcp" {
			return r, nil
		}
	}
	return nil, fmt.Errorf("%s: unreachable", addr) // loop always returns
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
