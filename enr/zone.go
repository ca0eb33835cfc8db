package enr

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"

	"github.com/miekg/dns"
)

// ZoneUpstream answers from RFC 1035 master-file data instead of the
// network, deterministically: `bih-nfq replay --zone FILE` uses it as the
// ENR's upstream. It answers authoritatively: records, CNAME chains and DNAME
// substitution inside its zones (RFC 6672 §2.2), NODATA and NXDOMAIN with the
// zone's SOA in the authority section (RFC 2308 §3), REFUSED outside its
// zones. It ignores the server argument.
type ZoneUpstream struct {
	names map[string][]dns.RR // lower-case owner → records
	soas  []*dns.SOA          // one per zone apex
}

// LoadZoneFile parses the master file at path (origin may be "" when the
// file says $ORIGIN or uses absolute names).
func LoadZoneFile(path, origin string) (*ZoneUpstream, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load zone: %w", err)
	}
	defer f.Close()
	return LoadZone(f, origin, path)
}

// LoadZone parses a master file from r; file names it in errors.
func LoadZone(r io.Reader, origin, file string) (*ZoneUpstream, error) {
	if origin != "" {
		origin = dns.Fqdn(origin)
	}
	z := &ZoneUpstream{names: make(map[string][]dns.RR)}
	zp := dns.NewZoneParser(r, origin, file)
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		if rr.Header().Class != dns.ClassINET {
			continue
		}
		name := strings.ToLower(rr.Header().Name)
		z.names[name] = append(z.names[name], rr)
		if soa, ok := rr.(*dns.SOA); ok {
			z.soas = append(z.soas, soa)
		}
	}
	if err := zp.Err(); err != nil {
		// The parser's error already names the file and line.
		return nil, fmt.Errorf("load zone: %w", err)
	}
	if len(z.soas) == 0 {
		return nil, fmt.Errorf("load zone %s: no SOA record", file)
	}
	return z, nil
}

// zoneOf returns the SOA of the closest enclosing zone of name.
func (z *ZoneUpstream) zoneOf(name string) *dns.SOA {
	var best *dns.SOA
	for _, soa := range z.soas {
		if dns.IsSubDomain(soa.Hdr.Name, name) && (best == nil || dns.CountLabel(soa.Hdr.Name) > dns.CountLabel(best.Hdr.Name)) {
			best = soa
		}
	}
	return best
}

// exists reports whether name owns records or is an empty non-terminal.
func (z *ZoneUpstream) exists(name string) bool {
	if _, ok := z.names[name]; ok {
		return true
	}
	for owner := range z.names {
		if len(owner) > len(name) && dns.IsSubDomain(name, owner) {
			return true
		}
	}
	return false
}

// Exchange implements Upstream.
func (z *ZoneUpstream) Exchange(ctx context.Context, m *dns.Msg, _ netip.AddrPort) (*dns.Msg, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("zone exchange: %w", err)
	}
	resp := new(dns.Msg)
	if len(m.Question) != 1 {
		resp.SetRcodeFormatError(m)
		return resp, nil
	}
	resp.SetReply(m)
	resp.RecursionAvailable = true
	if m.IsEdns0() != nil {
		resp.SetEdns0(serverUDPSize, false)
	}
	q := m.Question[0]
	cur := q.Name
	soa := z.zoneOf(cur)
	if soa == nil {
		resp.Rcode = dns.RcodeRefused
		return resp, nil
	}
	resp.Authoritative = true
	for range 16 {
		key := strings.ToLower(cur)
		rrs := z.names[key]
		var cname *dns.CNAME
		found := false
		for _, rr := range rrs {
			if rr.Header().Rrtype == q.Qtype {
				resp.Answer = append(resp.Answer, withName(rr, cur))
				found = true
			}
			if c, ok := rr.(*dns.CNAME); ok {
				cname = c
			}
		}
		if found {
			return resp, nil
		}
		if cname != nil {
			resp.Answer = append(resp.Answer, withName(cname, cur))
			cur = cname.Target
			if soa = z.zoneOf(cur); soa == nil {
				return resp, nil // out of our data: the chain is the answer
			}
			continue
		}
		if next, dname := z.dnameFor(cur); dname != nil {
			resp.Answer = append(resp.Answer, dns.Copy(dname), &dns.CNAME{
				Hdr:    dns.RR_Header{Name: cur, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: dname.Hdr.Ttl},
				Target: next,
			})
			cur = next
			if soa = z.zoneOf(cur); soa == nil {
				return resp, nil
			}
			continue
		}
		if !z.exists(key) {
			resp.Rcode = dns.RcodeNameError
		}
		neg := dns.Copy(soa).(*dns.SOA)
		neg.Hdr.Ttl = min(neg.Hdr.Ttl, neg.Minttl)
		resp.Ns = append(resp.Ns, neg)
		return resp, nil
	}
	resp.Rcode = dns.RcodeServerFailure // chain longer than we follow
	return resp, nil
}

// dnameFor finds a DNAME at a proper ancestor of name and returns the
// substituted name (RFC 6672 §2.2).
func (z *ZoneUpstream) dnameFor(name string) (string, *dns.DNAME) {
	labels := dns.SplitDomainName(name)
	for i := 1; i < len(labels); i++ {
		owner := strings.ToLower(dns.Fqdn(strings.Join(labels[i:], ".")))
		for _, rr := range z.names[owner] {
			if d, ok := rr.(*dns.DNAME); ok {
				next := dns.Fqdn(strings.Join(labels[:i], ".")) + strings.TrimPrefix(d.Target, ".")
				if d.Target == "." {
					next = dns.Fqdn(strings.Join(labels[:i], "."))
				}
				if len(next) > 255 {
					return "", nil
				}
				return next, d
			}
		}
	}
	return "", nil
}

// withName returns a copy of rr owned by name as the query spelled it.
func withName(rr dns.RR, name string) dns.RR {
	c := dns.Copy(rr)
	c.Header().Name = name
	return c
}
