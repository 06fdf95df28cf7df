package server

import (
	"context"
	"fmt"

	"github.com/hashicorp/go-memdb"

	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
)

// txnApply applies a transaction in one Raft entry: every operation or
// none. Operations that can be refused before proposing (a value over the
// limit, a lock within its lock delay) are reported without writing.
func (s *Server) txnApply(_ context.Context, args *rpc.TxnRequest, reply *rpc.TxnResponse) error {
	if len(args.Ops) > rpc.MaxTxnOps {
		return fmt.Errorf("Transaction contains too many operations (%d > %d): %w", //lint:ignore ST1005 Consul's text
			len(args.Ops), rpc.MaxTxnOps, rpc.ErrTooLarge)
	}
	if errs := s.txnPreCheck(args.Ops); len(errs) > 0 {
		*reply = rpc.TxnResponse{Errors: errs}
		return nil
	}
	req := rpc.TxnRequest{Ops: args.Ops}
	resp, err := s.raftApply(TxnRequestType, &req)
	if err != nil {
		return err
	}
	out, ok := resp.(*rpc.TxnResponse)
	if !ok {
		return fmt.Errorf("server: txn apply returned %T, want *rpc.TxnResponse", resp)
	}
	*reply = *out
	return nil
}

// txnPreCheck refuses what the FSM cannot judge: value sizes and lock
// delays (per-server wall-clock state, checked before proposing as Consul
// does).
func (s *Server) txnPreCheck(ops []*state.TxnOp) []*state.TxnError {
	var errs []*state.TxnError
	for i, op := range ops {
		if op == nil || op.KV == nil {
			continue
		}
		e := &op.KV.Entry
		if n := uint64(len(e.Value)); n > s.cfg.KVMaxValueSize {
			errs = append(errs, &state.TxnError{OpIndex: i,
				What: fmt.Sprintf("value for key %q is too large (%d > %d bytes)", e.Key, n, s.cfg.KVMaxValueSize)})
			continue
		}
		if op.KV.Verb == state.TxnLock && s.lockDelayed(e.Key) {
			errs = append(errs, &state.TxnError{OpIndex: i,
				What: fmt.Sprintf("failed to lock key %q due to lock delay", e.Key)})
		}
	}
	return errs
}

// txnRead runs a read-only transaction under the request's consistency
// mode. It never blocks.
func (s *Server) txnRead(ctx context.Context, args *rpc.TxnReadRequest, reply *rpc.TxnReadResponse) error {
	if len(args.Ops) > rpc.MaxTxnOps {
		return fmt.Errorf("Transaction contains too many operations (%d > %d): %w", //lint:ignore ST1005 Consul's text
			len(args.Ops), rpc.MaxTxnOps, rpc.ErrTooLarge)
	}
	if !state.TxnReadOnly(args.Ops) {
		return fmt.Errorf("transaction has write operations, use %s: %w", rpc.MethodTxnApply, rpc.ErrBadRequest)
	}
	opts := args.QueryOptions
	opts.MinQueryIndex = 0
	return s.blockingQuery(ctx, &opts, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.Store) (uint64, error) {
		idx, results, errs := st.TxnRead(ws, args.Ops)
		reply.Results, reply.Errors = results, errs
		return idx, nil
	})
}

func (f *fsm) applyTxn(idx uint64, body []byte) any {
	var req rpc.TxnRequest
	if err := decodeCommand(body, &req); err != nil {
		return fmt.Errorf("server: decode txn command: %w", err)
	}
	results, errs := f.State().Txn(idx, req.Ops)
	return &rpc.TxnResponse{Results: results, Errors: errs}
}
