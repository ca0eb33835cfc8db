package queue

import (
	"strings"
	"testing"
)

func TestParseKernelStats(t *testing.T) {
	// Format of net/netfilter/nfnetlink_queue.c seq_show:
	// queue portid total copy_mode copy_range queue_dropped user_dropped id_sequence 1
	in := "    0  12345     3 2 65535     7     9      1000 1\n" +
		"   7 4294967295 0 2 65535 0 0 42 1\n"
	got, err := ParseKernelStats(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []KernelStats{
		{Queue: 0, PortID: 12345, Waiting: 3, CopyMode: 2, CopyRange: 65535, QueueDrops: 7, UserDrops: 9, LastID: 1000},
		{Queue: 7, PortID: 4294967295, CopyMode: 2, CopyRange: 65535, LastID: 42},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d lines, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	for _, bad := range []string{"1 2 3\n", "x 1 2 3 4 5 6 7 1\n", "70000 1 2 3 4 5 6 7 1\n"} {
		if _, err := ParseKernelStats(strings.NewReader(bad)); err == nil {
			t.Errorf("ParseKernelStats(%q) accepted bad input", bad)
		}
	}
}
