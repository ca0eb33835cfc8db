// Command dnsstub runs bih-nfq's ENR in stub mode (enr.Stub, RFC 6535
// Appendix A style) for the DNS benchmark: the same resolver, pool and
// upstream code as the daemon, without the packet path, which a stub-mode
// query never touches.
//
//	dnsstub -listen 127.0.0.35:53 -upstream [2001:db8:2::53]:53 -state-dir DIR
//
// It serves until SIGTERM or SIGINT; -cpuprofile writes a pprof CPU profile
// of the whole run.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/bih-nfq/bih-nfq/enr"
	"github.com/bih-nfq/bih-nfq/pool"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "dnsstub:", err)
		os.Exit(1)
	}
}

func run() error {
	listen := flag.String("listen", enr.DefaultStubListen.String(), "UDP and TCP address to serve")
	upstream := flag.String("upstream", "", "resolver address:port (default: /etc/resolv.conf)")
	stateDir := flag.String("state-dir", "", "pool journal directory (required)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile here")
	flag.Parse()
	if *stateDir == "" {
		return fmt.Errorf("-state-dir is required")
	}
	la, err := netip.ParseAddrPort(*listen)
	if err != nil {
		return fmt.Errorf("-listen: %w", err)
	}
	var servers []netip.AddrPort
	if *upstream != "" {
		s, err := netip.ParseAddrPort(*upstream)
		if err != nil {
			return fmt.Errorf("-upstream: %w", err)
		}
		servers = append(servers, s)
	}
	pcfg := pool.DefaultConfig()
	pcfg.StateDir = *stateDir
	p, err := pool.New(pcfg)
	if err != nil {
		return err
	}
	defer p.Close()
	up, err := enr.NewUpstreamForStub(servers, "", la, nil)
	if err != nil {
		return err
	}
	defer up.Close()
	e, err := enr.New(enr.DefaultConfig(), p, up, nil)
	if err != nil {
		return err
	}
	stub, err := enr.NewStub(e, enr.StubConfig{Listen: la})
	if err != nil {
		return err
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if err := stub.Start(); err != nil {
		return err
	}
	fmt.Printf("dnsstub: serving on %v, upstream %v\n", stub.Addr(), up.Servers)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return stub.Shutdown(sctx)
}
