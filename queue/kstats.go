package queue

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// KernelStats is one line of /proc/net/netfilter/nfnetlink_queue: the
// kernel's own view of a queue, including the drops userspace never sees.
type KernelStats struct {
	Queue      uint16
	PortID     uint32 // netlink port of the listener
	Waiting    uint64 // packets queued, awaiting a verdict
	CopyMode   uint8
	CopyRange  uint32
	QueueDrops uint64 // dropped because the queue was full
	UserDrops  uint64 // dropped because the netlink socket buffer was full
	LastID     uint64 // id_sequence: last packet id handed out
}

// ParseKernelStats parses the nfnetlink_queue proc file.
func ParseKernelStats(r io.Reader) ([]KernelStats, error) {
	var out []KernelStats
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) < 8 {
			return nil, fmt.Errorf("nfnetlink_queue line %d: %d fields, want at least 8", line, len(f))
		}
		var v [8]uint64
		for i := range v {
			n, err := strconv.ParseUint(f[i], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("nfnetlink_queue line %d field %d: %w", line, i+1, err)
			}
			v[i] = n
		}
		if v[0] > 0xffff || v[3] > 0xff || v[1] > 0xffffffff || v[4] > 0xffffffff {
			return nil, fmt.Errorf("nfnetlink_queue line %d: value out of range", line)
		}
		out = append(out, KernelStats{
			Queue: uint16(v[0]), PortID: uint32(v[1]), Waiting: v[2], CopyMode: uint8(v[3]),
			CopyRange: uint32(v[4]), QueueDrops: v[5], UserDrops: v[6], LastID: v[7],
		})
	}
	return out, sc.Err()
}
