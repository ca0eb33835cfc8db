package main

import (
	"fmt"
	"os"
	"runtime/pprof"
	"time"
)

// A CPU profile on request, for measuring the data path: with
// BIH_NFQ_CPUPROFILE=FILE set, the process profiles itself from
// BIH_NFQ_CPUPROFILE_AFTER (a duration, default 0) for
// BIH_NFQ_CPUPROFILE_FOR (default 30s) and writes FILE when the window
// closes. A fixed window needs no exit hook, so the daemon's shutdown path
// stays untouched. Unset, nothing happens.
func init() {
	path := os.Getenv("BIH_NFQ_CPUPROFILE")
	if path == "" {
		return
	}
	after, err1 := envDuration("BIH_NFQ_CPUPROFILE_AFTER", 0)
	span, err2 := envDuration("BIH_NFQ_CPUPROFILE_FOR", 30*time.Second)
	if err1 != nil || err2 != nil {
		fmt.Fprintln(os.Stderr, "bih-nfq: cpu profile:", err1, err2)
		return
	}
	go func() {
		time.Sleep(after)
		f, err := os.Create(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bih-nfq: cpu profile:", err)
			return
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "bih-nfq: cpu profile:", err)
			return
		}
		time.Sleep(span)
		pprof.StopCPUProfile()
	}()
}

func envDuration(name string, def time.Duration) (time.Duration, error) {
	s := os.Getenv(name)
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%s=%q: want a duration such as 10s", name, s)
	}
	return d, nil
}
