package pool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Journal format (little-endian). The file starts with the 8-byte magic
// "BIHPOOL1" and continues with fixed-size records:
//
//	 0      1      2      4           8                24              40
//	+------+------+------+-----------+----------------+---------------+
//	|  op  | kind | zero |    v4     |       v6       |   requester   |
//	+------+------+------+-----------+----------------+---------------+
//	40          48          56          64     68     72
//	+-----------+-----------+-----------+------+------+
//	|  created  |  expiry   |  lastUse  | zero | crc  |
//	+-----------+-----------+-----------+------+------+
//
// Times are Unix nanoseconds; crc is CRC-32C of bytes 0..67. A rewrite
// (compaction) starts a new file with one put per live mapping, written to a
// temporary file, synced and renamed over the old one.
const (
	journalName  = "pool.journal"
	journalMagic = "BIHPOOL1"
	recordSize   = 72
	keepDamaged  = 5 // damaged files kept for inspection
)

const (
	opPut   = 1 // add or refresh a mapping
	opDel   = 2 // mapping removed (expired, reclaimed)
	opFlush = 3 // every dynamic mapping removed (RFC 6535 §2.3.4)
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// record is one journal entry.
type record struct {
	op        uint8
	v4        [4]byte
	v6        [16]byte
	requester [16]byte
	created   int64
	expiry    int64
	lastUse   int64
}

func (r *record) encode(b []byte) {
	_ = b[recordSize-1]
	clear(b[:recordSize])
	b[0] = r.op
	copy(b[4:8], r.v4[:])
	copy(b[8:24], r.v6[:])
	copy(b[24:40], r.requester[:])
	binary.LittleEndian.PutUint64(b[40:], uint64(r.created))
	binary.LittleEndian.PutUint64(b[48:], uint64(r.expiry))
	binary.LittleEndian.PutUint64(b[56:], uint64(r.lastUse))
	binary.LittleEndian.PutUint32(b[68:], crc32.Checksum(b[:68], castagnoli))
}

var errBadRecord = errors.New("bad record")

func (r *record) decode(b []byte) error {
	if len(b) < recordSize {
		return io.ErrUnexpectedEOF
	}
	if crc32.Checksum(b[:68], castagnoli) != binary.LittleEndian.Uint32(b[68:]) {
		return fmt.Errorf("%w: checksum mismatch", errBadRecord)
	}
	r.op = b[0]
	if r.op < opPut || r.op > opFlush || b[1] != 0 || b[2] != 0 || b[3] != 0 {
		return fmt.Errorf("%w: unknown op %d", errBadRecord, r.op)
	}
	copy(r.v4[:], b[4:8])
	copy(r.v6[:], b[8:24])
	copy(r.requester[:], b[24:40])
	r.created = int64(binary.LittleEndian.Uint64(b[40:]))
	r.expiry = int64(binary.LittleEndian.Uint64(b[48:]))
	r.lastUse = int64(binary.LittleEndian.Uint64(b[56:]))
	return nil
}

// replay is the state a journal describes: the last put per IPv6 address,
// with the bijection kept (a put for an IPv4 address held by another IPv6
// address replaces it).
type replay struct {
	by6 map[[16]byte]record
	by4 map[[4]byte][16]byte
}

func (s *replay) apply(r record) {
	switch r.op {
	case opPut:
		if old, ok := s.by6[r.v6]; ok && old.v4 != r.v4 {
			delete(s.by4, old.v4)
		}
		if o6, ok := s.by4[r.v4]; ok && o6 != r.v6 {
			delete(s.by6, o6)
		}
		s.by6[r.v6] = r
		s.by4[r.v4] = r.v6
	case opDel:
		if old, ok := s.by6[r.v6]; ok && old.v4 == r.v4 {
			delete(s.by6, r.v6)
			delete(s.by4, r.v4)
		}
	case opFlush:
		clear(s.by6)
		clear(s.by4)
	}
}

// readJournal replays data and returns the state of its longest valid prefix.
// damage is nil when the whole input is valid; otherwise it says where and why
// replay stopped.
func readJournal(data []byte) (st replay, records int, damage error) {
	st = replay{by6: map[[16]byte]record{}, by4: map[[4]byte][16]byte{}}
	if len(data) == 0 {
		return st, 0, nil
	}
	if len(data) < len(journalMagic) || string(data[:len(journalMagic)]) != journalMagic {
		return st, 0, errors.New("bad magic: not a bih-nfq pool journal")
	}
	off := len(journalMagic)
	for off < len(data) {
		var r record
		if err := r.decode(data[off:]); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				err = fmt.Errorf("truncated: %d trailing bytes", len(data)-off)
			}
			return st, records, fmt.Errorf("at offset %d (record %d): %w", off, records, err)
		}
		st.apply(r)
		records++
		off += recordSize
	}
	return st, records, nil
}

// journal owns the state file. Only the writer goroutine (or New, before it
// starts) touches it.
type journal struct {
	dir, path string
	f         *os.File
	sync      bool
	appended  int // records since the last rewrite
	buf       []byte
}

func (j *journal) fsync(f *os.File) error {
	if !j.sync {
		return nil
	}
	return f.Sync()
}

// append writes records and syncs them (one fsync per batch: group commit).
func (j *journal) append(recs []record) error {
	if j.f == nil {
		return errors.New("journal not open")
	}
	j.buf = slices.Grow(j.buf[:0], len(recs)*recordSize)[:len(recs)*recordSize]
	for i := range recs {
		recs[i].encode(j.buf[i*recordSize:])
	}
	if _, err := j.f.Write(j.buf); err != nil {
		return fmt.Errorf("append to %s: %w", j.path, err)
	}
	if err := j.fsync(j.f); err != nil {
		return fmt.Errorf("sync %s: %w", j.path, err)
	}
	j.appended += len(recs)
	return nil
}

// rewrite replaces the journal with recs: temp file, fsync, rename, fsync of
// the directory, so a crash at any point leaves either the old or the new
// file whole.
func (j *journal) rewrite(recs []record) error {
	tmp := j.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	n := len(journalMagic) + len(recs)*recordSize
	j.buf = slices.Grow(j.buf[:0], n)[:n]
	copy(j.buf, journalMagic)
	for i := range recs {
		recs[i].encode(j.buf[len(journalMagic)+i*recordSize:])
	}
	_, err = f.Write(j.buf)
	if err == nil {
		err = j.fsync(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp) // best effort; a leftover is removed at start
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, j.path); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	if err := j.syncDir(); err != nil {
		return err
	}
	if j.f != nil {
		_ = j.f.Close() // the old file was replaced; nothing left to flush
		j.f = nil
	}
	if j.f, err = os.OpenFile(j.path, os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
		return fmt.Errorf("reopen %s: %w", j.path, err)
	}
	j.appended = 0
	return nil
}

func (j *journal) syncDir() error {
	if !j.sync {
		return nil
	}
	d, err := os.Open(j.dir)
	if err != nil {
		return fmt.Errorf("open state dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync state dir %s: %w", j.dir, err)
	}
	return nil
}

func (j *journal) close() error {
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	return err
}

// moveAside renames a damaged journal so it can be inspected, keeping the
// newest keepDamaged such files.
func (j *journal) moveAside(now time.Time) (string, error) {
	base := j.path + ".damaged-" + now.UTC().Format("20060102T150405Z")
	dst := base
	for i := 1; ; i++ {
		if _, err := os.Lstat(dst); errors.Is(err, os.ErrNotExist) {
			break
		}
		dst = fmt.Sprintf("%s-%d", base, i)
	}
	if err := os.Rename(j.path, dst); err != nil {
		return "", fmt.Errorf("move damaged journal aside: %w", err)
	}
	old, err := filepath.Glob(j.path + ".damaged-*")
	if err == nil && len(old) > keepDamaged {
		slices.Sort(old) // the timestamp suffix sorts by age
		for _, o := range old[:len(old)-keepDamaged] {
			_ = os.Remove(o) // only pruning old copies; failure is harmless
		}
	}
	return dst, nil
}
