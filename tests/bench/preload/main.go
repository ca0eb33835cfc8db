// Command preload writes a bih-nfq pool journal (pool/README.md,
// "Persistence") holding N dynamic mappings, so that the benchmark starts the
// daemon with a loaded table without issuing N DNS queries (the default
// per-requester rate limit, 50 new mappings per second, would make that take
// minutes).
//
// The first mapping is -first4 ↔ -first6 (the benchmark server); the others
// map the next pool addresses to -fill6 + i, addresses nothing answers. Pool
// addresses are taken in order from -pools, skipping each pool's network and
// broadcast addresses, as the pool itself does.
//
//	preload -state-dir DIR -n 8188
package main

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"
)

const (
	magic      = "BIHPOOL1"
	recordSize = 72
	opPut      = 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type mapping struct {
	v4 netip.Addr
	v6 netip.Addr
}

// encode writes one put record (see pool/journal.go for the layout).
func encode(b []byte, m mapping, requester netip.Addr, created, expiry, lastUse time.Time) {
	clear(b[:recordSize])
	b[0] = opPut
	v4 := m.v4.As4()
	v6 := m.v6.As16()
	rq := netip.AddrFrom16(requester.As16()).As16()
	copy(b[4:8], v4[:])
	copy(b[8:24], v6[:])
	copy(b[24:40], rq[:])
	binary.LittleEndian.PutUint64(b[40:], uint64(created.UnixNano()))
	binary.LittleEndian.PutUint64(b[48:], uint64(expiry.UnixNano()))
	binary.LittleEndian.PutUint64(b[56:], uint64(lastUse.UnixNano()))
	binary.LittleEndian.PutUint32(b[68:], crc32.Checksum(b[:68], castagnoli))
}

// usable lists the addresses of p that the pool hands out (not the network or
// broadcast address).
func usable(p netip.Prefix) []netip.Addr {
	p = p.Masked()
	size := uint64(1) << (32 - p.Bits())
	base := binary.BigEndian.Uint32(p.Addr().AsSlice())
	var out []netip.Addr
	for off := uint64(1); off+1 < size; off++ {
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], base+uint32(off))
		out = append(out, netip.AddrFrom4(a))
	}
	return out
}

func plan(pools []netip.Prefix, n int, first4, first6, fill6 netip.Addr) ([]mapping, error) {
	out := []mapping{{first4, first6}}
	next6 := fill6
	for _, p := range pools {
		for _, a := range usable(p) {
			if len(out) == n {
				return out, nil
			}
			if a == first4 {
				continue
			}
			out = append(out, mapping{a, next6})
			next6 = next6.Next()
		}
	}
	if len(out) < n {
		return nil, fmt.Errorf("the pools hold %d usable addresses, fewer than %d", len(out), n)
	}
	return out, nil
}

// journal is the whole journal file for ms: every mapping created and last
// used at now, its DNS lifetime ending at now + ttl.
func journal(ms []mapping, requester netip.Addr, now time.Time, ttl time.Duration) []byte {
	buf := make([]byte, len(magic)+len(ms)*recordSize)
	copy(buf, magic)
	for i, m := range ms {
		encode(buf[len(magic)+i*recordSize:], m, requester, now, now.Add(ttl), now)
	}
	return buf
}

func run() error {
	var (
		dir    = flag.String("state-dir", "", "bih-nfq state directory to write pool.journal into")
		n      = flag.Int("n", 8188, "number of mappings")
		pools  = flag.String("pools", "10.170.160.0/20,172.21.80.0/20", "destination pools, in order")
		first4 = flag.String("first4", "10.170.160.1", "pool address of the first mapping")
		first6 = flag.String("first6", "2001:db8:2::2", "IPv6 address of the first mapping")
		fill6  = flag.String("fill6", "2001:db8:2::1:0", "first IPv6 address of the other mappings")
		req    = flag.String("requester", "172.21.112.1", "requester recorded for every mapping")
		ttl    = flag.Duration("lifetime", 2*time.Hour, "DNS lifetime from now")
	)
	flag.Parse()
	if *dir == "" || *n < 1 {
		return errors.New("usage: preload -state-dir DIR [-n N]")
	}
	var pfx []netip.Prefix
	for _, s := range strings.Split(*pools, ",") {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil || !p.Addr().Is4() {
			return fmt.Errorf("-pools: bad IPv4 prefix %q", s)
		}
		pfx = append(pfx, p)
	}
	addrs := map[string]netip.Addr{}
	for name, s := range map[string]string{"first4": *first4, "first6": *first6, "fill6": *fill6, "requester": *req} {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return fmt.Errorf("-%s: %v", name, err)
		}
		addrs[name] = a
	}
	ms, err := plan(pfx, *n, addrs["first4"], addrs["first6"], addrs["fill6"])
	if err != nil {
		return err
	}
	buf := journal(ms, addrs["requester"], time.Now(), *ttl)
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return err
	}
	path := filepath.Join(*dir, "pool.journal")
	if err := os.WriteFile(path+".new", buf, 0o600); err != nil {
		return err
	}
	if err := os.Rename(path+".new", path); err != nil {
		return err
	}
	fmt.Printf("preload: %d mappings written to %s\n", len(ms), path)
	return nil
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "preload:", err)
		os.Exit(1)
	}
}
