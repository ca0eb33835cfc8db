package main

import "testing"

// TestProcs: half the CPUs by default, all of them in stub mode or when
// GOMAXPROCS is set in the environment, and queue.procs over both.
func TestProcs(t *testing.T) {
	defer func(p int) { startProcs = p }(startProcs)
	for _, tc := range []struct {
		start, n  int
		stub, env bool
		want      int
	}{
		{start: 1, want: 1},
		{start: 2, want: 1},
		{start: 8, want: 4},
		{start: 3, want: 1},
		{start: 8, stub: true, want: 8},
		{start: 6, env: true, want: 6},
		{start: 8, n: 3, want: 3},
		{start: 2, n: 4, stub: true, env: true, want: 4},
	} {
		startProcs = tc.start
		if got := procs(tc.n, tc.stub, tc.env); got != tc.want {
			t.Errorf("procs(%d, stub %v, env %v) with %d CPUs = %d, want %d", tc.n, tc.stub, tc.env, tc.start, got, tc.want)
		}
	}
}
