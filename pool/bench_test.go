package pool

import (
	"net/netip"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// Interface checks without importing translate (structural typing keeps
// the packages independent).
var (
	_ interface {
		To6([4]byte) ([16]byte, bool)
		To4([16]byte) ([4]byte, bool)
	} = (*Pool)(nil)
	_ interface {
		ErrorSourceTo4([16]byte) ([4]byte, bool)
	} = (*Pool)(nil)
)

const benchEntries = 8192

// fullPool returns a pool holding 8,192 mappings: both default /20 pools
// full (8,188) plus 4 static mappings outside them.
func fullPool(b *testing.B) (*Pool, [][4]byte, [][16]byte) {
	cfg := Config{Logger: discardLogger, RequesterRate: -1}
	for i := range 4 {
		cfg.Static = append(cfg.Static, StaticMapping{V4: netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}), V6: v6n(1<<20 + i)})
	}
	p := mustNew(b, cfg)
	var v4s [][4]byte
	var v6s [][16]byte
	for i := range benchEntries - 4 {
		v4 := mustMap(b, p, v6n(i), client1, time.Hour)
		v4s = append(v4s, v4.As4())
		v6s = append(v6s, v6n(i).As16())
	}
	for _, s := range cfg.Static {
		v4s = append(v4s, s.V4.As4())
		v6s = append(v6s, s.V6.As16())
	}
	if n := len(p.Snapshot()); n != benchEntries {
		b.Fatalf("%d entries", n)
	}
	return p, v4s, v6s
}

func BenchmarkTo6(b *testing.B) {
	p, v4s, _ := fullPool(b)
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, ok := p.To6(v4s[i&(benchEntries-1)]); !ok {
				b.Fatal("miss")
			}
			i++
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		var seed atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			i := int(seed.Add(1)) * 977
			for pb.Next() {
				if _, ok := p.To6(v4s[i&(benchEntries-1)]); !ok {
					panic("miss")
				}
				i++
			}
		})
	})
}

func BenchmarkTo4(b *testing.B) {
	p, _, v6s := fullPool(b)
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, ok := p.To4(v6s[i&(benchEntries-1)]); !ok {
				b.Fatal("miss")
			}
			i++
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		var seed atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			i := int(seed.Add(1)) * 977
			for pb.Next() {
				if _, ok := p.To4(v6s[i&(benchEntries-1)]); !ok {
					panic("miss")
				}
				i++
			}
		})
	})
	b.Run("miss", func(b *testing.B) {
		b.ReportAllocs()
		miss := v6n(1 << 24).As16()
		for b.Loop() {
			p.To4(miss)
		}
	})
}

// BenchmarkTouch measures recording use: "steady" when the coarse clock has
// not moved (a load and compare), "tick" when it moves before every packet
// (a store each time: the worst case, normally once per second per entry).
func BenchmarkTouch(b *testing.B) {
	p, v4s, _ := fullPool(b)
	entries := make([]*entry, len(v4s))
	for i, a := range v4s {
		entries[i] = p.find4(a)
	}
	b.Run("steady/serial", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			p.touch(entries[i&(benchEntries-1)])
			i++
		}
	})
	b.Run("steady/parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				p.touch(entries[i&(benchEntries-1)])
				i++
			}
		})
	})
	b.Run("tick/serial", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			p.now.Add(1)
			p.touch(entries[i&(benchEntries-1)])
			i++
		}
	})
	b.Run("tick/parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				p.now.Add(1)
				p.touch(entries[i&(benchEntries-1)])
				i++
			}
		})
	})
}

// BenchmarkMapIPv6New measures creating a mapping, with the journal write and
// fsync ("persistent") or without a state directory ("memory").
// "persistent/parallel" shows group commit: concurrent callers share fsyncs.
func BenchmarkMapIPv6New(b *testing.B) {
	run := func(b *testing.B, dir string, parallel bool) {
		p := mustNew(b, Config{Logger: discardLogger, RequesterRate: -1, StateDir: dir})
		var n atomic.Int64
		const capacity = 8188
		b.ReportAllocs()
		b.ResetTimer()
		mapOne := func() {
			i := int(n.Add(1))
			if _, err := p.MapIPv6(v6n(i), client1, time.Hour); err != nil {
				panic(err)
			}
		}
		if !parallel {
			for i := 0; i < b.N; i++ {
				if i > 0 && i%capacity == 0 {
					b.StopTimer()
					p.Flush()
					b.StartTimer()
				}
				mapOne()
			}
		} else {
			if b.N > capacity {
				//lint:ignore SA3001 one fill: Flush cannot run while others map
				b.N = capacity
			}
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					mapOne()
				}
			})
		}
		b.StopTimer()
		st := p.Stats()
		if st.JournalSyncs > 0 {
			b.ReportMetric(float64(st.JournalRecords)/float64(st.JournalSyncs), "records/fsync")
		}
	}
	b.Run("memory", func(b *testing.B) { run(b, "", false) })
	b.Run("persistent", func(b *testing.B) { run(b, b.TempDir(), false) })
	b.Run("persistent/parallel", func(b *testing.B) { run(b, b.TempDir(), true) })
}

func BenchmarkMapIPv6Existing(b *testing.B) {
	p, _, _ := fullPool(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := p.MapIPv6(v6n(i%(benchEntries-4)), client1, time.Minute); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// TestMemoryPerEntry measures the heap cost of a mapping once the pool
// exists (entry, table bucket use, requester bookkeeping is shared) and the
// fixed cost of the pool's arrays.
func TestMemoryPerEntry(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation sizes")
	}
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	h0 := heap()
	p := mustNew(t, Config{Logger: discardLogger, RequesterRate: -1})
	h1 := heap()
	const n = 8188
	for i := range n {
		mustMap(t, p, v6n(i), client1, time.Hour)
	}
	h2 := heap()
	fixed := float64(h1-h0) / n
	per := float64(h2-h1) / n
	t.Logf("fixed (slots + hash table + free lists) %.0f B per address; %.0f B per mapping; total %.0f B per mapping at capacity", fixed, per, fixed+per)
	if per > 160 || fixed+per > 256 {
		t.Fatalf("memory per mapping %.0f B (+%.0f fixed) exceeds the 160/256 B budget", per, fixed)
	}
	runtime.KeepAlive(p)
}
