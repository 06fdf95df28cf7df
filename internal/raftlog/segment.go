package raftlog

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/cairn-io/cairn/internal/fsutil"
)

const (
	segmentSuffix = ".wal"
	// segmentMagic opens every segment file; the last byte is the format
	// version.
	segmentMagic      = "CAIRNWL\x01"
	segmentHeaderSize = 16 // magic + base index
	recordHeaderSize  = 8  // payload length + CRC-32C
	// payloadFixedSize is index, term, type, append time and the two
	// length fields.
	payloadFixedSize = 8 + 8 + 1 + 8 + 4 + 4
	// maxRecordSize bounds one record's payload, so a damaged length field
	// cannot make the scan allocate gigabytes.
	maxRecordSize = 256 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// segment is one file of the log: records base, base+1, ... at offs.
type segment struct {
	base uint64
	path string
	f    *os.File
	// offs[i] is the file offset of record base+i.
	offs []int64
	// size is the end of the last whole record.
	size int64
	// alloc is the file's length as the store knows it: [size, alloc) is
	// zeros, written and synced ahead of the appends (see preallocate).
	// It changes under Store.allocMu; the appender reads it without.
	alloc atomic.Int64
}

// last is the index of the segment's last record (base-1 when empty).
func (s *segment) last() uint64 { return s.base + uint64(len(s.offs)) - 1 }

func segmentName(base uint64) string { return fmt.Sprintf("%020d%s", base, segmentSuffix) }

// listSegments returns the segment files in dir by ascending base index.
func listSegments(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("raftlog: list %s: %w", dir, err)
	}
	var bases []uint64
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, segmentSuffix) || e.IsDir() {
			continue
		}
		base, err := strconv.ParseUint(strings.TrimSuffix(name, segmentSuffix), 10, 64)
		if err != nil || base == 0 {
			return nil, fmt.Errorf("%w: unexpected file %s in %s", ErrCorrupt, name, dir)
		}
		bases = append(bases, base)
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })
	return bases, nil
}

// appendRecord encodes l as one record onto buf.
func appendRecord(buf []byte, l *raft.Log) []byte {
	n := payloadFixedSize + len(l.Data) + len(l.Extensions)
	start := len(buf)
	buf = append(buf, make([]byte, recordHeaderSize)...)
	buf = binary.LittleEndian.AppendUint64(buf, l.Index)
	buf = binary.LittleEndian.AppendUint64(buf, l.Term)
	buf = append(buf, byte(l.Type))
	var at int64
	if !l.AppendedAt.IsZero() {
		at = l.AppendedAt.UnixNano()
	}
	buf = binary.LittleEndian.AppendUint64(buf, uint64(at))
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(l.Data)))
	buf = append(buf, l.Data...)
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(l.Extensions)))
	buf = append(buf, l.Extensions...)
	payload := buf[start+recordHeaderSize:]
	binary.LittleEndian.PutUint32(buf[start:], uint32(n))
	binary.LittleEndian.PutUint32(buf[start+4:], crc32.Checksum(payload, castagnoli))
	return buf
}

// decodePayload fills l from a record payload whose CRC has been checked.
// l's Data and Extensions alias payload.
func decodePayload(payload []byte, l *raft.Log) error {
	if len(payload) < payloadFixedSize {
		return fmt.Errorf("%w: record payload of %d bytes", ErrCorrupt, len(payload))
	}
	l.Index = binary.LittleEndian.Uint64(payload[0:])
	l.Term = binary.LittleEndian.Uint64(payload[8:])
	l.Type = raft.LogType(payload[16])
	at := int64(binary.LittleEndian.Uint64(payload[17:]))
	l.AppendedAt = time.Time{}
	if at != 0 {
		l.AppendedAt = time.Unix(0, at)
	}
	rest := payload[25:]
	dn := int(binary.LittleEndian.Uint32(rest))
	rest = rest[4:]
	if dn > len(rest)-4 {
		return fmt.Errorf("%w: record data length %d exceeds the record", ErrCorrupt, dn)
	}
	l.Data = nilIfEmpty(rest[:dn:dn])
	rest = rest[dn:]
	en := int(binary.LittleEndian.Uint32(rest))
	rest = rest[4:]
	if en != len(rest) {
		return fmt.Errorf("%w: record extensions length %d, %d bytes left", ErrCorrupt, en, len(rest))
	}
	l.Extensions = nilIfEmpty(rest[:en:en])
	return nil
}

func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// tornError describes where a segment stops being valid; scanSegment
// returns it for damage that a torn final write can explain.
type tornError struct {
	off    int64
	reason string
}

func (e *tornError) Error() string {
	return fmt.Sprintf("torn record at offset %d: %s", e.off, e.reason)
}

// scanSegment reads and checks every record of the segment file f (at
// path, whose name says it starts at base), from its start. It returns the segment with offsets
// of all valid records. If the file ends in a record that is short or
// fails its CRC, it returns the valid part and a *tornError; any other
// damage is ErrCorrupt.
func scanSegment(f *os.File, path string, base uint64) (*segment, error) {
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("raftlog: read %s: %w", path, err)
	}
	seg := &segment{base: base, path: path}
	if len(data) < segmentHeaderSize {
		return seg, &tornError{off: 0, reason: fmt.Sprintf("segment header is %d bytes", len(data))}
	}
	if string(data[:8]) != segmentMagic {
		return nil, fmt.Errorf("%w: %s: bad segment magic %q", ErrCorrupt, path, data[:8])
	}
	if got := binary.LittleEndian.Uint64(data[8:]); got != base {
		return nil, fmt.Errorf("%w: %s: header says base index %d", ErrCorrupt, path, got)
	}
	off := int64(segmentHeaderSize)
	seg.size = off
	var l raft.Log
	for off < int64(len(data)) {
		rest := data[off:]
		if allZero(rest) {
			// Preallocated space: the clean end of the records. Zeros
			// followed by anything else are not (a batch whose first
			// pages never reached the disk): they fall through to the
			// torn-record checks below.
			break
		}
		if len(rest) < recordHeaderSize {
			return seg, &tornError{off: off, reason: "short record header"}
		}
		n := int64(binary.LittleEndian.Uint32(rest))
		sum := binary.LittleEndian.Uint32(rest[4:])
		if n < payloadFixedSize || n > maxRecordSize {
			return seg, &tornError{off: off, reason: fmt.Sprintf("record length %d", n)}
		}
		if int64(len(rest)) < recordHeaderSize+n {
			return seg, &tornError{off: off, reason: "short record"}
		}
		payload := rest[recordHeaderSize : recordHeaderSize+n]
		if crc32.Checksum(payload, castagnoli) != sum {
			return seg, &tornError{off: off, reason: "checksum mismatch"}
		}
		if err := decodePayload(payload, &l); err != nil {
			return nil, fmt.Errorf("%s at offset %d: %w", path, off, err)
		}
		if want := base + uint64(len(seg.offs)); l.Index != want {
			return nil, fmt.Errorf("%w: %s at offset %d: record index %d, want %d", ErrCorrupt, path, off, l.Index, want)
		}
		seg.offs = append(seg.offs, off)
		off += recordHeaderSize + n
		seg.size = off
	}
	seg.alloc.Store(int64(len(data)))
	return seg, nil
}

// allZero reports whether b holds only zero bytes.
func allZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// createSegment writes a new, empty segment file for base in dir and syncs
// it and the directory.
func createSegment(dir string, base uint64) (*segment, error) {
	path := filepath.Join(dir, segmentName(base))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("raftlog: create segment: %w", err)
	}
	hdr := make([]byte, segmentHeaderSize)
	copy(hdr, segmentMagic)
	binary.LittleEndian.PutUint64(hdr[8:], base)
	if _, err := f.Write(hdr); err != nil {
		_ = f.Close()
		_ = os.Remove(path)
		return nil, fmt.Errorf("raftlog: write segment header %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		_ = os.Remove(path)
		return nil, fmt.Errorf("raftlog: sync segment %s: %w", path, err)
	}
	if err := fsutil.SyncDir(dir); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("raftlog: %w", err)
	}
	seg := &segment{base: base, path: path, f: f, size: segmentHeaderSize}
	seg.alloc.Store(segmentHeaderSize)
	return seg, nil
}

// readRecord reads and decodes record index from the segment into l.
func (s *segment) readRecord(index uint64, l *raft.Log) error {
	i := index - s.base
	off := s.offs[i]
	end := s.size
	if int(i)+1 < len(s.offs) {
		end = s.offs[i+1]
	}
	buf := make([]byte, end-off)
	if _, err := s.f.ReadAt(buf, off); err != nil {
		return fmt.Errorf("raftlog: read index %d from %s: %w", index, s.path, err)
	}
	if len(buf) < recordHeaderSize {
		return fmt.Errorf("%w: %s: record %d is %d bytes", ErrCorrupt, s.path, index, len(buf))
	}
	payload := buf[recordHeaderSize:]
	if uint32(len(payload)) != binary.LittleEndian.Uint32(buf) ||
		crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(buf[4:]) {
		return fmt.Errorf("%w: %s: record %d fails its checksum", ErrCorrupt, s.path, index)
	}
	if err := decodePayload(payload, l); err != nil {
		return fmt.Errorf("%s: record %d: %w", s.path, index, err)
	}
	if l.Index != index {
		return fmt.Errorf("%w: %s: record at %d holds index %d", ErrCorrupt, s.path, index, l.Index)
	}
	return nil
}
