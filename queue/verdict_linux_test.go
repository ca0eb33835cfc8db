package queue

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// verdictMsg is one verdict message parsed back from a datagram.
type verdictMsg struct {
	typ        uint16
	queue      uint16
	id, v      uint32
	payload    []byte
	hasPayload bool
}

// parseVerdicts splits a verdict datagram into its netlink messages.
func parseVerdicts(t *testing.T, b []byte) []verdictMsg {
	t.Helper()
	var out []verdictMsg
	for len(b) > 0 {
		if len(b) < nlmsgHdrLen+nfgenHdrLen {
			t.Fatalf("%d trailing bytes", len(b))
		}
		l := int(binary.NativeEndian.Uint32(b[0:4]))
		if l < nlmsgHdrLen+nfgenHdrLen || l > len(b) || l%4 != 0 {
			t.Fatalf("message length %d of %d bytes left", l, len(b))
		}
		m := verdictMsg{
			typ:   binary.NativeEndian.Uint16(b[4:6]) &^ (nfnlSubsysQueue << 8),
			queue: binary.BigEndian.Uint16(b[18:20]),
		}
		for a := b[nlmsgHdrLen+nfgenHdrLen : l]; len(a) > 0; {
			al := int(binary.NativeEndian.Uint16(a[0:2]))
			if al < nlaHdrLen || align4(al) > len(a) {
				t.Fatalf("attribute length %d of %d bytes left", al, len(a))
			}
			v := a[nlaHdrLen:al]
			switch binary.NativeEndian.Uint16(a[2:4]) {
			case nfqaVerdictHdr:
				m.v, m.id = binary.BigEndian.Uint32(v[0:4]), binary.BigEndian.Uint32(v[4:8])
			case nfqaPayload:
				m.payload, m.hasPayload = v, true
			default:
				t.Fatalf("unexpected attribute %d", binary.NativeEndian.Uint16(a[2:4]))
			}
			a = a[align4(al):]
		}
		out = append(out, m)
		b = b[l:]
	}
	return out
}

func TestAppendVerdictsWithPayloads(t *testing.T) {
	pkts := []Packet{
		{ID: 7},
		{ID: 8, Replace: []byte("rewritten, 15 b")},
		{ID: 9},
		{ID: 10, Replace: bytes.Repeat([]byte{0xab}, 1232)},
		{ID: 11, Replace: []byte{}},
	}
	verdicts := []uint32{Accept, Accept, Drop, Accept, Accept}
	var dst []byte
	for _, batch := range []bool{false, true} { // a Replace rules the batch message out
		b, n := appendVerdicts(dst[:0], 32, pkts, verdicts, batch)
		if n != len(pkts) {
			t.Fatalf("took %d of %d packets", n, len(pkts))
		}
		got := parseVerdicts(t, b)
		if len(got) != len(pkts) {
			t.Fatalf("%d messages, want %d", len(got), len(pkts))
		}
		for i, m := range got {
			p := pkts[i]
			if m.typ != nfqnlMsgVerdict || m.queue != 32 || m.id != p.ID || m.v != verdicts[i] {
				t.Errorf("message %d: type %d queue %d id %d verdict %d, want %d %d %d %d",
					i, m.typ, m.queue, m.id, m.v, nfqnlMsgVerdict, 32, p.ID, verdicts[i])
			}
			if m.hasPayload != (p.Replace != nil) || !bytes.Equal(m.payload, p.Replace) {
				t.Errorf("message %d: payload %q (%v), want %q", i, m.payload, m.hasPayload, p.Replace)
			}
		}
		dst = b
	}
	// The buffer is reused: building the datagram again allocates nothing.
	if a := testing.AllocsPerRun(100, func() { dst, _ = appendVerdicts(dst[:0], 32, pkts, verdicts, false) }); a != 0 {
		t.Errorf("%v allocations per datagram", a)
	}
}

func TestAppendVerdictsBatch(t *testing.T) {
	pkts := []Packet{{ID: 3}, {ID: 4}, {ID: 5}}
	verdicts := []uint32{Accept, Accept, Accept}
	b, n := appendVerdicts(nil, 1, pkts, verdicts, true)
	got := parseVerdicts(t, b)
	if n != 3 || len(got) != 1 || got[0].typ != nfqnlMsgVerdictBatch || got[0].id != 5 || got[0].v != Accept {
		t.Fatalf("took %d, messages %+v; want one batch verdict up to 5", n, got)
	}
	b, _ = appendVerdicts(nil, 1, pkts, verdicts, false)
	if got := parseVerdicts(t, b); len(got) != 3 {
		t.Fatalf("%d messages without batching, want 3", len(got))
	}
}

func TestAppendVerdictsSplitsLargePayloads(t *testing.T) {
	big := make([]byte, 60000)
	pkts := []Packet{{ID: 1, Replace: big}, {ID: 2, Replace: big}, {ID: 3, Replace: big}, {ID: 4}}
	verdicts := []uint32{Accept, Accept, Accept, Accept}
	var ids []uint32
	for rest, rv := pkts, verdicts; len(rest) > 0; {
		b, n := appendVerdicts(nil, 1, rest, rv, false)
		if n == 0 || len(b) > maxVerdictDatagram {
			t.Fatalf("datagram of %d bytes for %d packets", len(b), n)
		}
		for _, m := range parseVerdicts(t, b) {
			ids = append(ids, m.id)
		}
		rest, rv = rest[n:], rv[n:]
	}
	if len(ids) != 4 || ids[0] != 1 || ids[3] != 4 {
		t.Errorf("verdicts for %v, want 1 to 4 in order", ids)
	}
	// One payload too large for an attribute: the plain verdict goes.
	b, _ := appendVerdicts(nil, 1, []Packet{{ID: 9, Replace: make([]byte, MaxReplace+1)}}, verdicts[:1], false)
	if got := parseVerdicts(t, b); len(got) != 1 || got[0].hasPayload {
		t.Errorf("over-large payload: %+v", got)
	}
}
