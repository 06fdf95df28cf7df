package dns

import (
	"context"
	"errors"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
)

// The lookup cache keeps the catalog reads behind DNS answers in memory and
// fresh with blocking queries, so that a query costs a map lookup instead of
// an RPC into the state store (Consul's dns_config.use_cache idea, without
// its max-age staleness: an entry is refreshed as soon as the server's
// blocking query wakes).
//
// The first lookup of a key reads it (stale when allow_stale) and starts a
// watcher goroutine that re-reads it with ?index blocking queries and swaps
// the new result in. A watcher stops when its entry has not been used for
// IdleTimeout (checked each time its blocking query returns, so at most
// IdleTimeout plus one blocking wait), when its entry is evicted to keep at
// most MaxEntries, when a read fails (the next lookup reads directly and
// reports the error), and on Shutdown. Results are never mutated once
// stored: readers shuffle their own copies.
//
// Lock order: lookupCache.mu only; entries use atomics and the ready channel.

// cacheKind says which read fills an entry.
type cacheKind uint8

const (
	cacheService cacheKind = iota + 1 // Health.ServiceNodes
	cacheNode                         // Catalog.NodeServices
)

// cacheKey names one cached read; name is lowercase, dc "" = local.
type cacheKey struct {
	kind cacheKind
	dc   string
	name string
}

// cacheResult is one read, as served to lookups. For services, insts are
// the instances left after the health filter (tags are filtered per query);
// for nodes, node is nil when the node does not exist.
type cacheResult struct {
	insts []*state.CheckServiceNode
	node  *state.NodeServices

	// Records built from insts on first use (answers.go).
	srv   atomic.Pointer[srvSet]
	addrs [3]atomic.Pointer[[]addrItem] // A, AAAA, ANY
}

type cacheEntry struct {
	key    cacheKey
	ready  chan struct{} // closed once the first read finished
	err    error         // the first read's error; written before ready closes
	cur    atomic.Pointer[cacheResult]
	used   atomic.Int64    // unix nanoseconds of the last lookup, coarse
	ctx    context.Context // the watcher's; cancelled on eviction and removal
	cancel context.CancelFunc
}

// touch records a use, writing at most once per second to keep the cache
// line quiet under load.
func (e *cacheEntry) touch(now int64) {
	if now-e.used.Load() > int64(time.Second) {
		e.used.Store(now)
	}
}

// Cache defaults.
const (
	DefaultCacheMaxEntries  = 4096
	DefaultCacheIdleTimeout = 2 * time.Minute
	// cacheMaxWait bounds one blocking query of a watcher, so that idle
	// entries and a growing LastContact are noticed.
	cacheMaxWait = time.Minute
	// cacheMinBackoff and cacheMaxBackoff pace a watcher whose blocking
	// query returns without a new index (a timeout, or a caller that does
	// not block), so it never spins.
	cacheMinBackoff = 10 * time.Millisecond
	cacheMaxBackoff = time.Second
)

type lookupCache struct {
	s       *Server
	max     int
	idle    time.Duration
	maxWait time.Duration

	mu      sync.RWMutex // guards entries and closed
	entries map[cacheKey]*cacheEntry
	closed  bool
	wg      sync.WaitGroup // watchers
}

func newLookupCache(s *Server) *lookupCache {
	c := &lookupCache{
		s:       s,
		max:     s.cfg.CacheMaxEntries,
		idle:    s.cfg.CacheIdleTimeout,
		maxWait: min(cacheMaxWait, s.cfg.CacheIdleTimeout),
		entries: make(map[cacheKey]*cacheEntry),
	}
	if s.cfg.AllowStale && s.cfg.MaxStale < c.maxWait {
		// A follower losing its leader is noticed within max_stale.
		c.maxWait = s.cfg.MaxStale
	}
	return c
}

// get returns the result for key from memory. The first lookup of a key
// reads it in the caller's goroutine (concurrent lookups of the same key
// wait for that read) and then starts the entry's watcher. After close it
// reads directly.
func (c *lookupCache) get(ctx context.Context, key cacheKey) (*cacheResult, error) {
	now := time.Now().UnixNano()
	c.mu.RLock()
	e := c.entries[key]
	c.mu.RUnlock()
	if e == nil {
		var created, direct bool
		e, created, direct = c.insert(key, now)
		switch {
		case direct:
			r, _, err := c.fetch(ctx, key, 0, 0)
			return r, err
		case created:
			return c.fill(ctx, e)
		}
	}
	e.touch(now)
	select {
	case <-e.ready:
	default:
		select {
		case <-e.ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if r := e.cur.Load(); r != nil {
		return r, nil
	}
	return nil, e.err
}

// errFillAborted is what waiters see when the first read of an entry
// panicked (the panic itself goes up the reading goroutine).
var errFillAborted = errors.New("dns: cache: first read aborted")

// fill makes the first read of a new entry, publishes it and starts the
// watcher; on failure the entry goes and its waiters get the error.
func (c *lookupCache) fill(ctx context.Context, e *cacheEntry) (*cacheResult, error) {
	ok := false
	defer func() {
		if !ok {
			if e.err == nil {
				e.err = errFillAborted
			}
			close(e.ready)
			c.remove(e)
		}
	}()
	r, meta, err := c.fetch(ctx, e.key, 0, 0)
	if err != nil {
		e.err = err
		return nil, err
	}
	e.cur.Store(r)
	close(e.ready)
	ok = true

	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed && c.entries[e.key] == e {
		c.wg.Add(1)
		go c.watch(e, meta.Index)
	}
	return r, nil
}

// insert adds a pending entry for key, or finds the one another lookup
// added. direct is true when the cache is closed.
func (c *lookupCache) insert(key cacheKey, now int64) (e *cacheEntry, created, direct bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, false, true
	}
	if e := c.entries[key]; e != nil {
		return e, false, false
	}
	if len(c.entries) >= c.max {
		c.evictOldestLocked()
	}
	e = &cacheEntry{key: key, ready: make(chan struct{})}
	e.ctx, e.cancel = context.WithCancel(c.s.ctx)
	e.used.Store(now)
	c.entries[key] = e
	return e, true, false
}

// evictOldestLocked drops the least recently used entry; c.mu is held.
// Inserts at capacity are misses that pay for an RPC anyway, so a scan is
// cheap beside it.
func (c *lookupCache) evictOldestLocked() {
	var oldest *cacheEntry
	for _, e := range c.entries {
		if oldest == nil || e.used.Load() < oldest.used.Load() {
			oldest = e
		}
	}
	if oldest != nil {
		delete(c.entries, oldest.key)
		oldest.cancel()
	}
}

// remove drops e if it is still the entry of its key.
func (c *lookupCache) remove(e *cacheEntry) {
	c.mu.Lock()
	if c.entries[e.key] == e {
		delete(c.entries, e.key)
	}
	c.mu.Unlock()
	e.cancel()
}

// len is the number of entries (for tests).
func (c *lookupCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}

// close stops new entries; the watchers end with the server's context.
func (c *lookupCache) close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
}

// wait blocks until every watcher has returned, or ctx ends.
func (c *lookupCache) wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		c.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// watch is the goroutine of one entry: blocking reads from index idx until
// the entry is idle, evicted, failing or the server shuts down.
func (c *lookupCache) watch(e *cacheEntry, idx uint64) {
	defer c.wg.Done()
	defer c.remove(e)
	defer func() {
		if r := recover(); r != nil {
			c.s.cfg.Logger.Error("dns cache watcher panic", "panic", r, "stack", string(debug.Stack()))
		}
	}()
	ctx := e.ctx
	backoff := time.Duration(0)
	for {
		if time.Since(time.Unix(0, e.used.Load())) > c.idle {
			return
		}
		r, meta, err := c.fetch(ctx, e.key, idx, c.maxWait)
		if err != nil {
			if ctx.Err() == nil {
				c.s.cfg.Logger.Debug("dns cache refresh failed", "name", e.key.name, "dc", e.key.dc, "error", err)
			}
			return
		}
		e.cur.Store(r)
		switch {
		case meta.Index > idx:
			idx, backoff = meta.Index, 0
			continue
		case meta.Index < idx:
			// The index went backwards (a snapshot restore): start over.
			idx = 0
		}
		// No progress: a timeout, or a caller that does not block.
		backoff = min(max(2*backoff, cacheMinBackoff), cacheMaxBackoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// fetch reads key once, blocking while the result's index is minIndex
// (0 = do not block), honouring allow_stale and max_stale: a stale answer
// older than MaxStale is re-read from the leader without blocking.
func (c *lookupCache) fetch(ctx context.Context, key cacheKey, minIndex uint64, wait time.Duration) (*cacheResult, rpc.QueryMeta, error) {
	cfg := &c.s.cfg
	opts := rpc.QueryOptions{Datacenter: key.dc, AllowStale: cfg.AllowStale, MinQueryIndex: minIndex, MaxQueryTime: wait}
	for {
		var (
			r    *cacheResult
			meta rpc.QueryMeta
			err  error
		)
		switch key.kind {
		case cacheService:
			args := rpc.ServiceSpecificRequest{ServiceName: key.name, QueryOptions: opts}
			var reply rpc.IndexedCheckServiceNodes
			if err = cfg.Caller.RPC(ctx, rpc.MethodHealthServiceNodes, &args, &reply); err == nil {
				r, meta = &cacheResult{insts: c.s.healthy(reply.Nodes)}, reply.QueryMeta
			}
		default:
			args := rpc.NodeSpecificRequest{Node: key.name, QueryOptions: opts}
			var reply rpc.IndexedNodeServices
			if err = cfg.Caller.RPC(ctx, rpc.MethodCatalogNodeServices, &args, &reply); err == nil {
				r, meta = &cacheResult{node: reply.NodeServices}, reply.QueryMeta
			}
		}
		if err != nil {
			return nil, meta, err
		}
		if !opts.AllowStale || meta.LastContact <= cfg.MaxStale {
			return r, meta, nil
		}
		opts.AllowStale, opts.MinQueryIndex, opts.MaxQueryTime = false, 0, 0
	}
}
