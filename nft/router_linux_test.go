package nft

import (
	"strings"
	"testing"

	"github.com/bih-nfq/bih-nfq/internal/hostnet/nstest"
)

// The router rules compile through netlink exactly as nft compiles their
// text, in both host+router and router-only form, and external mode finds
// what it needs in them.
func TestRouterRenderedTextEquivalent(t *testing.T) {
	for _, noHost := range []bool{false, true} {
		cfg := routerConfig(noHost)
		text, err := Render(cfg)
		if err != nil {
			t.Fatal(err)
		}
		viaNetlink, viaText := nstest.New(t), nstest.New(t)
		if _, err := Install(cfg, opts(viaNetlink)); err != nil {
			t.Fatalf("noHost=%v: %v", noHost, err)
		}
		native := nativeQueueLoads(t, viaText)
		if !native {
			text = markPlaceholder(text)
		}
		f := writeTemp(t, text)
		viaText.Run(t, "nft", "-f", f)
		a, b := dump(t, viaNetlink, cfg), dump(t, viaText, cfg)
		if a != b {
			t.Fatalf("noHost=%v: netlink-installed ruleset:\n%s\ndiffers from nft -f of the rendered text:\n%s", noHost, a, b)
		}
		// 2 LAN links × 4 rules + lan-xlat-in + own in ip output and input
		// (router-only), plus the 12 host rules.
		want := 11
		if !noHost {
			want = 8 + 1 + 12
		}
		if n := strings.Count(a, "rule "); n != want {
			t.Fatalf("noHost=%v: %d rules, want %d:\n%s", noHost, n, want, a)
		}
		if native {
			if _, err := Verify(cfg, opts(viaText)); err != nil {
				t.Fatal(err)
			}
		}
		r, err := Install(cfg, opts(viaNetlink)) // replaces its own tables
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Remove(); err != nil {
			t.Fatal(err)
		}
	}
}
