package state

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/hashicorp/go-msgpack/v2/codec"

	"github.com/cairn-io/cairn/internal/msgp"
)

// Snapshot stream formats. A stream is a header, then one record (table
// name and encoded row) per row of every table. Two versions exist, told
// apart by the first byte of the stream:
//
//   - Version 1 (SnapshotV1), written by servers before version 2: JSON
//     values separated by newlines, {"Version":1} then one
//     {"Table": ..., "Row": {...}} per row. KV values are base64 strings.
//     It starts with '{'.
//   - Version 2 (SnapshotV2), written now: the 12-byte magic
//     "\x00cairn-state", the version byte 2, then records of
//     uvarint(len(table)) table uvarint(len(row)) row, where row is the
//     msgpack encoding of the row (the internal RPC's settings: []byte as
//     bin, `codec` struct tags only). A record with an empty table name
//     ends the stream, so a truncated stream is an error, not a short
//     restore. It starts with 0x00, which no JSON stream can.
//
// Version 2 writes every row through one reused buffer and copies KV values
// as raw bytes: it allocates almost nothing per row, where version 1 built
// a base64 copy and a JSON document of every row.
const (
	SnapshotV1 = 1
	SnapshotV2 = 2
)

// snapshotMagic starts a version 2 stream.
const snapshotMagic = "\x00cairn-state"

// Sanity limits for version 2 framing, so a corrupt length cannot make
// the reader allocate without bound.
const (
	maxSnapshotTableName = 255
	maxSnapshotRow       = 1 << 30
)

// ErrBadSnapshot is wrapped by the errors of a malformed snapshot stream.
var ErrBadSnapshot = errors.New("state: malformed snapshot stream")

// snapshotHandle is the msgpack configuration of version 2 rows. It must
// keep decoding what it encoded before: never change these settings.
var snapshotHandle = msgp.NewHandle()

func badSnapshot(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadSnapshot, fmt.Sprintf(format, args...))
}

// SnapshotReader reads the records of a snapshot stream of either version.
type SnapshotReader struct {
	version int
	br      *bufio.Reader
	jdec    *json.Decoder // version 1
	done    bool
}

// NewSnapshotReader reads the stream's header and returns a reader of its
// records.
func NewSnapshotReader(r io.Reader) (*SnapshotReader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	first, err := br.Peek(1)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, badSnapshot("stream is empty")
		}
		return nil, fmt.Errorf("state: read snapshot header: %w", err)
	}
	sr := &SnapshotReader{br: br}
	if first[0] != snapshotMagic[0] {
		dec := json.NewDecoder(br)
		var hdr snapshotHeader
		if err := dec.Decode(&hdr); err != nil {
			return nil, fmt.Errorf("state: read snapshot header: %v: %w", err, ErrBadSnapshot)
		}
		if hdr.Version != SnapshotV1 {
			return nil, fmt.Errorf("state: snapshot version %d is not supported (want %d or %d): %w",
				hdr.Version, SnapshotV1, SnapshotV2, ErrBadSnapshot)
		}
		sr.version, sr.jdec = SnapshotV1, dec
		return sr, nil
	}
	hdr := make([]byte, len(snapshotMagic)+1)
	if _, err := io.ReadFull(br, hdr); err != nil {
		return nil, badSnapshot("header is truncated: %v", err)
	}
	if string(hdr[:len(snapshotMagic)]) != snapshotMagic {
		return nil, badSnapshot("header has no cairn magic")
	}
	if v := int(hdr[len(snapshotMagic)]); v != SnapshotV2 {
		return nil, fmt.Errorf("state: snapshot version %d is not supported (want %d or %d): %w",
			v, SnapshotV1, SnapshotV2, ErrBadSnapshot)
	}
	sr.version = SnapshotV2
	return sr, nil
}

// Version is the stream's format version (SnapshotV1 or SnapshotV2).
func (sr *SnapshotReader) Version() int { return sr.version }

// Next returns the next record: its table and its row, encoded in the
// stream's format (DecodeRow decodes it); the reader does not reuse it. At
// the end of the stream it returns io.EOF.
func (sr *SnapshotReader) Next() (table string, row []byte, err error) {
	if sr.done {
		return "", nil, io.EOF
	}
	if sr.version == SnapshotV1 {
		var rec snapshotRecord
		if err := sr.jdec.Decode(&rec); err != nil {
			if errors.Is(err, io.EOF) {
				sr.done = true
				return "", nil, io.EOF
			}
			return "", nil, fmt.Errorf("state: read snapshot record: %v: %w", err, ErrBadSnapshot)
		}
		return rec.Table, rec.Row, nil
	}
	n, err := sr.readLen(maxSnapshotTableName, "table name")
	if err != nil {
		return "", nil, err
	}
	if n == 0 {
		sr.done = true
		return "", nil, io.EOF
	}
	name := make([]byte, n)
	if _, err := io.ReadFull(sr.br, name); err != nil {
		return "", nil, truncated("table name", err)
	}
	n, err = sr.readLen(maxSnapshotRow, "row")
	if err != nil {
		return "", nil, err
	}
	// A fresh buffer per row: decoded values (a KV entry's Value) may
	// alias it, and it is only as large as the row.
	row = make([]byte, n)
	if _, err := io.ReadFull(sr.br, row); err != nil {
		return "", nil, truncated("row", err)
	}
	return string(name), row, nil
}

func (sr *SnapshotReader) readLen(limit uint64, what string) (uint64, error) {
	n, err := binary.ReadUvarint(sr.br)
	if err != nil {
		return 0, truncated(what+" length", err)
	}
	if n > limit {
		return 0, badSnapshot("%s length %d exceeds %d", what, n, limit)
	}
	return n, nil
}

func truncated(what string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return badSnapshot("stream is truncated (reading %s)", what)
	}
	return fmt.Errorf("state: read snapshot %s: %w", what, err)
}

// DecodeRow decodes a row returned by Next into out, a pointer to a struct
// whose fields are a subset of the row's (matched by name).
func (sr *SnapshotReader) DecodeRow(row []byte, out any) error {
	if sr.version == SnapshotV1 {
		if err := json.Unmarshal(row, out); err != nil {
			return fmt.Errorf("state: decode snapshot row: %v: %w", err, ErrBadSnapshot)
		}
		return nil
	}
	dec := codec.NewDecoderBytes(row, snapshotHandle)
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("state: decode snapshot row: %v: %w", err, ErrBadSnapshot)
	}
	if n := dec.NumBytesRead(); n != len(row) {
		return badSnapshot("%d trailing bytes after a row", len(row)-n)
	}
	return nil
}

// SnapshotWriter writes a snapshot stream of one version. Call Close to
// finish it.
type SnapshotWriter struct {
	version int
	bw      *bufio.Writer
	jenc    *json.Encoder // version 1
	enc     *codec.Encoder
	scratch []byte
	hdr     [2 * binary.MaxVarintLen64]byte
}

// maxKeptScratch bounds the row buffer a writer keeps between rows, so one
// huge row does not pin its size for the rest of the stream.
const maxKeptScratch = 1 << 20

// NewSnapshotWriter writes the header of a stream of the given version to
// w and returns a writer of its records.
func NewSnapshotWriter(w io.Writer, version int) (*SnapshotWriter, error) {
	sw := &SnapshotWriter{version: version, bw: bufio.NewWriterSize(w, 64<<10)}
	switch version {
	case SnapshotV1:
		sw.jenc = json.NewEncoder(sw.bw)
		if err := sw.jenc.Encode(snapshotHeader{Version: SnapshotV1}); err != nil {
			return nil, fmt.Errorf("state: write snapshot header: %w", err)
		}
	case SnapshotV2:
		sw.enc = codec.NewEncoderBytes(&sw.scratch, snapshotHandle)
		sw.bw.WriteString(snapshotMagic)
		if err := sw.bw.WriteByte(SnapshotV2); err != nil {
			return nil, fmt.Errorf("state: write snapshot header: %w", err)
		}
	default:
		return nil, fmt.Errorf("state: cannot write snapshot version %d", version)
	}
	return sw, nil
}

// WriteRow encodes row (a struct or a pointer to one) as a record of table.
func (sw *SnapshotWriter) WriteRow(table string, row any) error {
	if sw.version == SnapshotV1 {
		raw, err := json.Marshal(row)
		if err != nil {
			return fmt.Errorf("state: encode snapshot row of %s: %w", table, err)
		}
		return sw.WriteRaw(table, raw)
	}
	if cap(sw.scratch) > maxKeptScratch {
		sw.scratch = nil
	}
	sw.scratch = sw.scratch[:0]
	sw.enc.ResetBytes(&sw.scratch)
	if err := sw.enc.Encode(row); err != nil {
		return fmt.Errorf("state: encode snapshot row of %s: %w", table, err)
	}
	return sw.WriteRaw(table, sw.scratch)
}

// WriteRaw writes a record whose row is already encoded in the stream's
// format (for example a row read by a SnapshotReader of the same version).
func (sw *SnapshotWriter) WriteRaw(table string, row []byte) error {
	if table == "" || len(table) > maxSnapshotTableName {
		return fmt.Errorf("state: snapshot table name %q is empty or too long", table)
	}
	if sw.version == SnapshotV1 {
		if err := sw.jenc.Encode(snapshotRecord{Table: table, Row: row}); err != nil {
			return fmt.Errorf("state: write snapshot row of %s: %w", table, err)
		}
		return nil
	}
	if len(row) > maxSnapshotRow {
		return fmt.Errorf("state: snapshot row of %s is %d bytes, over %d", table, len(row), maxSnapshotRow)
	}
	n := binary.PutUvarint(sw.hdr[:], uint64(len(table)))
	sw.bw.Write(sw.hdr[:n])
	sw.bw.WriteString(table)
	n = binary.PutUvarint(sw.hdr[:], uint64(len(row)))
	sw.bw.Write(sw.hdr[:n])
	if _, err := sw.bw.Write(row); err != nil {
		return fmt.Errorf("state: write snapshot row of %s: %w", table, err)
	}
	return nil
}

// Close ends the stream (version 2 writes its end record) and flushes it.
// It does not close the underlying writer.
func (sw *SnapshotWriter) Close() error {
	if sw.version == SnapshotV2 {
		sw.bw.WriteByte(0)
	}
	if err := sw.bw.Flush(); err != nil {
		return fmt.Errorf("state: write snapshot: %w", err)
	}
	return nil
}
