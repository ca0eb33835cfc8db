package main

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bih-nfq/bih-nfq/internal/config"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// writePcap writes frames as a pcap of link type lt and returns its path.
func writePcap(t *testing.T, dir, name string, lt layers.LinkType, frames ...[]byte) string {
	t.Helper()
	var b bytes.Buffer
	w := pcapgo.NewWriter(&b)
	if err := w.WriteFileHeader(65535, lt); err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	for i, f := range frames {
		ci := gopacket.CaptureInfo{Timestamp: ts.Add(time.Duration(i) * time.Second), CaptureLength: len(f), Length: len(f)}
		if err := w.WritePacket(ci, f); err != nil {
			t.Fatal(err)
		}
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

var (
	ethHdrARP = []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x08, 0x06}
	arpBody   = []byte{0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 172, 21, 112, 1, 0, 0, 0, 0, 0, 0, 10, 170, 160, 1}
	ethIPv4   = append([]byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00},
		0x45, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0xb4, 0x0e, 172, 21, 112, 1, 10, 170, 160, 1,
		0x30, 0x39, 0, 7, 0, 8, 0, 0)
)

const mapFlags = "--map=172.21.112.1/32=2001:db8:b1a5::1/128"

func TestReplayCommandErrors(t *testing.T) {
	dir := t.TempDir()
	good := writePcap(t, dir, "good.pcap", layers.LinkTypeEthernet, append(append([]byte{}, ethHdrARP...), arpBody...))
	full := writePcap(t, dir, "three.pcap", layers.LinkTypeEthernet, ethIPv4, ethIPv4, ethIPv4)
	raw, err := os.ReadFile(full)
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.pcap")
	if err := os.WriteFile(truncated, raw[:len(raw)-10], 0o600); err != nil {
		t.Fatal(err)
	}
	notPcap := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notPcap, []byte("hello, not a capture\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badConfig := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(badConfig, []byte("translation:\n  map: [172.21.112.1=2001:db8::1]\n  ipv6-mtu: 1000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	unknownKey := filepath.Join(dir, "unknown.yaml")
	if err := os.WriteFile(unknownKey, []byte("translation:\n  maps: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.pcap")
	outBad := filepath.Join(dir, "out-bad.pcap")
	cases := []struct {
		name string
		args []string
		code int
		msg  string // stderr must contain it
	}{
		{"no arguments", []string{"replay"}, 2, "want IN.pcap OUT.pcap after the flags, got 0 argument(s)"},
		{"one argument", []string{"replay", mapFlags, good}, 2, "got 1 argument(s)"},
		{"flags after files", []string{"replay", good, out, mapFlags}, 2, "got 3 argument(s)"},
		{"unknown flag", []string{"replay", "--bogus", good, out}, 2, "flag provided but not defined: -bogus"},
		{"bad integer", []string{"replay", mapFlags, "--ipv6-mtu", "big", good, out}, 2, `invalid value "big" for flag -ipv6-mtu`},
		{"bad map", []string{"replay", "--map", "172.21.112.1", good, out}, 2, `--map: explicit address mapping "172.21.112.1": want V4PFX=V6PFX`},
		{"bad pref64", []string{"replay", "--pref64", "2001:db8::/33", good, out}, 2, "--pref64: RFC 6052 prefix 2001:db8::/33"},
		{"bad mtu", []string{"replay", mapFlags, "--lowest-ipv6-mtu", "576", good, out}, 2, "--lowest-ipv6-mtu: 576 is outside 1280..65535"},
		{"bad udp mode", []string{"replay", mapFlags, "--udp-zero-checksum", "skip", good, out}, 2, `--udp-zero-checksum: "skip" is not compute or drop`},
		{"bad icmp source", []string{"replay", mapFlags, "--icmp-source4", "2001:db8::1", good, out}, 2, "--icmp-source4: 2001:db8::1 is not an IPv4 address"},
		{"no mapping", []string{"replay", good, out}, 2, "no address mapping: give --map or --pref64"},
		{"same in and out", []string{"replay", mapFlags, good, good}, 2, "IN, OUT and --verdicts must be different files"},
		{"missing input", []string{"replay", mapFlags, filepath.Join(dir, "nope.pcap"), out}, 1, "open input: open " + filepath.Join(dir, "nope.pcap")},
		{"not a capture", []string{"replay", mapFlags, notPcap, outBad}, 1, notPcap + ": not a pcap or pcapng file (magic 68656c6c)"},
		{"truncated", []string{"replay", mapFlags, truncated, out}, 1,
			truncated + ": packet index 2: capture ends in the middle of a packet (the 2 packet(s) before it were replayed)"},
		{"bad config value", []string{"replay", "--config", badConfig, good, out}, 1, badConfig + ":3: translation.ipv6-mtu: 1000 is outside 1280..65535"},
		{"unknown config key", []string{"replay", "--config", unknownKey, good, out}, 1, unknownKey + ":2: translation.maps: unknown key"},
		{"missing config", []string{"replay", "--config", filepath.Join(dir, "none.yaml"), good, out}, 1, "read config: open "},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := runMain(c.args, &stdout, &stderr)
			if code != c.code {
				t.Errorf("exit %d, want %d; stderr %q", code, c.code, stderr.String())
			}
			msg := stderr.String()
			if !strings.HasPrefix(msg, "bih-nfq replay: ") || !strings.Contains(msg, c.msg) {
				t.Errorf("stderr %q, want it to contain %q", msg, c.msg)
			}
			if strings.Count(msg, "\n") != 1 {
				t.Errorf("stderr is not one line: %q", msg)
			}
		})
	}
	// A run that replayed nothing leaves no output behind.
	if _, err := os.Stat(outBad); !os.IsNotExist(err) {
		t.Errorf("output of a failed run exists: %v", err)
	}
}

func TestReplayCommandHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := runMain([]string{"replay", "-h"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, fl := range []string{"--config", "--map", "--pref64", "--icmp-source4", "--icmp-source6", "--router",
		"--lowest-ipv6-mtu", "--ipv6-mtu", "--ipv4-mtu", "--udp-zero-checksum", "--ignore-tos", "--verdicts"} {
		if !strings.Contains(stdout.String(), fl+" ") {
			t.Errorf("help does not mention %s", fl)
		}
	}
}

// TestReplayCommandVerdicts checks the files a successful run writes. The
// frames used do not reach the translator (ARP, a cut Ethernet header) except
// one IPv4 packet, whose verdict is only checked for shape.
func TestReplayCommandVerdicts(t *testing.T) {
	dir := t.TempDir()
	in := writePcap(t, dir, "in.pcap", layers.LinkTypeEthernet,
		append(append([]byte{}, ethHdrARP...), arpBody...), ethIPv4, ethIPv4[:10])
	out := filepath.Join(dir, "out.pcap")
	vpath := filepath.Join(dir, "verdicts.jsonl")
	var stdout, stderr bytes.Buffer
	if code := runMain([]string{"replay", mapFlags, "--map", "10.170.160.1=2001:db8:ca5a::80", "--verdicts", vpath, in, out}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !strings.HasPrefix(stderr.String(), "replayed 3 packet(s) from "+in+": ") || stdout.Len() != 0 {
		t.Errorf("stdout %q, stderr %q", stdout.String(), stderr.String())
	}
	vb, err := os.ReadFile(vpath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(vb), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d verdict lines, want 3:\n%s", len(lines), vb)
	}
	if lines[0] != `{"index":0,"action":"passed","reason":"","outputs":[]}` ||
		lines[2] != `{"index":2,"action":"dropped","reason":"too_short","outputs":[]}` {
		t.Errorf("verdicts:\n%s", vb)
	}
	var v struct {
		Index   *int    `json:"index"`
		Action  string  `json:"action"`
		Reason  *string `json:"reason"`
		Outputs []int   `json:"outputs"`
	}
	if err := json.Unmarshal([]byte(lines[1]), &v); err != nil || v.Index == nil || *v.Index != 1 || v.Reason == nil || v.Outputs == nil {
		t.Fatalf("verdict 1 %q: %v", lines[1], err)
	}
	switch v.Action {
	case "translated", "generated-error":
		if len(v.Outputs) == 0 || v.Outputs[0] != 0 {
			t.Errorf("verdict 1 %q: want outputs from 0", lines[1])
		}
	case "dropped":
		if *v.Reason == "" || len(v.Outputs) != 0 {
			t.Errorf("verdict 1 %q: a drop has a reason and no outputs", lines[1])
		}
	default:
		t.Errorf("verdict 1 %q: action %q", lines[1], v.Action)
	}
	// --verdicts - writes the same lines to standard output.
	stdout.Reset()
	stderr.Reset()
	if code := runMain([]string{"replay", mapFlags, "--map", "10.170.160.1=2001:db8:ca5a::80", "--verdicts", "-", in, filepath.Join(dir, "out2.pcap")}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if stdout.String() != string(vb) {
		t.Errorf("--verdicts - wrote\n%s\nwant\n%s", stdout.String(), vb)
	}
	ob, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	r, err := pcapgo.NewReader(bytes.NewReader(ob))
	if err != nil {
		t.Fatal(err)
	}
	if r.LinkType() != layers.LinkTypeRaw {
		t.Errorf("output link type %v", r.LinkType())
	}
	n := 0
	for {
		if _, _, err := r.ReadPacketData(); err != nil {
			break
		}
		n++
	}
	if n != len(v.Outputs) {
		t.Errorf("output has %d packets, verdicts list %d", n, len(v.Outputs))
	}
}

func TestReplayFlagsOverrideConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(cfg, []byte(`translation:
  map: [192.0.2.1=2001:db8::1]
  pref64: 64:ff9b::/96
  mode: router
  ipv4-mtu: 1400
  ignore-tos: true
`), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := parseReplayFlags([]string{"--config", cfg, "--map", "192.0.2.2=2001:db8::2", "--map", "192.0.2.3=2001:db8::3",
		"--router=false", "--ipv6-mtu", "9000", "in", "out"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.translation()
	if err != nil {
		t.Fatal(err)
	}
	want := config.Default().Translation
	want.Map = []string{"192.0.2.2=2001:db8::2", "192.0.2.3=2001:db8::3"} // --map replaces the list
	want.Pref64 = netip.MustParsePrefix("64:ff9b::/96")                   // from the file
	want.Mode = config.ModeHost                                           // --router=false wins
	want.IPv4MTU = 1400                                                   // from the file
	want.IPv6MTU = 9000                                                   // flag
	want.IgnoreTOS = true                                                 // from the file
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}
