package server

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/hashicorp/go-bexpr"
	"github.com/hashicorp/go-memdb"
	"github.com/hashicorp/raft"

	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
)

// handler is one RPC endpoint with untyped arguments.
type handler func(ctx context.Context, args, reply any) error

// typed adapts a typed endpoint to a handler, checking the argument types.
// A nil args means the zero request.
func typed[A, R any](method string, f func(ctx context.Context, args *A, reply *R) error) handler {
	return func(ctx context.Context, args, reply any) error {
		a, ok := args.(*A)
		if !ok || a == nil {
			if args != nil && !ok {
				return fmt.Errorf("server: %s: args are %T, want %T: %w", method, args, a, rpc.ErrBadRequest)
			}
			a = new(A)
		}
		r, ok := reply.(*R)
		if !ok || r == nil {
			return fmt.Errorf("server: %s: reply is %T, want non-nil %T: %w", method, reply, r, rpc.ErrBadRequest)
		}
		return f(ctx, a, r)
	}
}

// endpointTable is the one table of every RPC method this server answers.
func (s *Server) endpointTable() map[string]handler {
	return map[string]handler{
		rpc.MethodKVSApply:    typed(rpc.MethodKVSApply, s.kvsApply),
		rpc.MethodKVSGet:      typed(rpc.MethodKVSGet, s.kvsGet),
		rpc.MethodKVSList:     typed(rpc.MethodKVSList, s.kvsList),
		rpc.MethodKVSListKeys: typed(rpc.MethodKVSListKeys, s.kvsListKeys),

		rpc.MethodCatalogRegister:        typed(rpc.MethodCatalogRegister, s.catalogRegister),
		rpc.MethodCatalogDeregister:      typed(rpc.MethodCatalogDeregister, s.catalogDeregister),
		rpc.MethodCatalogListDatacenters: typed(rpc.MethodCatalogListDatacenters, s.catalogListDatacenters),
		rpc.MethodCatalogListNodes:       typed(rpc.MethodCatalogListNodes, s.catalogListNodes),
		rpc.MethodCatalogListServices:    typed(rpc.MethodCatalogListServices, s.catalogListServices),
		rpc.MethodCatalogServiceNodes:    typed(rpc.MethodCatalogServiceNodes, s.catalogServiceNodes),
		rpc.MethodCatalogNodeServices:    typed(rpc.MethodCatalogNodeServices, s.catalogNodeServices),
		rpc.MethodCatalogNodeServiceList: typed(rpc.MethodCatalogNodeServiceList, s.catalogNodeServiceList),

		rpc.MethodHealthNodeChecks:    typed(rpc.MethodHealthNodeChecks, s.healthNodeChecks),
		rpc.MethodHealthServiceChecks: typed(rpc.MethodHealthServiceChecks, s.healthServiceChecks),
		rpc.MethodHealthChecksInState: typed(rpc.MethodHealthChecksInState, s.healthChecksInState),
		rpc.MethodHealthServiceNodes:  typed(rpc.MethodHealthServiceNodes, s.healthServiceNodes),

		rpc.MethodSessionApply:        typed(rpc.MethodSessionApply, s.sessionApply),
		rpc.MethodSessionGet:          typed(rpc.MethodSessionGet, s.sessionGet),
		rpc.MethodSessionList:         typed(rpc.MethodSessionList, s.sessionList),
		rpc.MethodSessionNodeSessions: typed(rpc.MethodSessionNodeSessions, s.sessionNodeSessions),
		rpc.MethodSessionRenew:        typed(rpc.MethodSessionRenew, s.sessionRenew),

		rpc.MethodTxnApply: typed(rpc.MethodTxnApply, s.txnApply),
		rpc.MethodTxnRead:  typed(rpc.MethodTxnRead, s.txnRead),

		rpc.MethodStatusLeader: typed(rpc.MethodStatusLeader, s.statusLeader),
		rpc.MethodStatusPeers:  typed(rpc.MethodStatusPeers, s.statusPeers),

		rpc.MethodOperatorRaftGetConfiguration:      typed(rpc.MethodOperatorRaftGetConfiguration, s.operatorRaftGetConfiguration),
		rpc.MethodOperatorRaftRemovePeerByAddress:   typed(rpc.MethodOperatorRaftRemovePeerByAddress, s.operatorRaftRemovePeerByAddress),
		rpc.MethodOperatorRaftRemovePeerByID:        typed(rpc.MethodOperatorRaftRemovePeerByID, s.operatorRaftRemovePeerByID),
		rpc.MethodOperatorTransferLeader:            typed(rpc.MethodOperatorTransferLeader, s.operatorTransferLeader),
		rpc.MethodOperatorAutopilotGetConfiguration: typed(rpc.MethodOperatorAutopilotGetConfiguration, s.operatorAutopilotGetConfiguration),
		rpc.MethodOperatorAutopilotSetConfiguration: typed(rpc.MethodOperatorAutopilotSetConfiguration, s.operatorAutopilotSetConfiguration),
		rpc.MethodOperatorServerHealth:              typed(rpc.MethodOperatorServerHealth, s.operatorServerHealth),
		rpc.MethodOperatorAutopilotState:            typed(rpc.MethodOperatorAutopilotState, s.operatorAutopilotState),
		rpc.MethodOperatorRaftStats:                 typed(rpc.MethodOperatorRaftStats, s.raftStats),
	}
}

// dispatch serves one request: in-process when this server may answer it,
// else on the leader (forward.go).
func (s *Server) dispatch(ctx context.Context, method string, h handler, args, reply any) error {
	if !needsLeader(method, args) {
		return h(ctx, args, reply)
	}
	return s.leaderRPC(ctx, method, h, args, reply)
}

// Blocking query limits.
const (
	defaultMaxQueryTime = 5 * time.Minute
	maxMaxQueryTime     = 10 * time.Minute
)

// queryFn runs one read against st, adding what it read to ws, and returns
// the index of the result.
type queryFn func(ws memdb.WatchSet, st *state.Store) (uint64, error)

// blockingQuery runs fn under the consistency rules of opts and fills meta.
// With MinQueryIndex > 0 it re-runs fn each time its watch set fires until
// the index passes MinQueryIndex or MaxQueryTime (plus up to 1/16 jitter,
// so many clients do not return at once) has passed. It never polls.
func (s *Server) blockingQuery(ctx context.Context, opts *rpc.QueryOptions, meta *rpc.QueryMeta, fn queryFn) error {
	qctx := ctx
	if opts.MinQueryIndex > 0 {
		wait := opts.MaxQueryTime
		if wait <= 0 {
			wait = defaultMaxQueryTime
		}
		wait = min(wait, maxMaxQueryTime)
		wait += rand.N(wait/16 + 1)
		var cancel context.CancelFunc
		qctx, cancel = context.WithTimeout(ctx, wait)
		defer cancel()
	}
	restored := false // the store was replaced by a snapshot restore
	for {
		if err := s.checkConsistency(opts); err != nil {
			return err
		}
		st := s.fsm.State()
		ws := memdb.NewWatchSet()
		ws.Add(st.AbandonCh())
		ws.Add(s.shutdownCh)
		idx, err := fn(ws, st)
		s.setQueryMeta(opts, meta, idx)
		if err != nil {
			return err
		}
		if opts.MinQueryIndex == 0 || meta.Index > opts.MinQueryIndex || restored {
			return nil
		}
		if err := ws.WatchCtx(qctx); err != nil {
			if cerr := ctx.Err(); cerr != nil {
				return fmt.Errorf("server: blocking query: %w", cerr)
			}
			return nil // MaxQueryTime passed: return the unchanged result
		}
		select {
		case <-s.shutdownCh:
			return nil
		case <-st.AbandonCh():
			// After a restore, answer from the new store even when its
			// index is not above MinQueryIndex (restored entries keep
			// their own indexes), as Consul does; clients start over.
			restored = true
		default:
		}
	}
}

// checkConsistency enforces the read mode: default reads need this server
// to be the leader, consistent reads also confirm leadership with a quorum,
// stale reads run anywhere.
func (s *Server) checkConsistency(opts *rpc.QueryOptions) error {
	if opts.AllowStale && !opts.RequireConsistent {
		return nil
	}
	r := s.raftOrNil()
	if r == nil || r.State() != raft.Leader {
		return rpc.ErrNoLeader
	}
	// A new leader answers only after its barrier: until then its FSM may
	// miss entries committed by earlier terms (or, after a restart, not yet
	// replayed from the log), and a read could go back in time.
	if !s.readyForReads.Load() {
		return fmt.Errorf("server: not ready to serve consistent reads: %w", rpc.ErrNoLeader)
	}
	if opts.RequireConsistent {
		if err := r.VerifyLeader().Error(); err != nil {
			return fmt.Errorf("server: verify leadership: %v: %w", err, rpc.ErrNoLeader)
		}
	}
	return nil
}

// setQueryMeta fills the metadata every read returns. The index is at least
// 1: clients treat 0 as "do not block".
func (s *Server) setQueryMeta(opts *rpc.QueryOptions, meta *rpc.QueryMeta, idx uint64) {
	meta.Index = max(idx, 1)
	switch {
	case opts.RequireConsistent:
		meta.ConsistencyLevel = rpc.ConsistencyConsistent
	case opts.AllowStale:
		meta.ConsistencyLevel = rpc.ConsistencyStale
	default:
		meta.ConsistencyLevel = rpc.ConsistencyLeader
	}
	r := s.raftOrNil()
	if r == nil {
		return
	}
	leaderAddr, _ := r.LeaderWithID()
	meta.KnownLeader = leaderAddr != ""
	if r.State() == raft.Leader {
		meta.LastContact = 0
		return
	}
	if last := r.LastContact(); !last.IsZero() {
		meta.LastContact = time.Since(last)
	}
}

// newFilter compiles a ?filter= expression (nil when empty).
func newFilter(expr string) (*bexpr.Filter, error) {
	f, err := bexpr.CreateFilter(expr)
	if err != nil {
		return nil, fmt.Errorf("invalid filter %q: %v: %w", expr, err, rpc.ErrBadRequest)
	}
	return f, nil
}

// applyFilter filters a slice with f (a nil filter keeps everything).
func applyFilter[T any](f *bexpr.Filter, list []T) ([]T, error) {
	if f == nil || len(list) == 0 {
		return list, nil
	}
	out, err := f.Execute(list)
	if err != nil {
		return nil, fmt.Errorf("filter: %v: %w", err, rpc.ErrBadRequest)
	}
	return out.([]T), nil
}
