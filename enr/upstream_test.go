package enr

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestDNSUpstreamTCPRetry: a truncated UDP answer is asked again over TCP.
func TestDNSUpstreamTCPRetry(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	ln, err := net.Listen("tcp", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)).String())
	if err != nil {
		pc.Close()
		t.Skipf("TCP port %d taken: %v", port, err)
	}
	answer := func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		if w.LocalAddr().Network() == "udp" {
			m.Truncated = true
		} else {
			m.Answer = rrs("big.bih.test. 60 IN AAAA 2001:db8::1")
		}
		_ = w.WriteMsg(m) // the test fails below if it did not arrive
	}
	udpSrv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(answer)}
	tcpSrv := &dns.Server{Listener: ln, Handler: dns.HandlerFunc(answer)}
	for _, s := range []*dns.Server{udpSrv, tcpSrv} {
		go func() { _ = s.ActivateAndServe() }() // ends at Shutdown
		defer s.Shutdown()
	}
	u := &DNSUpstream{Servers: []netip.AddrPort{netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))}}
	q := new(dns.Msg)
	q.SetQuestion("big.bih.test.", dns.TypeAAAA)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var r *dns.Msg
	for range 20 { // the servers start asynchronously
		if r, err = u.Exchange(ctx, q, netip.AddrPort{}); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	if r.Truncated || len(r.Answer) != 1 {
		t.Fatalf("answer %v, want the full TCP answer", r)
	}
	if _, err := (&DNSUpstream{}).Exchange(ctx, q, netip.AddrPort{}); err == nil {
		t.Fatal("no server: no error")
	}
}
