package snapshot

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"time"
)

// Names of the archive's entries, in the order they are written.
const (
	metaName  = "meta.json"
	stateName = "state.bin"
	sumsName  = "SHA256SUMS"
)

// FormatVersion is the archive layout version written in meta.json.
const FormatVersion = 1

// Limits on the small entries, so a hostile archive cannot make a reader
// buffer unbounded input.
const (
	maxMetaSize = 1 << 20
	maxSumsSize = 4 << 10
)

// ErrCorrupt is matched (errors.Is) by every error that means the archive
// itself is bad: a checksum mismatch, truncation, a malformed tar or gzip
// stream, missing or unexpected entries, inconsistent metadata.
var ErrCorrupt = errors.New("snapshot: corrupt archive")

// CorruptError describes what is wrong with an archive. Its message names
// the problem, e.g. "snapshot: checksum mismatch for state.bin".
type CorruptError struct{ msg string }

func (e *CorruptError) Error() string { return "snapshot: " + e.msg }

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

func corrupt(format string, args ...any) error {
	return &CorruptError{msg: fmt.Sprintf(format, args...)}
}

// Server is one member of the Raft configuration stored with a snapshot.
type Server struct {
	ID       string
	Address  string
	Suffrage string // "voter", "nonvoter" or "staging"
}

// Meta is the content of meta.json: the Raft snapshot's metadata plus where
// and when the archive was made.
type Meta struct {
	// FormatVersion is the archive layout version (FormatVersion).
	FormatVersion int
	// ID, Index, Term and Version are the Raft snapshot's metadata;
	// Version is Raft's snapshot format version.
	ID      string
	Index   uint64
	Term    uint64
	Version int
	// Size is the length of state.bin in bytes.
	Size int64
	// Configuration is the Raft configuration at ConfigurationIndex. A
	// restore keeps the target cluster's own configuration; this is
	// informational.
	Configuration      []Server `json:",omitempty"`
	ConfigurationIndex uint64
	// CairnVersion is the version of the server that made the snapshot.
	CairnVersion string
	// Created is when the archive was written.
	Created time.Time
}

// Write writes an archive (gzip-compressed tar) of meta and the FSM
// snapshot read from state to w. meta.Size must be the exact length of
// state; FormatVersion is filled in. Write streams: it never holds state in
// memory.
func Write(w io.Writer, meta *Meta, state io.Reader) error {
	if meta == nil {
		return errors.New("snapshot: write: meta is required")
	}
	if meta.Size < 0 {
		return fmt.Errorf("snapshot: write: state size %d is negative", meta.Size)
	}
	m := *meta
	m.FormatVersion = FormatVersion
	if m.Created.IsZero() {
		m.Created = time.Now().UTC()
	}
	metaJSON, err := json.MarshalIndent(&m, "", "  ")
	if err != nil {
		return fmt.Errorf("snapshot: encode meta: %w", err)
	}
	metaJSON = append(metaJSON, '\n')

	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	mtime := m.Created.Truncate(time.Second)

	metaSum := sha256.Sum256(metaJSON)
	if err := writeEntry(tw, metaName, int64(len(metaJSON)), mtime); err != nil {
		return err
	}
	if _, err := tw.Write(metaJSON); err != nil {
		return fmt.Errorf("snapshot: write %s: %w", metaName, err)
	}

	if err := writeEntry(tw, stateName, m.Size, mtime); err != nil {
		return err
	}
	sh := sha256.New()
	n, err := io.Copy(io.MultiWriter(tw, sh), io.LimitReader(state, m.Size))
	if err != nil {
		return fmt.Errorf("snapshot: write %s: %w", stateName, err)
	}
	if n != m.Size {
		return fmt.Errorf("snapshot: write %s: state ended after %d of %d bytes", stateName, n, m.Size)
	}
	// The state must not be longer than announced either.
	var one [1]byte
	if k, _ := io.ReadFull(state, one[:]); k > 0 {
		return fmt.Errorf("snapshot: write %s: state is longer than its size %d", stateName, m.Size)
	}

	sums := fmt.Sprintf("%s  %s\n%s  %s\n", hex.EncodeToString(metaSum[:]), metaName,
		hex.EncodeToString(sh.Sum(nil)), stateName)
	if err := writeEntry(tw, sumsName, int64(len(sums)), mtime); err != nil {
		return err
	}
	if _, err := io.WriteString(tw, sums); err != nil {
		return fmt.Errorf("snapshot: write %s: %w", sumsName, err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("snapshot: finish tar: %w", err)
	}
	if err := gz.Close(); err != nil {
		return fmt.Errorf("snapshot: finish gzip: %w", err)
	}
	return nil
}

func writeEntry(tw *tar.Writer, name string, size int64, mtime time.Time) error {
	hdr := &tar.Header{
		Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o600,
		ModTime: mtime,
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("snapshot: write %s header: %w", name, err)
	}
	return nil
}

// Verify reads a whole archive from r and checks it: framing, sizes and
// both checksums. It keeps nothing but the metadata, which it returns.
func Verify(r io.Reader) (*Meta, error) {
	return scan(r, io.Discard)
}

// Read verifies the whole archive from r and only then calls apply with
// its metadata and the FSM snapshot bytes. state.bin is spooled to a
// temporary file (removed before Read returns) while it is hashed, so big
// snapshots never sit in memory and a corrupted or truncated archive never
// reaches apply. apply's error is returned as is.
func Read(r io.Reader, apply func(meta *Meta, state io.Reader) error) error {
	f, err := os.CreateTemp("", "cairn-snapshot-*.bin")
	if err != nil {
		return fmt.Errorf("snapshot: create temp file: %w", err)
	}
	defer func() {
		_ = f.Close()
		_ = os.Remove(f.Name())
	}()
	meta, err := scan(r, f)
	if err != nil {
		return err
	}
	return apply(meta, io.NewSectionReader(f, 0, meta.Size))
}

// ReadFile verifies the archive at path and returns its metadata.
func ReadFile(path string) (*Meta, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	defer f.Close()
	return Verify(f)
}

// hashedEntry is what scan learned about one entry.
type hashedEntry struct {
	size int64
	sum  []byte
}

// scan reads and checks a whole archive, copying state.bin to stateSink.
func scan(r io.Reader, stateSink io.Writer) (*Meta, error) {
	src, err := openStream(r)
	if err != nil {
		return nil, err
	}
	fr := &frameReader{r: src}
	tr := tar.NewReader(fr)

	var (
		metaJSON []byte
		sums     []byte
		got      = map[string]hashedEntry{}
	)
	for _, want := range []string{metaName, stateName, sumsName} {
		hdr, err := tr.Next()
		if err != nil {
			if errors.Is(err, io.EOF) && fr.err == nil {
				return nil, corrupt("archive is truncated: %s is missing", want)
			}
			return nil, fr.classify(err, "tar header of "+want)
		}
		if err := fr.checkHeaderTail(); err != nil {
			return nil, err
		}
		if hdr.Name != want {
			return nil, corrupt("unexpected entry %q in archive (want %s)", hdr.Name, want)
		}
		if hdr.Typeflag != tar.TypeReg {
			return nil, corrupt("%s is not a regular file", want)
		}
		if hdr.Size < 0 {
			return nil, corrupt("%s has negative size", want)
		}
		// Tar pads each entry to 512 bytes with zeros; check the padding so
		// that no byte of the archive can change unnoticed.
		end := fr.off + hdr.Size
		fr.zeroFrom, fr.zeroTo = end, (end+511)/512*512
		fr.hdrAt = fr.zeroTo

		h := sha256.New()
		switch want {
		case metaName:
			if hdr.Size > maxMetaSize {
				return nil, corrupt("%s is %d bytes, more than the %d allowed", want, hdr.Size, maxMetaSize)
			}
			metaJSON, err = readAllHashed(tr, h)
		case stateName:
			_, err = io.Copy(io.MultiWriter(stateSink, h), tr)
		case sumsName:
			if hdr.Size > maxSumsSize {
				return nil, corrupt("%s is %d bytes, more than the %d allowed", want, hdr.Size, maxSumsSize)
			}
			sums, err = readAllHashed(tr, h)
		}
		if err != nil {
			return nil, fr.classify(err, want)
		}
		got[want] = hashedEntry{size: hdr.Size, sum: h.Sum(nil)}
	}
	if hdr, err := tr.Next(); err == nil {
		return nil, corrupt("unexpected entry %q after %s", hdr.Name, sumsName)
	} else if !errors.Is(err, io.EOF) || fr.err != nil {
		return nil, fr.classify(err, "end of tar archive")
	}
	// archive/tar accepts a stream that stops before (or inside) the two
	// zero blocks that end an archive; our writer always writes them.
	if fr.off < fr.hdrAt+1024 {
		return nil, corrupt("archive is truncated (end-of-archive marker)")
	}
	// Whatever follows the end-of-archive marker (record padding) must be
	// zeros. Reading to EOF also makes gzip check its CRC and length.
	fr.zeroFrom, fr.zeroTo = fr.off, 1<<62
	if _, err := io.Copy(io.Discard, fr); err != nil {
		return nil, fr.classify(err, "end of archive")
	}

	if err := checkSums(sums, got); err != nil {
		return nil, err
	}
	var meta Meta
	if err := json.Unmarshal(metaJSON, &meta); err != nil {
		return nil, corrupt("%s is not valid JSON: %v", metaName, err)
	}
	if meta.FormatVersion != FormatVersion {
		return nil, corrupt("archive format version %d is not supported (want %d)", meta.FormatVersion, FormatVersion)
	}
	if meta.Size != got[stateName].size {
		return nil, corrupt("%s is %d bytes but %s says %d", stateName, got[stateName].size, metaName, meta.Size)
	}
	return &meta, nil
}

func readAllHashed(r io.Reader, h hash.Hash) ([]byte, error) {
	b, err := io.ReadAll(r)
	h.Write(b)
	return b, err
}

// checkSums compares the SHA256SUMS entry with the computed digests.
func checkSums(sums []byte, got map[string]hashedEntry) error {
	want, err := parseSums(sums)
	if err != nil {
		return err
	}
	for _, name := range []string{metaName, stateName} {
		w, ok := want[name]
		if !ok {
			return corrupt("%s has no checksum for %s", sumsName, name)
		}
		if !equalBytes(w, got[name].sum) {
			return corrupt("checksum mismatch for %s", name)
		}
	}
	if len(want) != 2 {
		return corrupt("%s lists unexpected files", sumsName)
	}
	return nil
}

func equalBytes(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	var d byte
	for i := range a {
		d |= a[i] ^ b[i]
	}
	return d == 0
}
