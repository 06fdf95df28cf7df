package server

import (
	"context"
	"fmt"

	"github.com/hashicorp/go-memdb"

	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
)

// kvsApply validates a KV write and commits it through Raft. The reply is
// false only when a CAS check failed.
func (s *Server) kvsApply(_ context.Context, args *rpc.KVSRequest, reply *bool) error {
	switch args.Op {
	case rpc.KVSet, rpc.KVCAS, rpc.KVDelete, rpc.KVDeleteCAS:
		if args.Entry.Key == "" {
			return fmt.Errorf("missing key name for kv %s: %w", args.Op, rpc.ErrBadRequest)
		}
	case rpc.KVDeleteTree:
		// An empty prefix deletes every key.
	case rpc.KVLock, rpc.KVUnlock:
		if args.Entry.Key == "" {
			return fmt.Errorf("missing key name for kv %s: %w", args.Op, rpc.ErrBadRequest)
		}
		if args.Entry.Session == "" {
			return fmt.Errorf("missing session for kv %s: %w", args.Op, rpc.ErrBadRequest)
		}
	default:
		return fmt.Errorf("unknown kv operation %q: %w", args.Op, rpc.ErrBadRequest)
	}
	if n := uint64(len(args.Entry.Value)); n > s.cfg.KVMaxValueSize {
		return fmt.Errorf("value for key %q is %d bytes, over the limit of %d bytes: %w",
			args.Entry.Key, n, s.cfg.KVMaxValueSize, rpc.ErrTooLarge)
	}
	req := *args
	req.Token = "" // tokens must not end up in the Raft log
	req.Entry.LockIndex = 0
	if req.Op != rpc.KVLock && req.Op != rpc.KVUnlock {
		req.Entry.Session = ""
	}
	// Lock delay (session.go in state) is this server's wall-clock state,
	// so it is checked here, before proposing, as Consul does.
	if req.Op == rpc.KVLock && s.lockDelayed(req.Entry.Key) {
		*reply = false
		return nil
	}
	resp, err := s.raftApply(KVSRequestType, &req)
	if err != nil {
		return mapSessionError(err)
	}
	ok, isBool := resp.(bool)
	if !isBool {
		return fmt.Errorf("server: kv apply returned %T, want bool", resp)
	}
	*reply = ok
	return nil
}

func (s *Server) kvsGet(ctx context.Context, args *rpc.KeyRequest, reply *rpc.IndexedKVEntries) error {
	return s.blockingQuery(ctx, &args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.Store) (uint64, error) {
		idx, e, err := st.KVGet(ws, args.Key)
		if err != nil {
			return 0, err
		}
		reply.Entries = nil
		if e != nil {
			reply.Entries = []*state.KVEntry{e}
		}
		return idx, nil
	})
}

func (s *Server) kvsList(ctx context.Context, args *rpc.KeyRequest, reply *rpc.IndexedKVEntries) error {
	return s.blockingQuery(ctx, &args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.Store) (uint64, error) {
		idx, list, err := st.KVList(ws, args.Key)
		if err != nil {
			return 0, err
		}
		reply.Entries = list
		return idx, nil
	})
}

func (s *Server) kvsListKeys(ctx context.Context, args *rpc.KeyListRequest, reply *rpc.IndexedKeyList) error {
	return s.blockingQuery(ctx, &args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.Store) (uint64, error) {
		idx, keys, err := st.KVKeys(ws, args.Prefix, args.Separator)
		if err != nil {
			return 0, err
		}
		reply.Keys = keys
		return idx, nil
	})
}
