package raftlog

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// fileSize is the length of path on disk.
func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// tailSize is the end of the last record of the last segment.
func tailSize(s *Store) int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.segs[len(s.segs)-1].size
}

// allocEnd returns where the last segment's published zeros end.
func allocEnd(s *Store) int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.segs[len(s.segs)-1].alloc.Load()
}

// TestStore_Preallocates: zeros are written ahead of the records, appends
// then land on them without growing the file, and a reopened store takes
// the zeros as free space, not as damage.
func TestStore_Preallocates(t *testing.T) {
	dir := t.TempDir()
	opts := quietOpts(0)
	opts.Preallocate = 64 << 10
	s := openOptsT(t, dir, opts)
	store(t, s, entries(1, 10, 1))
	path := lastSegment(t, dir)
	// The file grows page by page while the zeros are written; wait for
	// the preallocation to be published (alloc), not for a size.
	waitFor(t, "the first preallocation", func() bool {
		a := allocEnd(s)
		return a >= tailSize(s)+32<<10 && fileSize(t, path) == a
	})
	before := fileSize(t, path)
	store(t, s, entries(11, 20, 1))
	if got := fileSize(t, path); got != before {
		t.Fatalf("an append below the preallocated end changed the file size %d -> %d", before, got)
	}
	// Appending past half the zeros asks for more.
	for i := uint64(21); tailSize(s) < before-16<<10; i += 10 {
		store(t, s, entries(i, i+9, 1))
	}
	waitFor(t, "a further preallocation", func() bool { return fileSize(t, path) > before })
	last, _ := s.LastIndex()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !allZero(data[tailSize(s):]) {
		t.Fatal("bytes past the last record are not zero")
	}

	s2 := openOptsT(t, dir, opts)
	checkLog(t, s2, 1, last, term1)
	size := fileSize(t, path)
	store(t, s2, entries(last+1, last+5, 1))
	if got := fileSize(t, path); got != size {
		t.Fatalf("after reopening, an append did not land on the zeros: size %d -> %d", size, got)
	}
	checkLog(t, s2, 1, last+5, term1)
}

// TestStore_PreallocatedTornTail: a crash in the middle of a write into
// preallocated space leaves the batch's bytes partly written and zeros
// after them, or (pages reach the disk in any order) zeros where its first
// records were and its later records intact. Either way the store opens
// with the acknowledged batches and the later ones are gone for good.
func TestStore_PreallocatedTornTail(t *testing.T) {
	src := t.TempDir()
	s := openOptsT(t, src, appendOnly(0))
	store(t, s, entries(1, 20, 1))
	path := lastSegment(t, src)
	good := fileSize(t, path)
	store(t, s, entries(21, 23, 1))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	full, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const room = 4096 // preallocated zeros past the batch
	image := func(t *testing.T, data []byte) string {
		t.Helper()
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(path)), data, 0o600); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	reopenAndAppend := func(t *testing.T, dir string, want func(last uint64) bool) {
		t.Helper()
		s := openT(t, dir, 0)
		last, _ := s.LastIndex()
		if !want(last) {
			t.Fatalf("last index %d", last)
		}
		checkLog(t, s, 1, last, term1)
		// One entry comes back with another term. It is as long as the
		// old one at that index, so any old entry left after it would
		// follow on exactly; it must never show through.
		store(t, s, entries(last+1, last+1, 2))
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		checkLog(t, openT(t, dir, 0), 1, last+1, func(i uint64) uint64 {
			if i > last {
				return 2
			}
			return 1
		})
	}
	t.Run("written up to a point, zeros after", func(t *testing.T) {
		for cut := good; cut <= int64(len(full)); cut += 3 {
			data := make([]byte, len(full)+room)
			copy(data, full[:cut])
			reopenAndAppend(t, image(t, data), func(last uint64) bool { return last >= 20 && last <= 23 })
		}
	})
	t.Run("zeros before written bytes", func(t *testing.T) {
		for hole := int64(1); good+hole < int64(len(full)); hole += 7 {
			data := make([]byte, len(full)+room)
			copy(data, full)
			clear(data[good : good+hole])
			reopenAndAppend(t, image(t, data), func(last uint64) bool { return last == 20 })
		}
	})
	t.Run("junk far into the zeros", func(t *testing.T) {
		data := make([]byte, len(full)+room)
		copy(data, full)
		data[len(data)-1] = 0x5a
		reopenAndAppend(t, image(t, data), func(last uint64) bool { return last == 23 })
	})
}

// TestStore_PreallocatedEarlierSegments: zeros past the records of an
// earlier segment (its preallocation when it filled up) are free space;
// anything after them there is damage, since only the last segment can
// hold a torn write.
func TestStore_PreallocatedEarlierSegments(t *testing.T) {
	build := func(t *testing.T) (string, string) {
		dir := t.TempDir()
		s := openOptsT(t, dir, appendOnly(4096))
		for i := uint64(1); i <= 200; i += 20 {
			store(t, s, entries(i, i+19, 1))
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		return dir, filepath.Join(dir, segmentName(segFiles(t, dir)[0]))
	}
	grow := func(t *testing.T, path string, tail []byte) {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.Write(tail); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("zeros", func(t *testing.T) {
		dir, first := build(t)
		grow(t, first, make([]byte, 8192))
		checkLog(t, openT(t, dir, 4096), 1, 200, term1)
	})
	t.Run("zeros then junk", func(t *testing.T) {
		dir, first := build(t)
		grow(t, first, append(make([]byte, 100), 1))
		if _, err := Open(dir, quietOpts(4096)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("err = %v, want ErrCorrupt", err)
		}
	})
}

// TestStore_DeleteSuffixDropsPreallocation: after the preallocator has run,
// deleting a suffix and writing other entries in its place never lets the
// deleted entries or stale bytes show through, before or after a reopen.
func TestStore_DeleteSuffixDropsPreallocation(t *testing.T) {
	dir := t.TempDir()
	opts := quietOpts(0)
	opts.Preallocate = 64 << 10
	s := openOptsT(t, dir, opts)
	store(t, s, entries(1, 30, 1))
	path := lastSegment(t, dir)
	waitFor(t, "preallocation", func() bool { return fileSize(t, path) > tailSize(s) })
	if err := s.DeleteRange(21, 30); err != nil {
		t.Fatal(err)
	}
	store(t, s, entries(21, 22, 2))
	term := func(i uint64) uint64 {
		if i > 20 {
			return 2
		}
		return 1
	}
	checkLog(t, s, 1, 22, term)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !allZero(data[tailSize(s):]) {
		t.Fatal("bytes past the last record are not zero")
	}
	if bytes.Contains(data, entry(23, 1).Data) {
		t.Fatal("a deleted entry is still in the file")
	}
	checkLog(t, openOptsT(t, dir, opts), 1, 22, term)
}
