package enr

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestStubBatchBothFamilies: on 127.0.0.1 and on ::1, a burst of queries
// from several sockets, answered from the cache (the batch path, several
// answers per sendmmsg), each reaches the socket that asked, with its ID.
func TestStubBatchBothFamilies(t *testing.T) {
	for _, listen := range []string{"127.0.0.1:0", "[::1]:0"} {
		t.Run(listen, func(t *testing.T) {
			lp := netip.MustParseAddrPort(listen)
			if lp.Addr().Is6() {
				if c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback}); err != nil {
					t.Skipf("no IPv6 loopback: %v", err)
				} else {
					c.Close()
				}
			}
			up := newFakeUpstream()
			up.set("v6only.bih.test.", dns.TypeA, dns.RcodeSuccess, nil, []string{soa})
			up.set("v6only.bih.test.", dns.TypeAAAA, dns.RcodeSuccess, []string{"v6only.bih.test. 300 IN AAAA 2001:db8::1"}, nil)
			e := newTestENR(t, DefaultConfig(), newFakeMapper(100), up)
			s := startStub(t, e, StubConfig{Listen: lp})
			// The first answer fills the cache.
			exchange(t, "udp", s.Addr(), query("v6only.bih.test.", dns.TypeA))

			const socks, each = 4, 8
			conns := make([]*net.UDPConn, socks)
			for i := range conns {
				c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(s.Addr()))
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				conns[i] = c
			}
			for i, c := range conns {
				for j := range each {
					q := query("v6only.bih.test.", dns.TypeA)
					q.Id = uint16(i<<8 | j)
					b, err := q.Pack()
					if err != nil {
						t.Fatal(err)
					}
					if _, err := c.Write(b); err != nil {
						t.Fatal(err)
					}
				}
			}
			buf := make([]byte, 1500)
			for i, c := range conns {
				seen := map[uint16]bool{}
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				for range each {
					n, err := c.Read(buf)
					if err != nil {
						t.Fatalf("socket %d: %v (got %d answers)", i, err, len(seen))
					}
					r := new(dns.Msg)
					if err := r.Unpack(buf[:n]); err != nil {
						t.Fatal(err)
					}
					if int(r.Id>>8) != i || len(r.Answer) != 1 || r.Answer[0].Header().Rrtype != dns.TypeA {
						t.Fatalf("socket %d got id %#x: %v", i, r.Id, r)
					}
					seen[r.Id] = true
				}
				if len(seen) != each {
					t.Errorf("socket %d: %d distinct answers, want %d", i, len(seen), each)
				}
			}
		})
	}
}
