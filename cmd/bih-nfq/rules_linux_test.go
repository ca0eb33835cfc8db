package main

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bih-nfq/bih-nfq/internal/hostnet"
	"github.com/bih-nfq/bih-nfq/internal/hostnet/nstest"
)

// TestRulesFromConfig: `rules --config` prints, in a namespace of its own,
// the ruleset the daemon would install there with that file: its table,
// mark and queues, the pools less one overlapping the host's networks (with
// a warning on stderr), and the IPv6 source the daemon would derive.
func TestRulesFromConfig(t *testing.T) {
	n := nstest.New(t)
	n.Run(t, "ip", "link", "add", "up0", "type", "veth", "peer", "name", "up1")
	n.Run(t, "ip", "link", "set", "up0", "up")
	n.Run(t, "ip", "link", "set", "up1", "up")
	n.Run(t, "ip", "-6", "addr", "add", "2001:db8:5::10/64", "dev", "up0", "nodad")
	n.Run(t, "ip", "-6", "route", "add", "default", "dev", "up0")
	n.Run(t, "ip", "addr", "add", "172.21.81.1/24", "dev", "up1")
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rules := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		var code int
		if err := n.Do(func() error {
			code = runMain(append([]string{"rules"}, args...), &stdout, &stderr)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return code, stdout.String(), stderr.String()
	}
	var src6 netip.Addr
	if err := n.Do(func() (err error) {
		_, src6, err = hostnet.PlanSource6(hostnet.Config{}, hostnet.Options{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if !netip.MustParsePrefix("2001:db8:5::/64").Contains(src6) {
		t.Fatalf("planned source %v outside the uplink's /64", src6)
	}

	code, out, errs := rules("--config", write("host.yaml", `pool:
  pools: [10.170.160.0/20, 172.21.80.0/20]
nft:
  table: bihcfg
  mark: "0x1234"
queue:
  count: 3
  translation: 4
  dns: 40
`))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{
		"table ip bihcfg {", "table ip6 bihcfg {", "meta mark 0x00001234 accept",
		"elements = { 10.170.160.0/20 }",
		"ip daddr @pool4 counter queue num 4-6 ",
		"ip6 daddr " + src6.String() + " counter queue num 4-6 ",
		"udp dport 53 counter queue num 40 bypass",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "172.21.80.0/20") || !strings.Contains(errs, "overlaps") {
		t.Errorf("the pool overlapping 172.21.81.0/24 was not left out with a warning; stderr %q", errs)
	}

	// Stub mode: the programs ask the stub, so no host DNS rule.
	code, out, errs = rules("--config", write("stub.yaml", "dns:\n  mode: stub\n"))
	if code != 0 || strings.Contains(out, "dport 53") || !strings.Contains(out, "table ip bih_nfq {") {
		t.Errorf("stub mode: exit %d, stderr %q:\n%s", code, errs, out)
	}

	// The file is the whole description, and must be valid.
	if code, _, errs = rules("--config", write("x.yaml", ""), "--table", "t"); code != 2 || !strings.Contains(errs, "--table") {
		t.Errorf("--config with another flag: exit %d, %q", code, errs)
	}
	if code, _, errs = rules("--config", write("bad.yaml", "queue:\n  dns: 0\n  translation: 0\n")); code == 0 || !strings.Contains(errs, "queue") {
		t.Errorf("overlapping queues: exit %d, %q", code, errs)
	}
	if code, _, errs = rules("--config", filepath.Join(dir, "missing.yaml")); code == 0 || !strings.Contains(errs, "missing.yaml") {
		t.Errorf("missing file: exit %d, %q", code, errs)
	}
}
