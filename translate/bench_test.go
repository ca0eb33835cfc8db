package translate

import (
	"testing"
)

// benchCase builds one input packet; each iteration translates a fresh copy
// of it (translation is in place), so the copy is part of the measured
// work, the same for every size class.
type benchCase struct {
	name  string
	build func(testing.TB) ([]byte, int)
}

func cases4to6() []benchCase {
	return []benchCase{
		{"TCP64", func(tb testing.TB) ([]byte, int) { return tcp4(tb, app4, srv4, 64-40) }},
		{"TCP1400", func(tb testing.TB) ([]byte, int) { return tcp4(tb, app4, srv4, 1400-40) }},
		{"UDP64", func(tb testing.TB) ([]byte, int) { return udp4(tb, app4, srv4, 64-28) }},
		{"ICMPEcho", func(tb testing.TB) ([]byte, int) { return echo4(tb, app4, srv4, 56) }},
	}
}

func cases6to4() []benchCase {
	return []benchCase{
		{"TCP64", func(tb testing.TB) ([]byte, int) { return tcp6(tb, srv6, app6, 64-60) }},
		{"TCP1400", func(tb testing.TB) ([]byte, int) { return tcp6(tb, srv6, app6, 1400-60) }},
		{"UDP64", func(tb testing.TB) ([]byte, int) { return udp6(tb, srv6, app6, 64-48) }},
		{"ICMPEcho", func(tb testing.TB) ([]byte, int) { return echo6(tb, srv6, app6, 128, 56) }},
	}
}

// restore4to6 puts the original IPv4 packet back in place: only the
// header area and the transport checksum were written.
func restore(dst, src []byte, off int) {
	copy(dst[:off+64], src[:off+64])
}

func BenchmarkTranslate4to6(b *testing.B) {
	for _, bc := range cases4to6() {
		b.Run(bc.name, func(b *testing.B) {
			tr := newTranslator(b, nil)
			orig, off := bc.build(b)
			buf := append([]byte(nil), orig...)
			b.SetBytes(int64(len(orig) - off))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				restore(buf, orig, off)
				if r := tr.Translate4to6(buf, off); r.Action != Translated {
					b.Fatalf("%v %v", r.Action, r.Reason)
				}
			}
		})
	}
}

func BenchmarkTranslate6to4(b *testing.B) {
	for _, bc := range cases6to4() {
		b.Run(bc.name, func(b *testing.B) {
			tr := newTranslator(b, nil)
			orig, off := bc.build(b)
			buf := append([]byte(nil), orig...)
			b.SetBytes(int64(len(orig) - off))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				restore(buf, orig, off)
				if r := tr.Translate6to4(buf, off); r.Action != Translated {
					b.Fatalf("%v %v", r.Action, r.Reason)
				}
			}
		})
	}
}

func TestTranslateAllocs(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage instrumentation may allocate")
	}
	for _, dir := range []struct {
		name  string
		cases []benchCase
		fn    func(*Translator, []byte, int) Result
	}{
		{"4to6", cases4to6(), (*Translator).Translate4to6},
		{"6to4", cases6to4(), (*Translator).Translate6to4},
	} {
		for _, bc := range dir.cases {
			t.Run(dir.name+"/"+bc.name, func(t *testing.T) {
				tr := newTranslator(t, nil)
				orig, off := bc.build(t)
				buf := append([]byte(nil), orig...)
				var last Result
				n := testing.AllocsPerRun(100, func() {
					restore(buf, orig, off)
					last = dir.fn(tr, buf, off)
				})
				if last.Action != Translated {
					t.Fatalf("not translated: %v %v", last.Action, last.Reason)
				}
				if n != 0 {
					t.Fatalf("%v allocations per packet, want 0", n)
				}
			})
		}
	}
	// Fragmentation and ICMP errors also stay allocation-free.
	tr := newTranslator(t, nil)
	big, off := udp4(t, app4, srv4, 3000)
	big[off+6] = 0
	fix4(big[off:])
	bigCopy := append([]byte(nil), big...)
	inner := innerUDP6(t, app6, srv6, 100)
	errPkt, eoff := icmp6Error(t, srv6, app6, 1, 4, 0, inner)
	errCopy := append([]byte(nil), errPkt...)
	n := testing.AllocsPerRun(50, func() {
		copy(big, bigCopy)
		if r := tr.Translate4to6(big, off); len(r.Packets) < 3 {
			t.Fatal("not fragmented")
		}
		copy(errPkt, errCopy)
		if r := tr.Translate6to4(errPkt, eoff); r.Action != Translated {
			t.Fatal("error not translated")
		}
	})
	if n != 0 {
		t.Fatalf("%v allocations for fragmentation/ICMP errors", n)
	}
}
