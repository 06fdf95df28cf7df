package snapshot

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
)

// openStream returns the tar stream in r, decompressing it when it starts
// with the gzip magic number.
func openStream(r io.Reader) (io.Reader, error) {
	br := bufio.NewReader(r)
	magic, err := br.Peek(2)
	if err != nil {
		if errors.Is(err, io.EOF) {
			if len(magic) == 0 {
				return nil, corrupt("archive is empty")
			}
			return nil, corrupt("archive is truncated")
		}
		return nil, fmt.Errorf("snapshot: read archive: %w", err)
	}
	if magic[0] != 0x1f || magic[1] != 0x8b {
		return br, nil
	}
	gz, err := gzip.NewReader(br)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, corrupt("archive is truncated (gzip header)")
		}
		if errors.Is(err, gzip.ErrHeader) || errors.Is(err, gzip.ErrChecksum) {
			return nil, corrupt("gzip header is corrupt: %v", err)
		}
		return nil, fmt.Errorf("snapshot: read archive: %w", err)
	}
	return gz, nil
}

// frameReader counts the bytes of the tar stream and requires the bytes in
// [zeroFrom, zeroTo) to be zero: tar's padding is not covered by the
// entries' checksums, so scan checks it here.
type frameReader struct {
	r                io.Reader
	off              int64
	zeroFrom, zeroTo int64
	// hdrAt is the offset of the next tar header block; hdrTail receives
	// its bytes 154 and 155, the terminator of the header checksum field,
	// which the header checksum does not cover and archive/tar ignores.
	hdrAt   int64
	hdrTail [2]byte
	// err is the first framing error found; tar may not pass it on as is.
	err error
}

// checkHeaderTail requires the checksum field terminator that every tar
// writer (archive/tar, GNU, BSD) emits: NUL then space.
func (f *frameReader) checkHeaderTail() error {
	if f.hdrTail != [2]byte{0, ' '} {
		return corrupt("tar header at offset %d has a malformed checksum field", f.hdrAt)
	}
	return nil
}

func (f *frameReader) Read(p []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	n, err := f.r.Read(p)
	if n > 0 {
		lo, hi := max(f.off, f.zeroFrom), min(f.off+int64(n), f.zeroTo)
		if lo < hi {
			for _, b := range p[lo-f.off : hi-f.off] {
				if b != 0 {
					f.err = corrupt("unexpected data in tar padding at offset %d", lo)
					return 0, f.err
				}
			}
		}
		for i, at := range [2]int64{f.hdrAt + 154, f.hdrAt + 155} {
			if at >= f.off && at < f.off+int64(n) {
				f.hdrTail[i] = p[at-f.off]
			}
		}
		f.off += int64(n)
	}
	return n, err
}

// classify turns a read error into a CorruptError when it means the archive
// is bad, and otherwise wraps it (an I/O error of the source or the spool).
func (f *frameReader) classify(err error, what string) error {
	if f.err != nil {
		return f.err
	}
	var ce *CorruptError
	var fe flate.CorruptInputError
	switch {
	case errors.As(err, &ce):
		return err
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return corrupt("archive is truncated (reading %s)", what)
	case errors.Is(err, gzip.ErrChecksum):
		return corrupt("gzip checksum mismatch (reading %s)", what)
	case errors.Is(err, gzip.ErrHeader), errors.As(err, &fe):
		return corrupt("gzip stream is corrupt (reading %s): %v", what, err)
	case errors.Is(err, tar.ErrHeader), errors.Is(err, tar.ErrFieldTooLong),
		errors.Is(err, tar.ErrInsecurePath), isTarFormatError(err):
		return corrupt("invalid tar data (reading %s): %v", what, err)
	default:
		return fmt.Errorf("snapshot: read %s: %w", what, err)
	}
}

// isTarFormatError recognises archive/tar's unexported parse errors (for
// example a bad PAX record), which have no sentinel.
func isTarFormatError(err error) bool {
	return strings.HasPrefix(err.Error(), "archive/tar:")
}

// parseSums parses "<64 hex>  <name>" lines.
func parseSums(b []byte) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		sum, name, ok := bytes.Cut(line, []byte("  "))
		if !ok || len(sum) != 64 || len(name) == 0 {
			return nil, corrupt("%s has a malformed line %q", sumsName, truncate(line))
		}
		d, err := hex.DecodeString(string(sum))
		if err != nil {
			return nil, corrupt("%s has a malformed checksum for %q", sumsName, truncate(name))
		}
		if _, dup := out[string(name)]; dup {
			return nil, corrupt("%s lists %q twice", sumsName, truncate(name))
		}
		out[string(name)] = d
	}
	return out, nil
}

func truncate(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "..."
	}
	return string(b)
}
