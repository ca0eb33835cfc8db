package nft

import (
	"slices"
	"testing"

	"github.com/bih-nfq/bih-nfq/internal/hostnet/nstest"
)

func TestDroppingForward(t *testing.T) {
	ns := nstest.New(t)
	if got, err := DroppingForward(opts(ns)); err != nil || len(got) != 0 {
		t.Fatalf("empty ruleset: %v, %v", got, err)
	}
	ns.Run(t, "nft", "-f", writeTemp(t, `
table inet filter {
	chain forward {
		type filter hook forward priority filter; policy drop;
	}
	chain input {
		type filter hook input priority filter; policy drop;
	}
}
table ip6 open {
	chain forward {
		type filter hook forward priority filter; policy accept;
	}
}
table ip v4only {
	chain forward {
		type filter hook forward priority filter; policy drop;
	}
}
table ip6 strict {
	chain fw6 {
		type filter hook forward priority 10; policy drop;
	}
}
`))
	got, err := DroppingForward(opts(ns))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if want := []string{"inet filter forward", "ip6 strict fw6"}; !slices.Equal(got, want) {
		t.Fatalf("dropping forward chains %q, want %q", got, want)
	}
}
