// Package golden loads the translator's golden corpus: input packets and the
// packets RFC 7915 says must come out, derived by hand from the RFCs (see
// translate/testdata/golden). The translator's tests and the offline replay
// tests both read the corpus through this package.
//
// A case file looks like this; '#' starts a comment anywhere on a line:
//
//	dir: 4to6                # or 6to4
//	args: --map 198.51.100.0/24=2001:db8:1::/120 --pref64 2001:db8:64::/96
//	action: translated       # or dropped, generated-error
//	reason: none             # a drop.Reason name
//	bad-checksum: no         # yes: the input transport checksum is wrong on purpose
//	input:
//	45 00 00 54 ...          # hex bytes, whitespace-separated, any grouping
//	output:                  # zero or more output blocks, in emission order
//	60 00 00 00 ...
//
// Compare results with Case.Check rather than bytes.Equal: RFC 7915 §5.1
// leaves some IPv4 Identification fields to the translator, and the
// expected files write them as zero.
package golden

import (
	"bufio"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/bih-nfq/bih-nfq/internal/drop"
	"github.com/bih-nfq/bih-nfq/translate"
)

// Directions and actions as written in case files.
const (
	Dir4to6 = "4to6"
	Dir6to4 = "6to4"

	ActionTranslated     = "translated"
	ActionDropped        = "dropped"
	ActionGeneratedError = "generated-error"
)

// Case is one golden case: one input packet and what must become of it.
type Case struct {
	Name        string   // file name without ".golden"
	File        string   // path of the case file
	Dir         string   // Dir4to6 or Dir6to4
	Args        []string // replay flags configuring the translator
	Action      string   // ActionTranslated, ActionDropped or ActionGeneratedError
	Reason      string   // drop.Reason name; "none" when translated
	BadChecksum bool     // input transport checksum wrong on purpose (and so the output's)
	Input       []byte
	Outputs     [][]byte
}

// Load reads every *.golden file in dir, sorted by name.
func Load(dir string) ([]Case, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.golden"))
	if err != nil {
		return nil, fmt.Errorf("golden: list %s: %w", dir, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("golden: no *.golden files in %s", dir)
	}
	sort.Strings(files)
	cases := make([]Case, 0, len(files))
	for _, f := range files {
		c, err := LoadFile(f)
		if err != nil {
			return nil, err
		}
		cases = append(cases, c)
	}
	return cases, nil
}

// LoadFile reads one case file.
func LoadFile(path string) (Case, error) {
	f, err := os.Open(path)
	if err != nil {
		return Case{}, fmt.Errorf("golden: %w", err)
	}
	defer f.Close()
	c, err := Parse(path, f)
	if err != nil {
		return Case{}, err
	}
	return c, nil
}

type lineError struct {
	file string
	line int
	msg  string
}

func (e *lineError) Error() string { return fmt.Sprintf("%s:%d: %s", e.file, e.line, e.msg) }

// Parse reads one case from r; name is used for the case name and in errors.
func Parse(name string, r io.Reader) (Case, error) {
	c := Case{File: name, Name: strings.TrimSuffix(filepath.Base(name), ".golden"), Reason: "none"}
	errAt := func(line int, format string, args ...any) error {
		return &lineError{file: name, line: line, msg: fmt.Sprintf(format, args...)}
	}
	seen := map[string]int{}
	var block *[]byte // the hex block being read
	blockLine := 0
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		key, val, isKey := strings.Cut(line, ":")
		if !isKey {
			if block == nil {
				return Case{}, errAt(n, "hex bytes outside an input: or output: block")
			}
			for _, tok := range strings.Fields(line) {
				if len(tok)%2 != 0 {
					return Case{}, errAt(n, "hex token %q has an odd number of digits", tok)
				}
				b, err := hex.DecodeString(tok)
				if err != nil {
					return Case{}, errAt(n, "bad hex token %q", tok)
				}
				*block = append(*block, b...)
			}
			continue
		}
		key = strings.TrimSpace(key)
		val = strings.TrimSpace(val)
		if block != nil && len(*block) == 0 {
			return Case{}, errAt(blockLine, "empty hex block")
		}
		block = nil
		if prev, dup := seen[key]; dup && key != "output" {
			return Case{}, errAt(n, "duplicate %q (first at line %d)", key, prev)
		}
		seen[key] = n
		switch key {
		case "dir":
			if val != Dir4to6 && val != Dir6to4 {
				return Case{}, errAt(n, "dir %q: want %s or %s", val, Dir4to6, Dir6to4)
			}
			c.Dir = val
		case "args":
			c.Args = strings.Fields(val)
		case "action":
			if val != ActionTranslated && val != ActionDropped && val != ActionGeneratedError {
				return Case{}, errAt(n, "action %q: want %s, %s or %s", val, ActionTranslated, ActionDropped, ActionGeneratedError)
			}
			c.Action = val
		case "reason":
			if _, ok := drop.Parse(val); !ok {
				return Case{}, errAt(n, "reason %q is not a drop reason name", val)
			}
			c.Reason = val
		case "bad-checksum":
			switch val {
			case "yes":
				c.BadChecksum = true
			case "no":
				c.BadChecksum = false
			default:
				return Case{}, errAt(n, "bad-checksum %q: want yes or no", val)
			}
		case "input", "output":
			if val != "" {
				return Case{}, errAt(n, "%s: hex starts on the next line", key)
			}
			if key == "input" {
				block = &c.Input
			} else {
				c.Outputs = append(c.Outputs, nil)
				block = &c.Outputs[len(c.Outputs)-1]
			}
			blockLine = n
		default:
			return Case{}, errAt(n, "unknown key %q", key)
		}
	}
	if err := sc.Err(); err != nil {
		return Case{}, fmt.Errorf("golden: read %s: %w", name, err)
	}
	if block != nil && len(*block) == 0 {
		return Case{}, errAt(blockLine, "empty hex block")
	}
	for _, k := range []string{"dir", "action", "input"} {
		if _, ok := seen[k]; !ok {
			return Case{}, errAt(n, "missing %q", k)
		}
	}
	switch c.Action {
	case ActionTranslated:
		if c.Reason != "none" {
			return Case{}, errAt(seen["reason"], "translated case with reason %q", c.Reason)
		}
		if len(c.Outputs) == 0 {
			return Case{}, errAt(n, "translated case without output")
		}
	case ActionDropped:
		if c.Reason == "none" {
			return Case{}, errAt(seen["action"], "dropped case needs a reason")
		}
		if len(c.Outputs) != 0 {
			return Case{}, errAt(seen["output"], "dropped case with output")
		}
	case ActionGeneratedError:
		if c.Reason == "none" {
			return Case{}, errAt(seen["action"], "generated-error case needs a reason")
		}
		if len(c.Outputs) != 1 {
			return Case{}, errAt(n, "generated-error case needs exactly one output, has %d", len(c.Outputs))
		}
	}
	return c, nil
}

// Config builds the translator configuration from the case's replay flags:
// --map V4PFX=V6PFX (repeatable), --pref64 PFX, --icmp-source4 ADDR,
// --icmp-source6 ADDR, --router, --lowest-ipv6-mtu N, --ipv6-mtu N,
// --ipv4-mtu N and --udp-zero-checksum compute|drop. The Mapper is a
// translate.Chain of the EAM table and the RFC 6052 prefix (RFC 7757 §3.3).
func (c Case) Config() (translate.Config, error) {
	cfg, err := ParseFlags(c.Name, c.Args)
	if err != nil {
		return translate.Config{}, fmt.Errorf("%s: %w", c.File, err)
	}
	return cfg, nil
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

// ParseFlags parses replay flags (see Case.Config) into a translate.Config.
func ParseFlags(name string, args []string) (translate.Config, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var (
		maps                        multiFlag
		pref64, src4, src6, udpZero string
		router                      bool
		lowestMTU, ipv6MTU, ipv4MTU int
	)
	fs.Var(&maps, "map", "explicit address mapping V4PFX=V6PFX (RFC 7757), repeatable")
	fs.StringVar(&pref64, "pref64", "", "RFC 6052 prefix")
	fs.StringVar(&src4, "icmp-source4", "", "RFC 6791 IPv4 source")
	fs.StringVar(&src6, "icmp-source6", "", "RFC 6791 IPv6 source")
	fs.BoolVar(&router, "router", false, "router mode")
	fs.IntVar(&lowestMTU, "lowest-ipv6-mtu", 0, "lowest IPv6 MTU")
	fs.IntVar(&ipv6MTU, "ipv6-mtu", 0, "IPv6 next-hop MTU")
	fs.IntVar(&ipv4MTU, "ipv4-mtu", 0, "IPv4 next-hop MTU")
	fs.StringVar(&udpZero, "udp-zero-checksum", "compute", "compute or drop")
	if err := fs.Parse(args); err != nil {
		return translate.Config{}, fmt.Errorf("replay flags: %w", err)
	}
	if fs.NArg() != 0 {
		return translate.Config{}, fmt.Errorf("replay flags: unexpected argument %q", fs.Arg(0))
	}
	cfg := translate.Config{Router: router, LowestIPv6MTU: lowestMTU, IPv6MTU: ipv6MTU, IPv4MTU: ipv4MTU}
	var members []translate.Mapper
	if len(maps) > 0 {
		t, err := translate.ParseEAMTable(maps)
		if err != nil {
			return translate.Config{}, fmt.Errorf("--map: %w", err)
		}
		members = append(members, t)
	}
	if pref64 != "" {
		p, err := translate.ParseRFC6052Prefix(pref64)
		if err != nil {
			return translate.Config{}, fmt.Errorf("--pref64: %w", err)
		}
		members = append(members, p)
	}
	if len(members) == 0 {
		return translate.Config{}, errors.New("replay flags: need --map or --pref64")
	}
	chain, err := translate.NewChain(members...)
	if err != nil {
		return translate.Config{}, err
	}
	cfg.Mapper = chain
	if src4 != "" {
		a, err := netip.ParseAddr(src4)
		if err != nil || !a.Is4() {
			return translate.Config{}, fmt.Errorf("--icmp-source4 %q: want an IPv4 address", src4)
		}
		cfg.ICMPSource4 = a
	}
	if src6 != "" {
		a, err := netip.ParseAddr(src6)
		if err != nil || !a.Is6() || a.Is4In6() || a.Zone() != "" {
			return translate.Config{}, fmt.Errorf("--icmp-source6 %q: want an IPv6 address", src6)
		}
		cfg.ICMPSource6 = a
	}
	switch udpZero {
	case "compute":
		cfg.UDPZeroChecksum = translate.UDPZeroCompute
	case "drop":
		cfg.UDPZeroChecksum = translate.UDPZeroDrop
	default:
		return translate.Config{}, fmt.Errorf("--udp-zero-checksum %q: want compute or drop", udpZero)
	}
	// RFC 7915 §4.1 lets the administrator raise lowest-ipv6-mtu above 1280,
	// never below; IPv6 links are at least 1280 (RFC 8200 §5), IPv4 links at
	// least 68 (RFC 791).
	switch {
	case lowestMTU != 0 && (lowestMTU < 1280 || lowestMTU > 65535):
		return translate.Config{}, fmt.Errorf("--lowest-ipv6-mtu %d: want 1280..65535", lowestMTU)
	case ipv6MTU != 0 && (ipv6MTU < 1280 || ipv6MTU > 65535):
		return translate.Config{}, fmt.Errorf("--ipv6-mtu %d: want 1280..65535", ipv6MTU)
	case ipv4MTU != 0 && (ipv4MTU < 68 || ipv4MTU > 65535):
		return translate.Config{}, fmt.Errorf("--ipv4-mtu %d: want 68..65535", ipv4MTU)
	}
	return cfg, nil
}
