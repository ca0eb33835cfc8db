package replay

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/bih-nfq/bih-nfq/internal/drop"
	"github.com/bih-nfq/bih-nfq/translate"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// fakeTranslator stands in for the engine so the pipeline's own rules can be
// tested: IPv4 is "translated" into two fragments that alias the input
// buffer; IPv6 to ::80 gets a generated error, other IPv6 is dropped.
type fakeTranslator struct {
	t     *testing.T
	calls []string
	seen  [][]byte
	err   []byte // the generated error, owned by the fake
}

func (f *fakeTranslator) check(buf []byte, off int) {
	if off < translate.Headroom {
		f.t.Errorf("offset %d < Headroom %d", off, translate.Headroom)
	}
	f.seen = append(f.seen, append([]byte(nil), buf[off:]...))
}

func (f *fakeTranslator) Translate4to6(buf []byte, off int) translate.Result {
	f.calls = append(f.calls, "4to6")
	f.check(buf, off)
	p := buf[off:]
	return translate.Result{Action: translate.Translated, Packets: [][]byte{p[:10], p[10:]}}
}

func (f *fakeTranslator) Translate6to4(buf []byte, off int) translate.Result {
	f.calls = append(f.calls, "6to4")
	f.check(buf, off)
	if buf[off+23] == 0x80 {
		f.err = []byte{0x60, 0xee, 0xee}
		return translate.Result{Action: translate.GeneratedError, Reason: drop.PacketTooBig, Packets: [][]byte{f.err}}
	}
	return translate.Result{Action: translate.Dropped, Reason: drop.NoMappingDestination}
}

func readOutput(t *testing.T, b []byte) (pkts [][]byte, ts []time.Time) {
	t.Helper()
	r, err := pcapgo.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if r.LinkType() != layers.LinkTypeRaw {
		t.Errorf("output link type %d, want RAW (101)", r.LinkType())
	}
	for {
		d, ci, err := r.ReadPacketData()
		if err == io.EOF {
			return pkts, ts
		}
		if err != nil {
			t.Fatal(err)
		}
		pkts = append(pkts, d)
		ts = append(ts, ci.Timestamp)
	}
}

func TestRunVerdictsAndOutputs(t *testing.T) {
	other6 := append([]byte(nil), testIPv6...)
	other6[23] = 0x81
	eth := func(et uint16, p []byte) []byte { return frameFor(t, layers.LinkTypeEthernet, et, p, false) }
	frames := []testFrame{
		{ts: t0, data: eth(etherTypeIPv4, testIPv4)},
		{ts: t0.Add(1 * time.Second), data: eth(etherTypeARP, testARP)},
		{ts: t0.Add(2 * time.Second), data: eth(etherTypeIPv6, testIPv6)},
		{ts: t0.Add(3 * time.Second), data: eth(etherTypeIPv6, other6)},
		{ts: t0.Add(4 * time.Second), data: []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{ts: t0.Add(5 * time.Second), data: eth(etherTypeIPv4, testIPv4)},
	}
	for _, format := range []Format{FormatPcap, FormatPcapng} {
		t.Run(format.String(), func(t *testing.T) {
			in := buildCapture(t, format, layers.LinkTypeEthernet, frames)
			ft := &fakeTranslator{t: t}
			var out, verdicts bytes.Buffer
			sum, err := Run(bytes.NewReader(in), &out, &verdicts, &Pipeline{Translator: ft})
			if err != nil {
				t.Fatal(err)
			}
			wantVerdicts := `{"index":0,"action":"translated","reason":"","outputs":[0,1]}
{"index":1,"action":"passed","reason":"","outputs":[]}
{"index":2,"action":"generated-error","reason":"packet_too_big","outputs":[2]}
{"index":3,"action":"dropped","reason":"no_mapping_destination","outputs":[]}
{"index":4,"action":"dropped","reason":"too_short","outputs":[]}
{"index":5,"action":"translated","reason":"","outputs":[3,4]}
`
			if verdicts.String() != wantVerdicts {
				t.Errorf("verdicts:\n%s\nwant:\n%s", verdicts.String(), wantVerdicts)
			}
			if got := strings.Join(ft.calls, ","); got != "4to6,6to4,6to4,4to6" {
				t.Errorf("translator calls %s", got)
			}
			for i, want := range [][]byte{testIPv4, testIPv6, other6, testIPv4} {
				if !bytes.Equal(ft.seen[i], want) {
					t.Errorf("call %d saw % x, want % x", i, ft.seen[i], want)
				}
			}
			pkts, ts := readOutput(t, out.Bytes())
			wantPkts := [][]byte{testIPv4[:10], testIPv4[10:], {0x60, 0xee, 0xee}, testIPv4[:10], testIPv4[10:]}
			wantTS := []time.Time{t0, t0, t0.Add(2 * time.Second), t0.Add(5 * time.Second), t0.Add(5 * time.Second)}
			if len(pkts) != len(wantPkts) {
				t.Fatalf("%d output packets, want %d", len(pkts), len(wantPkts))
			}
			for i := range pkts {
				if !bytes.Equal(pkts[i], wantPkts[i]) || !ts[i].Equal(wantTS[i]) {
					t.Errorf("output %d: % x at %v, want % x at %v", i, pkts[i], ts[i], wantPkts[i], wantTS[i])
				}
			}
			if sum.Packets != 6 || sum.Outputs != 5 || sum.ByAction[ActionTranslated] != 2 || sum.ByAction[ActionDropped] != 2 ||
				sum.ByAction[ActionPassed] != 1 || sum.ByAction[ActionGeneratedError] != 1 {
				t.Errorf("summary %+v", sum)
			}
		})
	}
}

// dnsClaimer claims IPv4 UDP packets to port 53, as the ENR will.
type dnsClaimer struct{ n int }

func (d *dnsClaimer) Handle(buf []byte, off int, network Network) (Outcome, bool, error) {
	p := buf[off:]
	if network != IPv4 || len(p) < 24 || p[9] != 17 || p[22] != 0 || p[23] != 53 {
		return Outcome{}, false, nil
	}
	d.n++
	return Outcome{Action: ActionDropped, Reason: drop.DNSUnmatched}, true, nil
}

func TestRunHandlerClaimsFirst(t *testing.T) {
	notDNS := append([]byte(nil), testIPv4...)
	notDNS[23] = 54
	in := buildCapture(t, FormatPcap, layers.LinkTypeRaw, []testFrame{{ts: t0, data: testIPv4}, {ts: t0, data: notDNS}})
	ft := &fakeTranslator{t: t}
	h := &dnsClaimer{}
	var out, verdicts bytes.Buffer
	if _, err := Run(bytes.NewReader(in), &out, &verdicts, &Pipeline{Translator: ft, Handlers: []Handler{h}}); err != nil {
		t.Fatal(err)
	}
	want := `{"index":0,"action":"dropped","reason":"dns_unmatched","outputs":[]}
{"index":1,"action":"translated","reason":"","outputs":[0,1]}
`
	if verdicts.String() != want || h.n != 1 || len(ft.calls) != 1 {
		t.Errorf("verdicts:\n%s\nhandler %d calls, translator %v", verdicts.String(), h.n, ft.calls)
	}
}

func TestRunErrors(t *testing.T) {
	three := buildCapture(t, FormatPcap, layers.LinkTypeRaw, []testFrame{{ts: t0, data: testIPv4}, {ts: t0, data: testIPv4}, {ts: t0, data: testIPv4}})
	t.Run("truncated keeps what came before", func(t *testing.T) {
		var out, verdicts bytes.Buffer
		sum, err := Run(bytes.NewReader(three[:len(three)-4]), &out, &verdicts, &Pipeline{Translator: &fakeTranslator{t: t}})
		if err == nil || err.Error() != "packet index 2: capture ends in the middle of a packet" {
			t.Fatalf("error %v", err)
		}
		if n := strings.Count(verdicts.String(), "\n"); n != 2 || sum.Packets != 2 {
			t.Errorf("%d verdict lines, %d packets; want 2", n, sum.Packets)
		}
		if pkts, _ := readOutput(t, out.Bytes()); len(pkts) != 4 {
			t.Errorf("%d output packets, want 4", len(pkts))
		}
	})
	t.Run("unsupported link type", func(t *testing.T) {
		in := buildCapture(t, FormatPcap, layers.LinkTypePPP, []testFrame{{ts: t0, data: testIPv4}})
		sum, err := Run(bytes.NewReader(in), io.Discard, nil, &Pipeline{Translator: &fakeTranslator{t: t}})
		if err == nil || !strings.Contains(err.Error(), "packet index 0: unsupported link type 9") {
			t.Fatalf("error %v", err)
		}
		if sum.Packets != 0 {
			t.Errorf("%d packets counted as decided", sum.Packets)
		}
	})
	t.Run("translator without action", func(t *testing.T) {
		_, err := Run(bytes.NewReader(three), io.Discard, nil, &Pipeline{Translator: zeroTranslator{}})
		if err == nil || !strings.Contains(err.Error(), "packet index 0: translator returned unknown action 0") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("no translator", func(t *testing.T) {
		_, err := Run(bytes.NewReader(three), io.Discard, nil, &Pipeline{})
		if err == nil || !strings.Contains(err.Error(), "no translator") {
			t.Fatalf("error %v", err)
		}
	})
}

type zeroTranslator struct{}

func (zeroTranslator) Translate4to6([]byte, int) translate.Result { return translate.Result{} }
func (zeroTranslator) Translate6to4([]byte, int) translate.Result { return translate.Result{} }

func TestWriterZeroTimestamp(t *testing.T) {
	var b bytes.Buffer
	w, err := NewWriter(&b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(time.Time{}, testIPv4); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	_, ts := readOutput(t, b.Bytes())
	if len(ts) != 1 || !ts[0].Equal(time.Unix(0, 0)) {
		t.Errorf("timestamps %v, want the Unix epoch", ts)
	}
}
