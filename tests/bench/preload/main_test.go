package main

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bih-nfq/bih-nfq/pool"
)

// TestJournalRestores checks that the pool accepts the preloaded journal as
// written: every mapping restored, none dropped, the first one in place.
func TestJournalRestores(t *testing.T) {
	pools := []netip.Prefix{netip.MustParsePrefix("10.170.160.0/20"), netip.MustParsePrefix("172.21.80.0/20")}
	first4, first6 := netip.MustParseAddr("10.170.160.1"), netip.MustParseAddr("2001:db8:2::2")
	ms, err := plan(pools, 8188, first4, first6, netip.MustParseAddr("2001:db8:2::1:0"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plan(pools, 8189, first4, first6, netip.MustParseAddr("2001:db8:2::1:0")); err == nil {
		t.Error("8189 mappings fit in two /20 pools")
	}
	dir := t.TempDir()
	b := journal(ms, netip.MustParseAddr("172.21.112.1"), time.Now(), 2*time.Hour)
	if err := os.WriteFile(filepath.Join(dir, "pool.journal"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := pool.DefaultConfig()
	cfg.Pools = pools
	cfg.StateDir = dir
	p, err := pool.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	r := p.Stats().Restore
	if r.Restored != len(ms) || r.Damaged || r.DroppedExpired+r.DroppedConflict+r.DroppedOutside != 0 {
		t.Fatalf("restore: %+v, want %d restored", r, len(ms))
	}
	if got, ok := p.LookupIPv4(first4); !ok || got != first6 {
		t.Errorf("%v maps to %v (%v), want %v", first4, got, ok, first6)
	}
}
