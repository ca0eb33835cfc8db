package enr

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/miekg/dns"

	"github.com/bih-nfq/bih-nfq/internal/testenv"
)

// TestReplayCapture is the offline path `bih-nfq replay --zone` builds on:
// a capture of A queries and their upstream responses goes through a
// synchronous Interceptor whose upstream is a zone file, and tshark reads
// the synthesized answers out of the result.
func TestReplayCapture(t *testing.T) {
	tshark := testenv.RequireCommand(t, "tshark")
	dir := t.TempDir()
	zonePath := filepath.Join(dir, "test.zone")
	if err := os.WriteFile(zonePath, []byte(testZone), 0o644); err != nil {
		t.Fatal(err)
	}
	z, err := LoadZoneFile(zonePath, "")
	if err != nil {
		t.Fatal(err)
	}

	// The capture: each query and the response the resolver gave.
	names := []string{"v6only.bih.test.", "c1.bih.test.", "dual.bih.test.", "nx.bih.test.", "www.new.bih.test."}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var in [][]byte
	for i, name := range names {
		q := query(name, dns.TypeA)
		q.Id = uint16(100 + i)
		r, err := z.Exchange(t.Context(), q, netip.AddrPort{})
		if err != nil {
			t.Fatal(err)
		}
		in = append(in, udp(app4, resolver4, packMsg(t, q)), udp(resolver4, app4, packMsg(t, r)))
	}
	inPath := filepath.Join(dir, "in.pcap")
	writePcap(t, inPath, in, start)

	// Replay with a fixed clock.
	clk := &fakeClock{now: start}
	cfg := DefaultConfig()
	cfg.Now = clk.Now
	e := newTestENR(t, cfg, newFakeMapper(100), z)
	ic := NewInterceptor(e, InterceptOptions{Synchronous: true})
	defer ic.Close()
	var out [][]byte
	for _, pkt := range readPcap(t, inPath) {
		p, _ := parseUDP(pkt)
		var r Result
		if p.dst.Port() == 53 {
			r = ic.Query(pkt)
		} else {
			r = ic.Response(pkt, nil)
		}
		switch {
		case r.Verdict == Accept && r.Packet != nil:
			out = append(out, r.Packet)
		case r.Verdict == Accept:
			out = append(out, pkt)
		}
		if r.Inject != nil {
			out = append(out, r.Inject)
		}
	}
	outPath := filepath.Join(dir, "out.pcap")
	writePcap(t, outPath, out, start)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, tshark, "-n", "-r", outPath, "-Y", "dns.flags.response == 1",
		"-T", "fields", "-E", "separator=;", "-e", "dns.qry.name", "-e", "dns.flags.rcode", "-e", "dns.a")
	cmd.Env = append(os.Environ(), "HOME="+dir) // tshark writes its profile there
	stdout, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("tshark: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("tshark: %v", err)
	}
	got := strings.Split(strings.TrimSpace(string(stdout)), "\n")
	want := []string{
		"v6only.bih.test;0;10.170.160.1",
		"c1.bih.test;0;10.170.160.1", // the chain ends at v6only: same mapping
		"dual.bih.test;0;192.0.2.2",
		"nx.bih.test;3;",
		"www.new.bih.test;0;10.170.160.2",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("tshark sees\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func writePcap(t *testing.T, path string, pkts [][]byte, ts time.Time) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(65535, layers.LinkTypeRaw); err != nil {
		t.Fatal(err)
	}
	for i, p := range pkts {
		ci := gopacket.CaptureInfo{Timestamp: ts.Add(time.Duration(i) * time.Millisecond), CaptureLength: len(p), Length: len(p)}
		if err := w.WritePacket(ci, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func readPcap(t *testing.T, path string) [][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for range 10000 {
		data, _, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, data)
	}
	t.Fatal("capture too long")
	return nil
}
