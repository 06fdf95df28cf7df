package raftlog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func quietOpts(segSize int64) Options {
	return Options{SegmentSize: segSize, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

func openT(t *testing.T, dir string, segSize int64) *Store {
	t.Helper()
	return openOptsT(t, dir, quietOpts(segSize))
}

// appendOnly are options without preallocation, for tests that need the
// file to end where the records end.
func appendOnly(segSize int64) Options {
	o := quietOpts(segSize)
	o.Preallocate = -1
	return o
}

func openOptsT(t *testing.T, dir string, opts Options) *Store {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// entry builds a log entry whose data says which index and term it has.
func entry(i, term uint64) *raft.Log {
	return &raft.Log{
		Index: i, Term: term, Type: raft.LogCommand,
		Data:       []byte(fmt.Sprintf("data-%d-%d-%s", i, term, bytes.Repeat([]byte{'x'}, int(i%97)))),
		Extensions: []byte(fmt.Sprintf("ext-%d", i%3)),
		AppendedAt: time.Unix(1700000000, int64(i)),
	}
}

func entries(from, to, term uint64) []*raft.Log {
	var out []*raft.Log
	for i := from; i <= to; i++ {
		out = append(out, entry(i, term))
	}
	return out
}

func store(t *testing.T, s *Store, logs []*raft.Log) {
	t.Helper()
	if err := s.StoreLogs(logs); err != nil {
		t.Fatalf("store %d..%d: %v", logs[0].Index, logs[len(logs)-1].Index, err)
	}
}

// checkLog asserts the store holds exactly first..last and that every entry
// has the term terms(i).
func checkLog(t *testing.T, s *Store, first, last uint64, term func(uint64) uint64) {
	t.Helper()
	gotFirst, _ := s.FirstIndex()
	gotLast, _ := s.LastIndex()
	if gotFirst != first || gotLast != last {
		t.Fatalf("bounds = %d..%d, want %d..%d", gotFirst, gotLast, first, last)
	}
	if first == 0 {
		return
	}
	for i := first; i <= last; i++ {
		var l raft.Log
		if err := s.GetLog(i, &l); err != nil {
			t.Fatalf("get %d: %v", i, err)
		}
		want := entry(i, term(i))
		if l.Index != want.Index || l.Term != want.Term || l.Type != want.Type ||
			!bytes.Equal(l.Data, want.Data) || !bytes.Equal(l.Extensions, want.Extensions) ||
			!l.AppendedAt.Equal(want.AppendedAt) {
			t.Fatalf("entry %d = %+v, want %+v", i, l, *want)
		}
	}
	var l raft.Log
	if err := s.GetLog(first-1, &l); first > 1 && !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("get %d below first: %v", first-1, err)
	}
	if err := s.GetLog(last+1, &l); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("get %d above last: %v", last+1, err)
	}
}

func term1(uint64) uint64 { return 1 }

func segFiles(t *testing.T, dir string) []uint64 {
	t.Helper()
	bases, err := listSegments(dir)
	if err != nil {
		t.Fatal(err)
	}
	return bases
}

func TestStore_AppendReadReopen(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, 0)
	checkLog(t, s, 0, 0, term1)
	store(t, s, entries(1, 1, 1))
	store(t, s, entries(2, 100, 1))
	if err := s.StoreLog(entry(101, 1)); err != nil {
		t.Fatal(err)
	}
	checkLog(t, s, 1, 101, term1)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var l raft.Log
	if err := s.GetLog(1, &l); !errors.Is(err, ErrClosed) {
		t.Fatalf("get after close: %v", err)
	}
	if err := s.StoreLog(entry(102, 1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("store after close: %v", err)
	}
	s2 := openT(t, dir, 0)
	checkLog(t, s2, 1, 101, term1)
	store(t, s2, entries(102, 110, 2))
	checkLog(t, s2, 1, 110, func(i uint64) uint64 {
		if i > 101 {
			return 2
		}
		return 1
	})
}

func TestStore_ZeroValues(t *testing.T) {
	s := openT(t, t.TempDir(), 0)
	in := &raft.Log{Index: 7, Term: 3, Type: raft.LogNoop}
	if err := s.StoreLog(in); err != nil {
		t.Fatal(err)
	}
	var out raft.Log
	if err := s.GetLog(7, &out); err != nil {
		t.Fatal(err)
	}
	if out.Data != nil || out.Extensions != nil || !out.AppendedAt.IsZero() || out.Type != raft.LogNoop || out.Term != 3 {
		t.Fatalf("got %+v", out)
	}
}

func TestStore_NotContiguous(t *testing.T) {
	s := openT(t, t.TempDir(), 0)
	store(t, s, entries(5, 10, 1))
	for _, tc := range []struct {
		name string
		logs []*raft.Log
	}{
		{"gap", entries(12, 13, 1)},
		{"overlap", entries(10, 11, 1)},
		{"hole inside batch", []*raft.Log{entry(11, 1), entry(13, 1)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.StoreLogs(tc.logs); !errors.Is(err, ErrNotContiguous) {
				t.Fatalf("err = %v, want ErrNotContiguous", err)
			}
			checkLog(t, s, 5, 10, term1)
		})
	}
}

func TestStore_SegmentRotation(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, 4096)
	for i := uint64(1); i <= 300; i += 10 {
		store(t, s, entries(i, i+9, 1))
	}
	if n := len(segFiles(t, dir)); n < 5 {
		t.Fatalf("%d segments, want several", n)
	}
	checkLog(t, s, 1, 300, term1)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkLog(t, openT(t, dir, 4096), 1, 300, term1)
}

func TestStore_DeletePrefix(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, 4096)
	store(t, s, entries(1, 300, 1))
	store(t, s, entries(301, 600, 1)) // two big batches: one segment each
	for i := uint64(601); i <= 900; i += 10 {
		store(t, s, entries(i, i+9, 1))
	}
	before := segFiles(t, dir)
	if err := s.DeleteRange(1, 650); err != nil {
		t.Fatal(err)
	}
	checkLog(t, s, 651, 900, term1)
	after := segFiles(t, dir)
	if len(after) >= len(before) || after[0] > 651 {
		t.Fatalf("segments %v -> %v: whole segments below 651 should be gone", before, after)
	}
	// A prefix delete past the last entry of a segment boundary, then reopen:
	// entries kept on disk below the first index come back, which is allowed.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openT(t, dir, 4096)
	first, _ := s2.FirstIndex()
	if first > 651 || first != after[0] {
		t.Fatalf("first after reopen = %d, want the first segment's base %d (≤ 651)", first, after[0])
	}
	checkLog(t, s2, first, 900, term1)
	store(t, s2, entries(901, 905, 1))
	checkLog(t, s2, first, 905, term1)
}

func TestStore_DeleteSuffix(t *testing.T) {
	for _, cut := range []uint64{2, 150, 301, 302, 450, 599, 600} {
		t.Run(fmt.Sprint(cut), func(t *testing.T) {
			dir := t.TempDir()
			s := openT(t, dir, 4096)
			store(t, s, entries(1, 300, 1))
			store(t, s, entries(301, 600, 1))
			if err := s.DeleteRange(cut, 600); err != nil {
				t.Fatal(err)
			}
			checkLog(t, s, 1, cut-1, term1)
			store(t, s, entries(cut, cut+20, 2))
			term := func(i uint64) uint64 {
				if i >= cut {
					return 2
				}
				return 1
			}
			checkLog(t, s, 1, cut+20, term)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			checkLog(t, openT(t, dir, 4096), 1, cut+20, term)
		})
	}
}

func TestStore_DeleteAllThenStartElsewhere(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, 4096)
	store(t, s, entries(1, 300, 1))
	store(t, s, entries(301, 400, 1))
	if err := s.DeleteRange(1, 400); err != nil {
		t.Fatal(err)
	}
	checkLog(t, s, 0, 0, term1)
	if n := len(segFiles(t, dir)); n != 0 {
		t.Fatalf("%d segment files left after deleting everything", n)
	}
	// After a snapshot install Raft continues past the snapshot index.
	store(t, s, entries(5001, 5010, 3))
	checkLog(t, s, 5001, 5010, func(uint64) uint64 { return 3 })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkLog(t, openT(t, dir, 4096), 5001, 5010, func(uint64) uint64 { return 3 })
}

func TestStore_DeleteRangeEdges(t *testing.T) {
	s := openT(t, t.TempDir(), 0)
	store(t, s, entries(10, 20, 1))
	if err := s.DeleteRange(12, 15); err == nil {
		t.Fatal("a range inside the log was accepted")
	}
	for _, r := range [][2]uint64{{1, 9}, {21, 30}, {15, 14}} {
		if err := s.DeleteRange(r[0], r[1]); err != nil {
			t.Fatalf("delete %v: %v", r, err)
		}
	}
	checkLog(t, s, 10, 20, term1)
	if err := s.DeleteRange(1, 12); err != nil {
		t.Fatal(err)
	}
	checkLog(t, s, 13, 20, term1)
	if err := s.DeleteRange(19, 100); err != nil {
		t.Fatal(err)
	}
	checkLog(t, s, 13, 18, term1)
}

// lastSegment returns the path of the newest segment file in dir.
func lastSegment(t *testing.T, dir string) string {
	t.Helper()
	bases := segFiles(t, dir)
	return filepath.Join(dir, segmentName(bases[len(bases)-1]))
}

// TestStore_TornTail cuts the last segment at every byte of its last batch,
// as a crash in the middle of a write would: the store opens with the
// earlier batches intact and accepts the lost batch again.
func TestStore_TornTail(t *testing.T) {
	src := t.TempDir()
	s := openOptsT(t, src, appendOnly(0))
	store(t, s, entries(1, 20, 1))
	path := lastSegment(t, src)
	st, _ := os.Stat(path)
	good := st.Size()
	store(t, s, entries(21, 23, 1))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	full, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for cut := good; cut < int64(len(full)); cut++ {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(path)), full[:cut], 0o600); err != nil {
			t.Fatal(err)
		}
		s := openT(t, dir, 0)
		last, _ := s.LastIndex()
		if last < 20 || last > 22 {
			t.Fatalf("cut at %d: last index %d, want 20..22", cut, last)
		}
		checkLog(t, s, 1, last, term1)
		store(t, s, entries(last+1, 25, 1))
		checkLog(t, s, 1, 25, term1)
	}
	// Garbage after a whole record (a torn length or CRC) is cut too.
	dir := t.TempDir()
	junk := append(append([]byte(nil), full...), 0xff, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09)
	if err := os.WriteFile(filepath.Join(dir, filepath.Base(path)), junk, 0o600); err != nil {
		t.Fatal(err)
	}
	checkLog(t, openT(t, dir, 0), 1, 23, term1)
}

func TestStore_CorruptionIsAnError(t *testing.T) {
	build := func(t *testing.T, segSize int64) string {
		dir := t.TempDir()
		s := openT(t, dir, segSize)
		for i := uint64(1); i <= 200; i += 20 {
			store(t, s, entries(i, i+19, 1))
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	flip := func(t *testing.T, path string, at int64) {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		data[at] ^= 0x40
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("record in an earlier segment", func(t *testing.T) {
		dir := build(t, 4096)
		bases := segFiles(t, dir)
		flip(t, filepath.Join(dir, segmentName(bases[0])), segmentHeaderSize+recordHeaderSize+30)
		if _, err := Open(dir, quietOpts(4096)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("err = %v, want ErrCorrupt", err)
		}
	})
	t.Run("segment header", func(t *testing.T) {
		dir := build(t, 0)
		flip(t, lastSegment(t, dir), 2)
		if _, err := Open(dir, quietOpts(0)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("err = %v, want ErrCorrupt", err)
		}
	})
	t.Run("missing middle segment", func(t *testing.T) {
		dir := build(t, 4096)
		bases := segFiles(t, dir)
		if err := os.Remove(filepath.Join(dir, segmentName(bases[1]))); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(dir, quietOpts(4096)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("err = %v, want ErrCorrupt", err)
		}
	})
	t.Run("stray file", func(t *testing.T) {
		dir := build(t, 0)
		if err := os.WriteFile(filepath.Join(dir, "junk.wal"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(dir, quietOpts(0)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("err = %v, want ErrCorrupt", err)
		}
	})
}

// TestStore_EmptyNewSegment: a crash right after a new segment was created
// leaves it holding only its header; the store reopens and appends into it.
func TestStore_EmptyNewSegment(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, 0)
	store(t, s, entries(1, 10, 1))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	seg, err := createSegment(dir, 11)
	if err != nil {
		t.Fatal(err)
	}
	_ = seg.f.Close()
	// And a second one whose header write was cut short.
	if err := os.WriteFile(filepath.Join(dir, segmentName(12)), []byte("CAIR"), 0o600); err != nil {
		t.Fatal(err)
	}
	s2 := openT(t, dir, 0)
	checkLog(t, s2, 1, 10, term1)
	store(t, s2, entries(11, 12, 1))
	checkLog(t, s2, 1, 12, term1)
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	checkLog(t, openT(t, dir, 0), 1, 12, term1)
}

func TestStore_Stable(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, 0)
	if _, err := s.GetUint64([]byte("CurrentTerm")); err == nil || err.Error() != "not found" {
		t.Fatalf("missing uint64: %v (raft compares the message to \"not found\")", err)
	}
	if _, err := s.Get([]byte("LastVoteCand")); err == nil || err.Error() != "not found" {
		t.Fatalf("missing key: %v", err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 42); err != nil {
		t.Fatal(err)
	}
	if err := s.Set([]byte("LastVoteCand"), []byte("node-a")); err != nil {
		t.Fatal(err)
	}
	if err := s.Set([]byte("empty"), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openT(t, dir, 0)
	if v, err := s2.GetUint64([]byte("CurrentTerm")); err != nil || v != 42 {
		t.Fatalf("CurrentTerm = %d, %v", v, err)
	}
	if v, err := s2.Get([]byte("LastVoteCand")); err != nil || string(v) != "node-a" {
		t.Fatalf("LastVoteCand = %q, %v", v, err)
	}
	if v, err := s2.Get([]byte("empty")); err != nil || len(v) != 0 {
		t.Fatalf("empty = %q, %v", v, err)
	}
	if _, err := s2.GetUint64([]byte("LastVoteCand")); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("non-uint64 read as uint64: %v", err)
	}
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	// A damaged stable file is refused, never read as empty (that would
	// forget a vote).
	path := filepath.Join(dir, stableName)
	data, _ := os.ReadFile(path)
	data[len(data)-6] ^= 1
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, quietOpts(0)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("damaged stable file: %v", err)
	}
}

// TestStore_ConcurrentReadersAndWriters runs Raft's access pattern under
// -race: appends, reads of recent entries, and prefix compaction at once.
func TestStore_ConcurrentReadersAndWriters(t *testing.T) {
	s := openT(t, t.TempDir(), 8192)
	store(t, s, entries(1, 1, 1))
	const n = 2000
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		for i := uint64(2); i <= n; i += 4 {
			if err := s.StoreLogs(entries(i, i+3, 1)); err != nil {
				errc <- err
				return
			}
		}
	}()
	// untilDone runs step until the writer is done or step fails.
	untilDone := func(step func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				if err := step(); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	for r := 0; r < 3; r++ {
		untilDone(func() error {
			first, _ := s.FirstIndex()
			last, _ := s.LastIndex()
			for i := last; i >= first && i+20 > last && i > 0; i-- {
				var l raft.Log
				err := s.GetLog(i, &l)
				if errors.Is(err, raft.ErrLogNotFound) {
					continue // compacted meanwhile
				}
				if err != nil || l.Index != i || !bytes.Equal(l.Data, entry(i, 1).Data) {
					return fmt.Errorf("read %d: %v %+v", i, err, l)
				}
			}
			return nil
		})
	}
	untilDone(func() error {
		last, _ := s.LastIndex()
		first, _ := s.FirstIndex()
		if last > first+100 {
			if err := s.DeleteRange(first, last-50); err != nil {
				return err
			}
		}
		time.Sleep(time.Millisecond) // let appends run between compactions
		return nil
	})
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	last, _ := s.LastIndex()
	if last != n+1 {
		t.Fatalf("last = %d, want %d", last, n+1)
	}
}

func TestStore_Import(t *testing.T) {
	src := raft.NewInmemStore()
	if err := src.StoreLogs(entries(40, 140, 2)); err != nil {
		t.Fatal(err)
	}
	if err := src.SetUint64([]byte("CurrentTerm"), 9); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := openT(t, dir, 4096)
	if err := s.Import(src, src, []string{"CurrentTerm", "LastVoteTerm"}, []string{"LastVoteCand"}); err != nil {
		t.Fatal(err)
	}
	checkLog(t, s, 40, 140, func(uint64) uint64 { return 2 })
	if v, err := s.GetUint64([]byte("CurrentTerm")); err != nil || v != 9 {
		t.Fatalf("CurrentTerm = %d, %v", v, err)
	}
	if _, err := s.Get([]byte("LastVoteCand")); err == nil {
		t.Fatal("a key missing from the source was created")
	}
	if err := s.Import(src, src, nil, nil); err == nil {
		t.Fatal("import into a non-empty store was accepted")
	}
}
