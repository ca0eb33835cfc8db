package pool

import (
	"bytes"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestRecordRoundTrip(t *testing.T) {
	r := record{op: opPut, v4: [4]byte{10, 170, 160, 1}, v6: v6n(7).As16(), requester: client1.As16(),
		created: 1, expiry: -2, lastUse: 1 << 62}
	var b [recordSize]byte
	r.encode(b[:])
	var got record
	if err := got.decode(b[:]); err != nil || got != r {
		t.Fatalf("decode = %+v, %v; want %+v", got, err, r)
	}
	for i := range recordSize {
		c := b
		c[i] ^= 0x10
		if err := got.decode(c[:]); err == nil {
			t.Fatalf("flipped bit in byte %d not detected", i)
		}
	}
}

// persistentConfig returns a config writing to a fresh state directory.
func persistentConfig(t testing.TB, clk *fakeClock) (Config, *logBuffer) {
	cfg := testConfig(clk)
	cfg.StateDir = t.TempDir()
	logs := &logBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	return cfg, logs
}

func mapN(t testing.TB, p *Pool, from, n int) map[netip.Addr]netip.Addr {
	got := map[netip.Addr]netip.Addr{}
	for i := from; i < from+n; i++ {
		got[v6n(i)] = mustMap(t, p, v6n(i), client1, time.Hour)
	}
	return got
}

func checkMapped(t testing.TB, p *Pool, want map[netip.Addr]netip.Addr) {
	t.Helper()
	for v6, v4 := range want {
		if got, ok := p.To4(v6.As16()); !ok || got != v4.As4() {
			t.Fatalf("%v: To4 = %v,%v; want %v", v6, netip.AddrFrom4(got), ok, v4)
		}
	}
}

func TestRestoreAfterRestart(t *testing.T) {
	clk := newFakeClock()
	cfg, logs := persistentConfig(t, clk)
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := mapN(t, p, 0, 50)
	advance(p, clk, time.Minute)
	used := want[v6n(3)]
	p.To6(used.As4())
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	p2 := mustNew(t, cfg)
	checkMapped(t, p2, want)
	if ms := checkBijection(t, p2); len(ms) != 50 {
		t.Fatalf("restored %d, want 50", len(ms))
	}
	// Last use written at Close survives.
	for _, m := range p2.Snapshot() {
		if m.V4 == used && !m.LastUse.Equal(clk.Now()) {
			t.Fatalf("last use %v, want %v", m.LastUse, clk.Now())
		}
	}
	// New mappings never collide with restored ones.
	more := mapN(t, p2, 50, 50)
	checkMapped(t, p2, more)
	checkBijection(t, p2)
	if st := p2.Stats(); st.Restore.Restored != 50 || st.Restore.Damaged || !st.Persistent {
		t.Fatalf("restore info %+v", st.Restore)
	}
	if logs.Contains("damaged") {
		t.Fatalf("clean restart logged damage:\n%s", logs)
	}
}

func TestRestoreDropsExpired(t *testing.T) {
	clk := newFakeClock()
	cfg, _ := persistentConfig(t, clk)
	cfg.IdleTimeout = time.Hour
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	short := mustMap(t, p, v6n(1), client1, time.Minute)
	long := mustMap(t, p, v6n(2), client1, time.Hour)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	// DNS lifetime of short (1m+10m grace, +5m journal slack) and the idle
	// timeout (1h) have passed; long (1h+10m, +5m) is still alive.
	clk.Add(time.Hour + 5*time.Minute)
	p2 := mustNew(t, cfg)
	if _, ok := p2.LookupIPv4(short); ok {
		t.Fatal("expired mapping restored")
	}
	if got, ok := p2.LookupIPv4(long); !ok || got != v6n(2) {
		t.Fatal("live mapping not restored")
	}
	if st := p2.Stats(); st.Restore.DroppedExpired != 1 {
		t.Fatalf("restore %+v", st.Restore)
	}
}

func TestRestoreIntoChangedConfig(t *testing.T) {
	clk := newFakeClock()
	cfg, _ := persistentConfig(t, clk)
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mustMap(t, p, v6n(1), client1, time.Hour)
	mustMap(t, p, v6n(2), client1, time.Hour)
	mustMap(t, p, v6n(3), client1, time.Hour)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	// Restart with only the secondary pool (plus a static mapping): all three
	// mappings, made in the primary, fall outside the pools.
	cfg2 := cfg
	cfg2.Pools = []netip.Prefix{DefaultSecondary}
	cfg2.Static = []StaticMapping{{V4: netip.MustParseAddr("172.21.80.5"), V6: netip.MustParseAddr("2001:db8::5")}}
	p2 := mustNew(t, cfg2)
	if _, ok := p2.To4(v6n(1).As16()); ok {
		t.Fatal("mapping outside the configured pools restored")
	}
	if st := p2.Stats(); st.Restore.DroppedOutside != 3 {
		t.Fatalf("restore %+v", st.Restore)
	}
	checkBijection(t, p2)
}

// writeJournal produces a journal with n mappings and returns its bytes and
// the mappings.
func writeJournal(t *testing.T, cfg Config, n int) ([]byte, []netip.Addr) {
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var v4s []netip.Addr
	for i := range n {
		v4s = append(v4s, mustMap(t, p, v6n(i), client1, time.Hour))
	}
	p.mu.Lock()
	p.cfg.compactAfter = 1 << 30 // keep the appended records, no rewrite at Close
	p.mu.Unlock()
	close(p.stop) // stop the writer without Close's final rewrite
	p.wg.Wait()
	data, err := os.ReadFile(filepath.Join(cfg.StateDir, journalName))
	if err != nil {
		t.Fatal(err)
	}
	return data, v4s
}

func TestTruncatedJournal(t *testing.T) {
	clk := newFakeClock()
	cfg, logs := persistentConfig(t, clk)
	data, v4s := writeJournal(t, cfg, 10)
	if len(data) != len(journalMagic)+10*recordSize {
		t.Fatalf("journal is %d bytes, want %d", len(data), len(journalMagic)+10*recordSize)
	}
	path := filepath.Join(cfg.StateDir, journalName)
	// Cut in the middle of the last record.
	if err := os.WriteFile(path, data[:len(data)-recordSize/2], 0o600); err != nil {
		t.Fatal(err)
	}
	p := mustNew(t, cfg)
	for i, v4 := range v4s[:9] {
		if got, ok := p.LookupIPv4(v4); !ok || got != v6n(i) {
			t.Fatalf("record %d lost", i)
		}
	}
	if _, ok := p.LookupIPv4(v4s[9]); ok {
		t.Fatal("truncated record restored")
	}
	st := p.Stats()
	if !st.Restore.Damaged || st.Restore.MovedTo == "" || !st.Persistent {
		t.Fatalf("restore %+v", st.Restore)
	}
	moved, err := os.ReadFile(st.Restore.MovedTo)
	if err != nil || !bytes.Equal(moved, data[:len(data)-recordSize/2]) {
		t.Fatalf("damaged file not kept intact: %v", err)
	}
	if !logs.Contains("journal damaged") || !logs.Contains("truncated") {
		t.Fatalf("log does not explain the damage:\n%s", logs)
	}
	// The new journal is clean and complete.
	mustMap(t, p, v6n(100), client1, time.Hour)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	fresh, _ := os.ReadFile(path)
	if _, n, damage := readJournal(fresh); damage != nil || n < 10 {
		t.Fatalf("rewritten journal: %d records, %v", n, damage)
	}
}

func TestCorruptedJournal(t *testing.T) {
	clk := newFakeClock()
	cfg, logs := persistentConfig(t, clk)
	data, v4s := writeJournal(t, cfg, 10)
	path := filepath.Join(cfg.StateDir, journalName)
	bad := bytes.Clone(data)
	bad[len(journalMagic)+4*recordSize+10] ^= 0xff // inside record 4
	if err := os.WriteFile(path, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	p := mustNew(t, cfg)
	for i, v4 := range v4s {
		_, ok := p.LookupIPv4(v4)
		if ok != (i < 4) {
			t.Fatalf("record %d restored = %v", i, ok)
		}
	}
	if !logs.Contains("checksum mismatch") || !logs.Contains("moved_to") {
		t.Fatalf("log:\n%s", logs)
	}
	matches, _ := filepath.Glob(path + ".damaged-*")
	if len(matches) != 1 {
		t.Fatalf("damaged files: %v", matches)
	}
	checkBijection(t, p)
}

func TestGarbageJournalAndDamagedPruning(t *testing.T) {
	clk := newFakeClock()
	cfg, logs := persistentConfig(t, clk)
	path := filepath.Join(cfg.StateDir, journalName)
	for i := range keepDamaged + 3 {
		if err := os.WriteFile(path, []byte("not a journal at all"), 0o600); err != nil {
			t.Fatal(err)
		}
		p, err := New(cfg)
		if err != nil {
			t.Fatalf("start %d refused: %v", i, err)
		}
		if !p.Stats().Persistent {
			t.Fatal("persistence off after a garbage file")
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		clk.Add(time.Second)
	}
	if !logs.Contains("bad magic") {
		t.Fatalf("log:\n%s", logs)
	}
	matches, _ := filepath.Glob(path + ".damaged-*")
	if len(matches) != keepDamaged {
		t.Fatalf("%d damaged files kept, want %d", len(matches), keepDamaged)
	}
}

func TestUnusableStateDir(t *testing.T) {
	clk := newFakeClock()
	cfg, logs := persistentConfig(t, clk)
	file := filepath.Join(cfg.StateDir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.StateDir = file // a file, not a directory
	p := mustNew(t, cfg)
	if p.Stats().Persistent {
		t.Fatal("persistence claimed on an unusable directory")
	}
	mustMap(t, p, v6n(1), client1, time.Hour)
	if !logs.Contains("will not survive") {
		t.Fatalf("log:\n%s", logs)
	}
}

func TestCompactionKeepsState(t *testing.T) {
	clk := newFakeClock()
	cfg, _ := persistentConfig(t, clk)
	cfg.compactAfter = 7
	cfg.IdleTimeout = time.Hour
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := mapN(t, p, 0, 40)
	// Expire some so deletions are journaled and compacted away.
	advance(p, clk, 2*time.Hour)
	for i := range 20 {
		mustMap(t, p, v6n(i), client1, time.Hour) // refresh: keeps these
	}
	advance(p, clk, 30*time.Minute)
	p.Sweep()
	for i := 20; i < 40; i++ {
		delete(want, v6n(i))
	}
	want2 := mapN(t, p, 100, 10)
	if st := p.Stats(); st.Compactions == 0 {
		t.Fatal("no compaction happened")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	p2 := mustNew(t, cfg)
	checkMapped(t, p2, want)
	checkMapped(t, p2, want2)
	if n := len(checkBijection(t, p2)); n != 30 {
		t.Fatalf("restored %d, want 30", n)
	}
}

// FuzzReadJournal: any input replays without panicking and yields a
// bijection.
func FuzzReadJournal(f *testing.F) {
	var b [recordSize]byte
	(&record{op: opPut, v4: [4]byte{10, 170, 160, 1}, v6: v6n(1).As16()}).encode(b[:])
	f.Add(append([]byte(journalMagic), b[:]...))
	f.Add([]byte(journalMagic))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, n, damage := readJournal(data)
		if damage == nil && len(data) > 0 && (len(data)-len(journalMagic))/recordSize != n {
			t.Fatalf("%d records from %d bytes without damage", n, len(data))
		}
		if len(st.by4) != len(st.by6) {
			t.Fatalf("replay lost the bijection: %d v4, %d v6", len(st.by4), len(st.by6))
		}
		for v6, r := range st.by6 {
			if st.by4[r.v4] != v6 {
				t.Fatal("replay maps disagree")
			}
		}
	})
}

// TestPersistErrorRecovers: a write failure is logged and counted, mappings
// keep being served from memory, and the journal is rewritten once the
// directory is usable again.
func TestPersistErrorRecovers(t *testing.T) {
	clk := newFakeClock()
	cfg, logs := persistentConfig(t, clk)
	cfg.StateDir = filepath.Join(cfg.StateDir, "state")
	p := mustNew(t, cfg)
	a := mustMap(t, p, v6n(1), client1, time.Hour)
	if err := os.RemoveAll(cfg.StateDir); err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.wantCompact = true // the next commit rewrites into the missing directory
	p.mu.Unlock()
	b := mustMap(t, p, v6n(2), client1, time.Hour)
	st := p.Stats()
	if st.PersistErrors == 0 || st.PersistError == "" || !logs.Contains("cannot persist") {
		t.Fatalf("write error not reported: %+v\n%s", st, logs)
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for p.Stats().PersistError != "" {
		if time.Now().After(deadline) {
			t.Fatal("journal not rewritten after the directory came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	data, err := os.ReadFile(filepath.Join(cfg.StateDir, journalName))
	if err != nil {
		t.Fatal(err)
	}
	st2, _, damage := readJournal(data)
	if damage != nil || st2.by4[a.As4()] != v6n(1).As16() || st2.by4[b.As4()] != v6n(2).As16() {
		t.Fatalf("rewritten journal incomplete (%v): %v", damage, st2.by4)
	}
}
