package config

import (
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"
)

// TestReadmeConfigIsTheDefault keeps the README honest: its "complete file
// with every default" must parse and equal Default().
func TestReadmeConfigIsTheDefault(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(b), "## Configuration")
	if !ok {
		t.Fatal("README has no Configuration section")
	}
	_, block, ok := strings.Cut(after, "```yaml\n")
	if !ok {
		t.Fatal("README's Configuration section has no yaml block")
	}
	block, _, _ = strings.Cut(block, "```")
	got, err := Parse("README.md", []byte(block))
	if err != nil {
		t.Fatalf("README config does not parse: %v", err)
	}
	want := Default()
	// An empty list in the file and a nil default mean the same.
	if len(got.Translation.Map) == 0 && len(want.Translation.Map) == 0 {
		got.Translation.Map, want.Translation.Map = nil, nil
	}
	for _, c := range []*Config{&got, &want} {
		for _, l := range []*[]string{&c.Router.LAN, &c.Router.Hosts, &c.Router.Map, &c.DNS.StubUpstreams, &c.DNS.StubAllowClients} {
			if len(*l) == 0 {
				*l = nil
			}
		}
	}
	// Prefixes are compared by value (::ffff:0:0/96 is ::ffff:0.0.0.0/96).
	for _, c := range []*Config{&got, &want} {
		for _, l := range [][]string{c.DNS.ExcludeA, c.DNS.ExcludeAAAA} {
			for i, p := range l {
				if pfx, err := netip.ParsePrefix(p); err == nil {
					l[i] = pfx.String()
				}
			}
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("README config differs from Default():\n got %+v\nwant %+v", got, want)
	}
	for _, section := range []string{"translation:", "pool:", "host:", "nft:", "queue:", "dns:", "daemon:", "router:", "mode:"} {
		if !strings.Contains(block, "\n"+section) && !strings.HasPrefix(block, section) {
			t.Errorf("README config lacks the %s section", section)
		}
	}
}
