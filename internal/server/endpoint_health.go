package server

import (
	"context"
	"fmt"

	"github.com/hashicorp/go-memdb"

	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
)

func (s *Server) healthNodeChecks(ctx context.Context, args *rpc.NodeSpecificRequest, reply *rpc.IndexedHealthChecks) error {
	if args.Node == "" {
		return fmt.Errorf("must provide node: %w", rpc.ErrBadRequest)
	}
	return s.checksQuery(ctx, &args.QueryOptions, reply, func(ws memdb.WatchSet, st *state.Store) (uint64, []*state.HealthCheck, error) {
		return st.ChecksForNode(ws, args.Node)
	})
}

func (s *Server) healthServiceChecks(ctx context.Context, args *rpc.ServiceSpecificRequest, reply *rpc.IndexedHealthChecks) error {
	if args.ServiceName == "" {
		return fmt.Errorf("must provide service name: %w", rpc.ErrBadRequest)
	}
	return s.checksQuery(ctx, &args.QueryOptions, reply, func(ws memdb.WatchSet, st *state.Store) (uint64, []*state.HealthCheck, error) {
		return st.ChecksForService(ws, args.ServiceName, args.NodeMetaFilters)
	})
}

func (s *Server) healthChecksInState(ctx context.Context, args *rpc.ChecksInStateRequest, reply *rpc.IndexedHealthChecks) error {
	if args.State != state.HealthAny && !validStatus(args.State) {
		return fmt.Errorf("bad check state %q (want any, passing, warning or critical): %w", args.State, rpc.ErrBadRequest)
	}
	return s.checksQuery(ctx, &args.QueryOptions, reply, func(ws memdb.WatchSet, st *state.Store) (uint64, []*state.HealthCheck, error) {
		return st.ChecksInState(ws, args.State, args.NodeMetaFilters)
	})
}

// checksQuery runs a blocking, filtered read of a check list.
func (s *Server) checksQuery(ctx context.Context, opts *rpc.QueryOptions, reply *rpc.IndexedHealthChecks,
	read func(memdb.WatchSet, *state.Store) (uint64, []*state.HealthCheck, error)) error {
	return listQuery(ctx, s, opts, &reply.QueryMeta, &reply.HealthChecks, read)
}

// listQuery runs a blocking read of a list, applies the request's filter
// and stores the result (never nil) in out. Every list endpoint goes
// through it so filtering and empty-list handling stay the same.
func listQuery[T any](ctx context.Context, s *Server, opts *rpc.QueryOptions, meta *rpc.QueryMeta, out *[]T,
	read func(memdb.WatchSet, *state.Store) (uint64, []T, error)) error {
	f, err := newFilter(opts.Filter)
	if err != nil {
		return err
	}
	return s.blockingQuery(ctx, opts, meta, func(ws memdb.WatchSet, st *state.Store) (uint64, error) {
		idx, list, err := read(ws, st)
		if err != nil {
			return 0, err
		}
		if list, err = applyFilter(f, list); err != nil {
			return 0, err
		}
		*out = nonNil(list)
		return idx, nil
	})
}

func (s *Server) healthServiceNodes(ctx context.Context, args *rpc.ServiceSpecificRequest, reply *rpc.IndexedCheckServiceNodes) error {
	if args.ServiceName == "" {
		return fmt.Errorf("must provide service name: %w", rpc.ErrBadRequest)
	}
	return listQuery(ctx, s, &args.QueryOptions, &reply.QueryMeta, &reply.Nodes,
		func(ws memdb.WatchSet, st *state.Store) (uint64, []*state.CheckServiceNode, error) {
			return st.CheckServiceNodes(ws, args.ServiceName, args.ServiceTags, args.NodeMetaFilters)
		})
}
