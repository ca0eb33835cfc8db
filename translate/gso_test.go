package translate

import (
	"encoding/binary"
	"testing"

	"github.com/bih-nfq/bih-nfq/internal/drop"
)

// partial4 turns the TCP checksum of the IPv4 packet p into what the
// kernel leaves on a CHECKSUM_PARTIAL super-packet: the pseudo-header sum.
func partial4(p []byte) {
	up := p[20:]
	binary.BigEndian.PutUint16(up[16:], refSum(refPseudo4(p[12:16], p[16:20], 6, len(up))))
}

func TestTranslate4to6GSO(t *testing.T) {
	tr := newTranslator(t, nil) // IPv6 MTU 1500
	const seg = 1220
	buf, off := tcp4(t, app4, srv4, 20000)
	partial4(buf[off:])
	out := mustOne(t, tr.Translate4to6GSO(buf, off, seg), Translated)
	if got := int(binary.BigEndian.Uint16(out[4:])); got != 20+20000 {
		t.Fatalf("payload length %d, want %d", got, 20+20000)
	}
	if out[7] != 64 {
		t.Errorf("hop limit %d, want 64 (host mode)", out[7])
	}
	up := out[40:]
	// The field holds the IPv6 pseudo-header sum; adding the segment's own
	// bytes (field zeroed) and complementing gives the full checksum.
	want := refSum(refPseudo6(out[8:24], out[24:40], 6, len(up)))
	if got := binary.BigEndian.Uint16(up[16:]); got != want {
		t.Fatalf("partial checksum %#04x, want %#04x", got, want)
	}
	binary.BigEndian.PutUint16(up[16:], 0)
	binary.BigEndian.PutUint16(up[16:], ^refSum(refPseudo6(out[8:24], out[24:40], 6, len(up)), up))
	if ok, _ := refL4Valid6(out); !ok {
		t.Fatal("finished checksum does not verify")
	}

	// The same packet through the ordinary path is too big for the MTU.
	buf, off = tcp4(t, app4, srv4, 20000)
	if r := tr.Translate4to6(buf, off); r.Action != GeneratedError || r.Reason != drop.FragmentNeeded {
		t.Fatalf("plain translation: %v %v, want a Fragmentation Needed", r.Action, r.Reason)
	}
	// A segment size whose segments do not fit the MTU either.
	buf, off = tcp4(t, app4, srv4, 20000)
	if r := tr.Translate4to6GSO(buf, off, 1461); r.Action != GeneratedError || r.Reason != drop.FragmentNeeded {
		t.Fatalf("segment too big: %v %v, want a Fragmentation Needed", r.Action, r.Reason)
	}
}

func TestTranslate4to6GSORefuses(t *testing.T) {
	tr := newTranslator(t, nil)
	for name, edit := range map[string]func(p []byte){
		"DF clear": func(p []byte) { p[6] &^= 0x40 },
		"fragment": func(p []byte) { p[6] |= 0x20 },
		"UDP":      func(p []byte) { p[9] = 17 },
	} {
		buf, off := tcp4(t, app4, srv4, 5000)
		edit(buf[off:])
		fix4(buf[off:])
		if r := tr.Translate4to6GSO(buf, off, 1220); r.Action != Dropped || r.Reason != drop.TooBigAfterXlat {
			t.Errorf("%s: %v %v, want dropped too_big_after_xlat", name, r.Action, r.Reason)
		}
	}
	// After a GSO call the translator is back to ordinary checks.
	buf, off := tcp4(t, app4, srv4, 5000)
	tr.Translate4to6GSO(buf, off, 1220)
	buf, off = tcp4(t, app4, srv4, 5000)
	if r := tr.Translate4to6(buf, off); r.Action != GeneratedError {
		t.Fatalf("ordinary call after GSO: %v, want Fragmentation Needed", r.Action)
	}
}
