package translate_test

import (
	"fmt"
	"testing"

	"github.com/bih-nfq/bih-nfq/translate"
	"github.com/bih-nfq/bih-nfq/translate/golden"
)

// TestGolden runs every case of testdata/golden through the translator and
// compares action, reason and every emitted byte with the packets derived by
// hand from RFC 7915 (see translate/RFC7915.md for the rule each case shows).
func TestGolden(t *testing.T) {
	cases, err := golden.Load("testdata/golden")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			cfg, err := c.Config()
			if err != nil {
				t.Fatal(err)
			}
			tr, err := translate.New(cfg)
			if err != nil {
				t.Fatalf("translate.New(%v): %v", c.Args, err)
			}
			res, err := run(tr, c)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Check(res.Action.String(), res.Reason.String(), res.Packets); err != nil {
				t.Errorf("%s (%s, args %v):\n%v", c.Name, c.Dir, c.Args, err)
			}
		})
	}
}

// run translates the case's input placed at translate.Headroom in a fresh
// buffer, turning a panic into an error so one case cannot stop the rest.
func run(tr *translate.Translator, c golden.Case) (res translate.Result, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("translator panicked: %v", r)
		}
	}()
	buf := make([]byte, translate.Headroom+len(c.Input))
	copy(buf[translate.Headroom:], c.Input)
	if c.Dir == golden.Dir4to6 {
		return tr.Translate4to6(buf, translate.Headroom), nil
	}
	return tr.Translate6to4(buf, translate.Headroom), nil
}
