package drop

import "testing"

func TestNamesCompleteAndUnique(t *testing.T) {
	seen := map[string]Reason{}
	for r := None; r < numReasons; r++ {
		n := names[r]
		if n == "" {
			t.Fatalf("reason %d has no name", r)
		}
		if prev, ok := seen[n]; ok {
			t.Fatalf("name %q used by %d and %d", n, prev, r)
		}
		seen[n] = r
		got, ok := Parse(n)
		if !ok || got != r {
			t.Fatalf("Parse(%q) = %v, %v; want %v", n, got, ok, r)
		}
	}
	if Reason(numReasons).String() != "unknown" {
		t.Fatal("out-of-range reason must print as unknown")
	}
}

func TestCounters(t *testing.T) {
	var c Counters
	c.Add(None)
	c.Add(TooShort)
	c.Add(TooShort)
	c.Add(numReasons + 3)
	if c.Get(TooShort) != 2 || c.Get(None) != 0 {
		t.Fatalf("counts: %v", c.Snapshot())
	}
	if s := c.Snapshot(); len(s) != 1 || s["too_short"] != 2 {
		t.Fatalf("snapshot: %v", s)
	}
	if n := testing.AllocsPerRun(100, func() { c.Add(BadChecksum) }); n != 0 {
		t.Fatalf("Add allocates %v", n)
	}
}
