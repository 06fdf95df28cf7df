package server

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"

	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
)

// Coalescing of identical blocking reads.
//
// Thousands of watchers of one key send the same blocking query. Without
// coalescing, each holds its own forwarded RPC (on a follower) or its own
// memdb watch (on the leader), and every write wakes, re-runs, re-encodes
// and answers each of them one by one. The coalescer runs one call per
// distinct request and hands every identical request that arrives while it
// is in flight a private copy of its result.
//
// Identical means: same method, same reply type and equal args, every
// QueryOptions field included (index, wait, token, consistency, filter).
// Args made only of strings, integers and booleans (rpc.KeyRequest and most
// other reads) are compared field by field with ==; any other args by their
// msgpack encoding, the one the RPC codec uses on the wire. Only blocking
// reads (MinQueryIndex > 0) are coalesced, never a write: a shared read is
// answered with a result whose index passed MinQueryIndex, which is what
// each of its waiters asked for.
//
// A request that joins a call late may get a result read shortly before it
// arrived: between the moment the shared query produced its answer and the
// moment the call completes (microseconds on the leader, about one network
// round trip for a call forwarded by a follower). That result still has an
// index above the request's MinQueryIndex, which is all a blocking query
// promises; the client's next query, with the new index, sees later writes.
// ?consistent reads promise more (linearizable), so they are never
// coalesced.
//
// Only requests that start at this agent (its HTTP API and DNS) are
// coalesced; Server.RPC runs requests that arrived over the network from
// another agent on their own. A follower's shared call is forwarded to the
// leader, and the leader may in turn forward it on after a leadership
// change: if the receiving server could join it to a shared call of its
// own, two shared calls could wait on each other until the query's wait
// ran out. The leader still sees one request per follower per key.
//
// Lifetime: the shared call runs on its own goroutine under a context that
// keeps the first caller's values but not its cancellation. It ends when
// every waiter has gone (each waiter returns at once when its own context
// ends) or when the server shuts down.

// coalescedMethods are the read methods whose blocking queries may be
// shared. A method not listed here is always run on its own.
var coalescedMethods = map[string]bool{
	rpc.MethodKVSGet:                 true,
	rpc.MethodKVSList:                true,
	rpc.MethodKVSListKeys:            true,
	rpc.MethodCatalogListNodes:       true,
	rpc.MethodCatalogListServices:    true,
	rpc.MethodCatalogServiceNodes:    true,
	rpc.MethodCatalogNodeServices:    true,
	rpc.MethodCatalogNodeServiceList: true,
	rpc.MethodHealthNodeChecks:       true,
	rpc.MethodHealthServiceChecks:    true,
	rpc.MethodHealthChecksInState:    true,
	rpc.MethodHealthServiceNodes:     true,
	rpc.MethodSessionGet:             true,
	rpc.MethodSessionList:            true,
	rpc.MethodSessionNodeSessions:    true,
}

// coalescible reports whether a request may share a call with identical
// ones: a blocking query of a read method.
func coalescible(method string, args any) bool {
	if !coalescedMethods[method] {
		return false
	}
	if _, write := args.(rpc.WriteRequestGetter); write {
		return false
	}
	q, ok := args.(rpc.QueryRequest)
	if !ok || reflect.ValueOf(q).IsNil() {
		return false
	}
	o := q.GetQueryOptions()
	// ?consistent promises a linearizable read: a request that joined a
	// call after its query had produced its answer could miss a write
	// acknowledged in between, so consistent reads always run their own.
	return o.MinQueryIndex > 0 && !o.RequireConsistent
}

// callKey identifies identical requests.
type callKey struct {
	method string
	reply  reflect.Type
	// args is the args struct itself when its type is plain (see
	// plainArgs): then == is field-by-field equality. Otherwise it is the
	// msgpack encoding of the args, as a string.
	args any
}

// plainTypes caches plainType per args type (reflect.Type -> bool).
var plainTypes sync.Map

// plainArgs reports whether values of t (an args struct type) can serve as
// their own key: t is made only of strings, booleans, integers, structs
// and arrays of those, so that == on two values is true exactly when every
// field, exported or not, is equal. Pointers, slices, maps, interfaces,
// floats (NaN, -0) and the rest are not plain; such args are keyed by
// their msgpack encoding.
func plainArgs(t reflect.Type) bool {
	if v, ok := plainTypes.Load(t); ok {
		return v.(bool)
	}
	plain := plainType(t)
	plainTypes.Store(t, plain)
	return plain
}

func plainType(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Bool, reflect.String,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	case reflect.Array:
		return plainType(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if !plainType(t.Field(i).Type) {
				return false
			}
		}
		return true
	default:
		return false
	}
}

// argsKey returns the key part for args (a non-nil pointer to a struct):
// a copy of the struct itself when its type is plain, else its msgpack
// encoding as a string.
func argsKey(args any) (any, error) {
	av := reflect.ValueOf(args)
	if av.Kind() == reflect.Pointer && av.Elem().Kind() == reflect.Struct && plainArgs(av.Type().Elem()) {
		return av.Elem().Interface(), nil // a copy: the caller may change args
	}
	enc, err := rpc.Marshal(args)
	if err != nil {
		return nil, err
	}
	return string(enc), nil
}

// ownArgs returns a private copy of the args that key (from argsKey) was
// made from, for a shared call to own.
func ownArgs(args, key any) (any, error) {
	own := reflect.New(reflect.TypeOf(args).Elem())
	if enc, ok := key.(string); ok {
		if err := rpc.Unmarshal([]byte(enc), own.Interface()); err != nil {
			return nil, err
		}
		return own.Interface(), nil
	}
	own.Elem().Set(reflect.ValueOf(key))
	return own.Interface(), nil
}

// sharedCall is one in-flight call and the waiters sharing it.
type sharedCall struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when reply/err are set

	// Guarded by coalescer.mu until done is closed.
	waiters int

	// Set before done is closed, read-only after.
	reply any
	err   error
	// owners is the number of waiters present when the call finished. With
	// one, that waiter takes reply itself; with more, each gets its own
	// copy (copyReply, or decoded from encoded).
	owners int

	encodeOnce sync.Once
	encoded    []byte
	encodeErr  error
}

// runFunc runs the request for real into reply under ctx.
type runFunc func(ctx context.Context, args, reply any) error

// coalescer shares in-flight identical blocking reads. It is safe for
// concurrent use.
type coalescer struct {
	base   context.Context // cancelled on shutdown
	cancel context.CancelFunc
	wg     sync.WaitGroup // shared calls' goroutines

	mu      sync.Mutex
	stopped bool
	calls   map[callKey]*sharedCall

	// runs counts the underlying calls started (a test hook).
	runs atomic.Uint64
}

func newCoalescer() *coalescer {
	ctx, cancel := context.WithCancel(context.Background())
	return &coalescer{base: ctx, cancel: cancel, calls: make(map[callKey]*sharedCall)}
}

// stop cancels every shared call, waits for their goroutines and makes
// later calls run on their callers' goroutines. It is idempotent.
func (c *coalescer) stop() {
	c.mu.Lock()
	c.stopped = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
}

// waiting returns the number of waiters on in-flight shared calls (a test
// hook).
func (c *coalescer) waiting() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, call := range c.calls {
		n += call.waiters
	}
	return n
}

// do answers the request through a shared call: it joins an identical
// call in flight or starts one, then waits for its result or for ctx.
// When args cannot be encoded or the coalescer is stopped, it runs the
// request directly.
func (c *coalescer) do(ctx context.Context, method string, args, reply any, run runFunc) error {
	rv := reflect.ValueOf(reply)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return run(ctx, args, reply)
	}
	akey, err := argsKey(args)
	if err != nil {
		return run(ctx, args, reply)
	}
	key := callKey{method: method, reply: rv.Type(), args: akey}

	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return run(ctx, args, reply)
	}
	call, ok := c.calls[key]
	if ok {
		call.waiters++
		c.mu.Unlock()
	} else {
		// The shared call owns its own copy of the args: the first caller
		// may leave and reuse its own.
		own, err := ownArgs(args, akey)
		if err != nil {
			c.mu.Unlock()
			return run(ctx, args, reply)
		}
		cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		stopOnShutdown := context.AfterFunc(c.base, cancel)
		call = &sharedCall{
			cancel:  cancel,
			done:    make(chan struct{}),
			waiters: 1,
			reply:   reflect.New(rv.Type().Elem()).Interface(),
		}
		c.calls[key] = call
		c.runs.Add(1)
		c.wg.Add(1)
		c.mu.Unlock()
		go func() {
			defer c.wg.Done()
			defer stopOnShutdown()
			defer cancel()
			err := run(cctx, own, call.reply)
			c.mu.Lock()
			if c.calls[key] == call {
				delete(c.calls, key)
			}
			call.err, call.owners = err, call.waiters
			close(call.done)
			c.mu.Unlock()
		}()
	}

	select {
	case <-call.done:
		return call.deliver(reply)
	case <-ctx.Done():
		c.mu.Lock()
		select {
		case <-call.done:
		default:
			call.waiters--
			if call.waiters == 0 {
				// Nobody is left: stop the call and let a new request
				// start afresh rather than join a dying one.
				if c.calls[key] == call {
					delete(c.calls, key)
				}
				call.cancel()
			}
		}
		c.mu.Unlock()
		return fmt.Errorf("server: %s: %w", method, ctx.Err())
	}
}

// deliver gives one waiter its result: the shared error, or its own copy
// of the reply: copied field by field for the KV replies (copyReply),
// through a msgpack round trip for the others.
func (call *sharedCall) deliver(reply any) error {
	if call.err != nil {
		return call.err
	}
	dst := reflect.ValueOf(reply).Elem()
	if call.owners == 1 {
		// The only waiter: nobody else reads call.reply, so it can be
		// handed over as it is.
		dst.Set(reflect.ValueOf(call.reply).Elem())
		return nil
	}
	if copyReply(call.reply, reply) {
		return nil
	}
	call.encodeOnce.Do(func() {
		call.encoded, call.encodeErr = rpc.Marshal(call.reply)
	})
	if call.encodeErr != nil {
		return fmt.Errorf("server: copy shared reply: %w", call.encodeErr)
	}
	dst.SetZero()
	if err := rpc.Unmarshal(call.encoded, reply); err != nil {
		return fmt.Errorf("server: copy shared reply: %w", err)
	}
	return nil
}

// copyReply deep-copies src into dst when both are one of the KV reply
// types (the watch fan-out of issue 7 wakes thousands of KV waiters per
// write; a msgpack round trip per waiter was most of the coalescer's cost).
// The copy keeps nil slices nil and empty ones empty, as the reply the
// only waiter of a call receives. It reports false for other types.
func copyReply(src, dst any) bool {
	switch s := src.(type) {
	case *rpc.IndexedKVEntries:
		d, ok := dst.(*rpc.IndexedKVEntries)
		if !ok {
			return false
		}
		*d = rpc.IndexedKVEntries{QueryMeta: s.QueryMeta, Entries: state.CopyKVEntries(s.Entries)}
		return true
	case *rpc.IndexedKeyList:
		d, ok := dst.(*rpc.IndexedKeyList)
		if !ok {
			return false
		}
		*d = rpc.IndexedKeyList{QueryMeta: s.QueryMeta}
		if s.Keys != nil {
			d.Keys = append(make([]string, 0, len(s.Keys)), s.Keys...)
		}
		return true
	default:
		return false
	}
}
