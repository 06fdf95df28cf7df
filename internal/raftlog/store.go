package raftlog

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/cairn-io/cairn/internal/fsutil"
)

var (
	// ErrCorrupt is returned when the files on disk are damaged in a way a
	// torn final write cannot explain.
	ErrCorrupt = errors.New("raftlog: log is corrupt")
	// ErrClosed is returned by calls after Close.
	ErrClosed = errors.New("raftlog: store is closed")
	// ErrNotContiguous is returned by StoreLogs for entries that do not
	// follow the last stored index one by one.
	ErrNotContiguous = errors.New("raftlog: log entries are not contiguous")
	// ErrFailed is returned after a write could not be undone: the store
	// refuses further writes until it is reopened, which rescans the disk.
	ErrFailed = errors.New("raftlog: store failed; reopen it")
)

// DefaultSegmentSize is the size past which a new segment is started.
const DefaultSegmentSize = 64 << 20

// DefaultPreallocate is how much zeroed space the store keeps written
// ahead of the appends in the last segment.
const DefaultPreallocate = 1 << 20

// Options configure a Store.
type Options struct {
	// SegmentSize is the size past which a new segment file is started
	// (DefaultSegmentSize when 0).
	SegmentSize int64
	// Preallocate is the size of each zeroed extension written ahead of
	// the appends (DefaultPreallocate when 0, off when negative; at most
	// SegmentSize). An append that lands on zeros already on disk
	// overwrites blocks in place, so its fdatasync has no file size to
	// commit: about a third cheaper on ext4.
	Preallocate int64
	// Logger receives recovery notices (slog.Default when nil).
	Logger *slog.Logger
}

// Store is a raft.LogStore, raft.MonotonicLogStore and raft.StableStore
// kept in one directory.
//
// Concurrency: hashicorp/raft appends from its main loop, compacts from its
// snapshot goroutine and reads from its replication goroutines at the same
// time. writeMu serializes the writers (StoreLogs, DeleteRange); mu guards
// the segment list and index bounds; stableMu guards the stable store. An
// append writes and syncs holding only writeMu (readers never look past
// the last acknowledged record) and takes mu to publish the new records; a
// deletion holds mu exclusively while it removes and truncates files.
//
// The preallocator goroutine writes zeros past the end of the file of the
// last segment, holding allocMu, which also guards every segment's alloc,
// the closing of segment files, and any write past a segment's alloc. An
// append that fits below alloc needs no allocMu: the preallocator only
// writes at or past alloc, and alloc shrinks only under writeMu. Lock
// order: writeMu, mu, allocMu.
type Store struct {
	dir         string
	segmentSize int64
	prealloc    int64 // 0: off
	logger      *slog.Logger

	allocMu   sync.Mutex
	wantAlloc atomic.Pointer[segment] // the segment to extend next
	allocCh   chan struct{}           // wakes the preallocator
	stopCh    chan struct{}
	stopOnce  sync.Once
	wg        sync.WaitGroup

	stableMu sync.Mutex
	stable   *stableFile // under stableMu

	writeMu sync.Mutex
	buf     []byte // append buffer, reused under writeMu
	failed  bool   // under writeMu

	mu     sync.RWMutex
	segs   []*segment // ascending base; the last one takes appends
	first  uint64     // 0 when empty
	last   uint64     // 0 when empty
	closed bool
}

var (
	_ raft.LogStore          = (*Store)(nil)
	_ raft.MonotonicLogStore = (*Store)(nil)
	_ raft.StableStore       = (*Store)(nil)
)

// Open opens or creates the store in dir, checking every segment and
// cutting off a torn final write.
func Open(dir string, opts Options) (*Store, error) {
	if opts.SegmentSize <= 0 {
		opts.SegmentSize = DefaultSegmentSize
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	switch {
	case opts.Preallocate == 0:
		opts.Preallocate = DefaultPreallocate
	case opts.Preallocate < 0:
		opts.Preallocate = 0
	}
	opts.Preallocate = min(opts.Preallocate, opts.SegmentSize)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("raftlog: create %s: %w", dir, err)
	}
	s := &Store{dir: dir, segmentSize: opts.SegmentSize, prealloc: opts.Preallocate, logger: opts.Logger,
		allocCh: make(chan struct{}, 1), stopCh: make(chan struct{})}
	stable, err := openStable(dir)
	if err != nil {
		return nil, err
	}
	s.stable = stable
	if err := s.load(); err != nil {
		s.closeFiles()
		return nil, err
	}
	if s.prealloc > 0 {
		s.wg.Add(1)
		go s.preallocator()
	}
	return s, nil
}

// load scans the segment files and opens them.
func (s *Store) load() error {
	bases, err := listSegments(s.dir)
	if err != nil {
		return err
	}
	for i, base := range bases {
		seg, err := s.loadSegment(base, i == len(bases)-1)
		if err != nil {
			return err
		}
		if seg == nil {
			continue
		}
		if len(s.segs) > 0 {
			prev := s.segs[len(s.segs)-1]
			if len(prev.offs) == 0 || prev.last()+1 != base {
				_ = seg.f.Close()
				return fmt.Errorf("%w: segment %s starts at %d but the previous one ends at %d",
					ErrCorrupt, seg.path, base, prev.last())
			}
		}
		s.segs = append(s.segs, seg)
	}
	// An empty last segment (created, then nothing acknowledged in it) is
	// kept as the append target only if it is the only one or follows on.
	for _, seg := range s.segs {
		if len(seg.offs) > 0 {
			if s.first == 0 {
				s.first = seg.base
			}
			s.last = seg.last()
		}
	}
	if s.first == 0 && len(s.segs) > 0 {
		// Only an empty segment: the log is empty; forget it so the next
		// append may start at any index.
		if err := s.removeSegments(s.segs); err != nil {
			return err
		}
		s.segs = nil
	}
	return nil
}

// loadSegment opens and checks the segment starting at base. In the last
// segment a torn final write is cut off, and a segment whose creation was
// cut short is removed (nil, nil); anywhere else damage is an error.
func (s *Store) loadSegment(base uint64, last bool) (*segment, error) {
	path := filepath.Join(s.dir, segmentName(base))
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("raftlog: open %s: %w", path, err)
	}
	seg, err := scanSegment(f, path, base)
	var torn *tornError
	switch {
	case err == nil:
		seg.f = f
		return seg, nil
	case !errors.As(err, &torn):
		_ = f.Close()
		return nil, err
	case !last:
		_ = f.Close()
		return nil, fmt.Errorf("%w: %s (not the last segment): %v", ErrCorrupt, path, torn)
	case seg.size < segmentHeaderSize:
		// Creation was cut short: the segment never held a record.
		_ = f.Close()
		s.logger.Warn("raft log: removing a segment whose creation was cut short", "path", path)
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("raftlog: remove %s: %w", path, err)
		}
		if err := fsutil.SyncDir(s.dir); err != nil {
			return nil, fmt.Errorf("raftlog: %w", err)
		}
		return nil, nil
	}
	s.logger.Warn("raft log: cutting off a torn write at the end of the log",
		"path", path, "offset", torn.off, "reason", torn.reason, "last_index", seg.last())
	err = f.Truncate(seg.size)
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("raftlog: cut off the torn end of %s: %w", path, err)
	}
	seg.f = f
	seg.alloc.Store(seg.size)
	return seg, nil
}

// IsMonotonic tells Raft that entries must be contiguous, so it deletes
// the whole log after installing a snapshot instead of leaving a gap.
func (s *Store) IsMonotonic() bool { return true }

// FirstIndex returns the first index in the log, 0 when empty.
func (s *Store) FirstIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, ErrClosed
	}
	return s.first, nil
}

// LastIndex returns the last index in the log, 0 when empty.
func (s *Store) LastIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, ErrClosed
	}
	return s.last, nil
}

// GetLog reads entry index into l; raft.ErrLogNotFound when absent.
func (s *Store) GetLog(index uint64, l *raft.Log) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	if s.first == 0 || index < s.first || index > s.last {
		return raft.ErrLogNotFound
	}
	i := sort.Search(len(s.segs), func(i int) bool { return s.segs[i].base > index }) - 1
	seg := s.segs[i]
	return seg.readRecord(index, l)
}

// StoreLog appends one entry.
func (s *Store) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

// StoreLogs appends entries that continue the log one index at a time
// (an empty log takes any starting index), with one write and one
// fdatasync; the entries are readable once it returns nil.
func (s *Store) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if s.failed {
		return ErrFailed
	}
	s.mu.RLock()
	closed, last, empty := s.closed, s.last, s.first == 0
	s.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	for i, l := range logs {
		want := logs[0].Index + uint64(i)
		if i == 0 && !empty {
			want = last + 1
		}
		if l.Index != want || l.Index == 0 {
			return fmt.Errorf("%w: got index %d, want %d", ErrNotContiguous, l.Index, want)
		}
	}

	buf := s.buf[:0]
	offs := make([]int64, len(logs))
	for i, l := range logs {
		offs[i] = int64(len(buf))
		buf = appendRecord(buf, l)
	}
	if cap(buf) <= 4<<20 {
		s.buf = buf
	}

	tail, err := s.tailFor(logs[0].Index, int64(len(buf)))
	if err != nil {
		return err
	}
	at := tail.size
	end := at + int64(len(buf))
	// Past the preallocated zeros the write grows the file, which the
	// preallocator must not do at the same time. Below them it needs no
	// lock: the preallocator writes only at or past alloc.
	grow := end > tail.alloc.Load()
	if grow {
		s.allocMu.Lock()
	}
	err = s.writeSync(tail, buf, at, grow)
	if grow {
		// The preallocator may have extended the file while this waited
		// for the lock.
		if err == nil && end > tail.alloc.Load() {
			tail.alloc.Store(end)
		}
		s.allocMu.Unlock()
	}
	if err != nil {
		return err
	}
	s.wantPrealloc(tail, end)

	s.mu.Lock()
	for _, o := range offs {
		tail.offs = append(tail.offs, at+o)
	}
	tail.size = at + int64(len(buf))
	if s.first == 0 {
		s.first = logs[0].Index
	}
	s.last = logs[len(logs)-1].Index
	s.mu.Unlock()
	return nil
}

// writeSync writes buf at offset at of tail and syncs it. Called holding
// writeMu, and allocMu when locked is set.
func (s *Store) writeSync(tail *segment, buf []byte, at int64, locked bool) error {
	if _, err := tail.f.WriteAt(buf, at); err != nil {
		// Cut the partial write off, with the zeros after it (the next
		// extension writes them again).
		if !locked {
			s.allocMu.Lock()
			defer s.allocMu.Unlock()
		}
		if terr := tail.f.Truncate(at); terr != nil {
			s.failed = true
			s.logger.Error("raft log: cannot undo a failed append", "path", tail.path, "error", terr)
		} else {
			tail.alloc.Store(at)
		}
		return fmt.Errorf("raftlog: append to %s: %w", tail.path, err)
	}
	if err := fdatasync(tail.f); err != nil {
		// After a failed sync the page cache state is unknown (the kernel
		// may have dropped the dirty pages): refuse further writes.
		s.failed = true
		return fmt.Errorf("raftlog: sync %s: %w", tail.path, err)
	}
	return nil
}

// wantPrealloc asks the preallocator to extend tail when fewer than half a
// preallocation of zeros are left after end and the segment is not full.
// Called holding writeMu.
func (s *Store) wantPrealloc(tail *segment, end int64) {
	if s.prealloc == 0 {
		return
	}
	if a := tail.alloc.Load(); a-end >= s.prealloc/2 || a >= s.segmentSize {
		return
	}
	s.wantAlloc.Store(tail)
	select {
	case s.allocCh <- struct{}{}:
	default: // already woken; it reads wantAlloc when it runs
	}
}

// preallocator writes and syncs zeros past the end of the segment that
// wantPrealloc names, one preallocation at a time, until Close. Owned by
// the Store (stopCh, wg).
func (s *Store) preallocator() {
	defer s.wg.Done()
	var failedAt time.Time
	for {
		select {
		case <-s.stopCh:
			return
		case <-s.allocCh:
		}
		if time.Since(failedAt) < preallocRetry {
			continue // a full disk would fail every try; let appends go on
		}
		if seg := s.wantAlloc.Load(); seg != nil {
			if err := s.extend(seg); err != nil {
				failedAt = time.Now()
				s.logger.Warn("raft log: cannot preallocate; appends grow the file until a retry works",
					"path", seg.path, "retry_in", preallocRetry, "error", err)
			}
		}
	}
}

// preallocRetry is how long the preallocator waits after a failure.
const preallocRetry = 10 * time.Second

// zeros is the source of preallocation writes; never written to.
var zeros [64 << 10]byte

// extend appends s.prealloc zero bytes to seg's file and syncs them. A
// failure leaves only zeros (or nothing) past alloc, which the scan on
// open takes as free space, and appends go on growing the file as they
// would without preallocation.
func (s *Store) extend(seg *segment) error {
	s.allocMu.Lock()
	defer s.allocMu.Unlock()
	a := seg.alloc.Load()
	if seg.f == nil || a >= s.segmentSize {
		return nil // removed or closed, or full
	}
	var err error
	for off := a; off < a+s.prealloc && err == nil; off += int64(len(zeros)) {
		_, err = seg.f.WriteAt(zeros[:min(int64(len(zeros)), a+s.prealloc-off)], off)
	}
	if err == nil {
		err = fdatasync(seg.f)
	}
	if err != nil {
		return fmt.Errorf("extend %s to %d bytes: %w", seg.path, a+s.prealloc, err)
	}
	seg.alloc.Store(a + s.prealloc)
	return nil
}

// tailFor returns the segment to append n bytes starting at index first,
// starting a new segment when the log is empty or the tail is full.
// Called holding writeMu.
func (s *Store) tailFor(first uint64, n int64) (*segment, error) {
	s.mu.RLock()
	var tail *segment
	if len(s.segs) > 0 {
		tail = s.segs[len(s.segs)-1]
	}
	s.mu.RUnlock()
	if tail != nil && (len(tail.offs) == 0 || tail.size+n <= s.segmentSize) {
		return tail, nil
	}
	seg, err := createSegment(s.dir, first)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.segs = append(s.segs, seg)
	s.mu.Unlock()
	return seg, nil
}

// DeleteRange deletes entries min..max inclusive. Raft deletes either a
// prefix (compaction) or a suffix (conflicting entries on a follower, or
// everything); a range strictly inside the log is refused.
func (s *Store) DeleteRange(min, max uint64) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if s.failed {
		return ErrFailed
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.first == 0 || min > max || max < s.first || min > s.last {
		return nil
	}
	switch {
	case min <= s.first && max >= s.last:
		if err := s.removeSegments(s.segs); err != nil {
			s.failed = true
			return err
		}
		s.segs, s.first, s.last = nil, 0, 0
		return nil
	case min <= s.first:
		return s.deletePrefix(max)
	case max >= s.last:
		return s.deleteSuffix(min)
	default:
		return fmt.Errorf("raftlog: delete %d..%d is inside the log %d..%d; only a prefix or suffix can be deleted",
			min, max, s.first, s.last)
	}
}

// deletePrefix removes entries up to max (< last): whole segments are
// removed from the front; entries of a partly covered segment stay on disk
// below the new first index until that segment goes. After a restart they
// are visible again, which is harmless: they are committed entries Raft
// had already snapshotted. Called holding writeMu and mu.
func (s *Store) deletePrefix(max uint64) error {
	n := 0
	for n < len(s.segs)-1 && s.segs[n].last() <= max {
		n++
	}
	if err := s.removeSegments(s.segs[:n]); err != nil {
		s.failed = true
		return err
	}
	s.segs = append([]*segment(nil), s.segs[n:]...)
	s.first = max + 1
	if s.segs[0].base > s.first {
		s.first = s.segs[0].base
	}
	return nil
}

// deleteSuffix removes entries from min (> first) to the end: later
// segments from the last backwards, then the containing segment is
// truncated. Called holding writeMu and mu.
func (s *Store) deleteSuffix(min uint64) error {
	k := sort.Search(len(s.segs), func(i int) bool { return s.segs[i].base > min }) - 1
	drop := s.segs[k+1:]
	seg := s.segs[k]
	if min == seg.base {
		// k > 0 here, since min > first.
		drop = s.segs[k:]
	}
	if err := s.removeSegments(drop); err != nil {
		s.failed = true
		return err
	}
	s.segs = s.segs[:len(s.segs)-len(drop)]
	if min > seg.base {
		size := seg.offs[min-seg.base]
		// The truncation also drops the preallocated zeros: no byte past
		// the cut survives, so the cut records can never be read again.
		s.allocMu.Lock()
		defer s.allocMu.Unlock()
		seg.alloc.Store(size)
		if err := seg.f.Truncate(size); err != nil {
			s.failed = true
			return fmt.Errorf("raftlog: truncate %s: %w", seg.path, err)
		}
		if err := seg.f.Sync(); err != nil {
			s.failed = true
			return fmt.Errorf("raftlog: sync %s: %w", seg.path, err)
		}
		seg.offs = seg.offs[:min-seg.base]
		seg.size = size
	}
	s.last = min - 1
	return nil
}

// removeSegments closes and removes segs, the last one first, then syncs
// the directory.
func (s *Store) removeSegments(segs []*segment) error {
	if len(segs) == 0 {
		return nil
	}
	s.allocMu.Lock()
	defer s.allocMu.Unlock()
	for i := len(segs) - 1; i >= 0; i-- {
		seg := segs[i]
		if seg.f != nil {
			_ = seg.f.Close()
			seg.f = nil
		}
		if err := os.Remove(seg.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("raftlog: remove %s: %w", seg.path, err)
		}
	}
	if err := fsutil.SyncDir(s.dir); err != nil {
		return fmt.Errorf("raftlog: %w", err)
	}
	return nil
}

// Close stops the preallocator and closes the files; later calls return
// ErrClosed.
func (s *Store) Close() error {
	s.stopOnce.Do(func() { close(s.stopCh) })
	s.wg.Wait()
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.closeFiles()
}

func (s *Store) closeFiles() error {
	var errs []error
	for _, seg := range s.segs {
		if seg.f != nil {
			if err := seg.f.Close(); err != nil {
				errs = append(errs, fmt.Errorf("raftlog: close %s: %w", seg.path, err))
			}
			seg.f = nil
		}
	}
	return errors.Join(errs...)
}
