package main

import (
	"fmt"
	"io"
	"runtime/debug"
)

// version is set with -ldflags "-X main.version=..." by the Makefile.
var version = "dev"

func init() {
	register("version", "print the version", func(args []string, stdout, _ io.Writer) error {
		if len(args) != 0 {
			return fmt.Errorf("%w: version takes no arguments", errUsage)
		}
		v := version
		if bi, ok := debug.ReadBuildInfo(); ok && v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		fmt.Fprintln(stdout, "bih-nfq", v)
		return nil
	})
}
