package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/go-memdb"

	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
)

// validStatus reports whether a check status may be written.
func validStatus(s string) bool {
	return s == state.HealthPassing || s == state.HealthWarning || s == state.HealthCritical
}

// normalizeRegister validates a register request and returns a copy with
// defaults filled in; the caller's request is not modified.
func (s *Server) normalizeRegister(args *rpc.RegisterRequest) (*rpc.RegisterRequest, error) {
	if args.Node == "" {
		return nil, fmt.Errorf("must provide node: %w", rpc.ErrBadRequest)
	}
	if args.Address == "" && !args.SkipNodeUpdate {
		return nil, fmt.Errorf("must provide address for node %q: %w", args.Node, rpc.ErrBadRequest)
	}
	req := *args
	req.Token = ""
	req.Datacenter = s.cfg.Datacenter
	if args.Service != nil {
		svc := *args.Service
		if svc.Service == "" {
			return nil, fmt.Errorf("must provide service name: %w", rpc.ErrBadRequest)
		}
		if svc.ID == "" {
			svc.ID = svc.Service
		}
		if svc.Weights == (state.Weights{}) {
			svc.Weights = state.Weights{Passing: 1, Warning: 1}
		}
		req.Service = &svc
	}
	checks := make([]*state.HealthCheck, 0, len(args.Checks)+1)
	for _, c := range append(append([]*state.HealthCheck(nil), args.Checks...), args.Check) {
		if c == nil {
			continue
		}
		hc := *c
		if hc.Node == "" {
			hc.Node = args.Node
		}
		if hc.Node != args.Node {
			return nil, fmt.Errorf("check %q is for node %q, not %q: %w", hc.CheckID, hc.Node, args.Node, rpc.ErrBadRequest)
		}
		if hc.CheckID == "" {
			hc.CheckID = hc.Name
		}
		if hc.CheckID == "" {
			return nil, fmt.Errorf("must provide a check ID or name: %w", rpc.ErrBadRequest)
		}
		if hc.Status == "" {
			hc.Status = state.HealthCritical
		}
		if !validStatus(hc.Status) {
			return nil, fmt.Errorf("check %q has invalid status %q: %w", hc.CheckID, hc.Status, rpc.ErrBadRequest)
		}
		checks = append(checks, &hc)
	}
	req.Check, req.Checks = nil, checks
	return &req, nil
}

func (s *Server) catalogRegister(_ context.Context, args *rpc.RegisterRequest, _ *struct{}) error {
	req, err := s.normalizeRegister(args)
	if err != nil {
		return err
	}
	_, err = s.raftApply(RegisterRequestType, req)
	return mapStateError(err)
}

func (s *Server) catalogDeregister(_ context.Context, args *rpc.DeregisterRequest, _ *struct{}) error {
	if args.Node == "" {
		return fmt.Errorf("must provide node: %w", rpc.ErrBadRequest)
	}
	req := *args
	req.Token = ""
	_, err := s.raftApply(DeregisterRequestType, &req)
	return mapStateError(err)
}

// mapStateError marks the state store's input errors as bad requests.
func mapStateError(err error) error {
	if err == nil {
		return nil
	}
	for _, target := range []error{state.ErrMissingNode, state.ErrMissingService, state.ErrNodeIDConflict, state.ErrInvalidInput} {
		if errors.Is(err, target) {
			return fmt.Errorf("%w: %w", rpc.ErrBadRequest, err)
		}
	}
	return err
}

func (s *Server) catalogListDatacenters(_ context.Context, _ *rpc.DCSpecificRequest, reply *[]string) error {
	*reply = []string{s.cfg.Datacenter}
	return nil
}

func (s *Server) catalogListNodes(ctx context.Context, args *rpc.DCSpecificRequest, reply *rpc.IndexedNodes) error {
	return listQuery(ctx, s, &args.QueryOptions, &reply.QueryMeta, &reply.Nodes,
		func(ws memdb.WatchSet, st *state.Store) (uint64, []*state.Node, error) {
			return st.Nodes(ws, args.NodeMetaFilters)
		})
}

func (s *Server) catalogListServices(ctx context.Context, args *rpc.DCSpecificRequest, reply *rpc.IndexedServices) error {
	f, err := newFilter(args.Filter)
	if err != nil {
		return err
	}
	return s.blockingQuery(ctx, &args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.Store) (uint64, error) {
		idx, list, err := st.ServiceInstances(ws, args.NodeMetaFilters)
		if err != nil {
			return 0, err
		}
		// As in Consul, the filter sees service instances, not the summary.
		if list, err = applyFilter(f, list); err != nil {
			return 0, err
		}
		reply.Services = state.AggregateServices(list)
		return idx, nil
	})
}

func (s *Server) catalogServiceNodes(ctx context.Context, args *rpc.ServiceSpecificRequest, reply *rpc.IndexedServiceNodes) error {
	if args.ServiceName == "" {
		return fmt.Errorf("must provide service name: %w", rpc.ErrBadRequest)
	}
	return listQuery(ctx, s, &args.QueryOptions, &reply.QueryMeta, &reply.ServiceNodes,
		func(ws memdb.WatchSet, st *state.Store) (uint64, []*state.ServiceNode, error) {
			return st.ServiceNodes(ws, args.ServiceName, args.ServiceTags, args.NodeMetaFilters)
		})
}

func (s *Server) catalogNodeServices(ctx context.Context, args *rpc.NodeSpecificRequest, reply *rpc.IndexedNodeServices) error {
	if args.Node == "" {
		return fmt.Errorf("must provide node: %w", rpc.ErrBadRequest)
	}
	f, err := newFilter(args.Filter)
	if err != nil {
		return err
	}
	return s.blockingQuery(ctx, &args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.Store) (uint64, error) {
		idx, ns, err := st.NodeServices(ws, args.Node)
		if err != nil {
			return 0, err
		}
		if ns != nil && f != nil {
			out, err := f.Execute(ns.Services)
			if err != nil {
				return 0, fmt.Errorf("filter: %v: %w", err, rpc.ErrBadRequest)
			}
			ns.Services = out.(map[string]*state.NodeService)
		}
		reply.NodeServices = ns
		return idx, nil
	})
}

func (s *Server) catalogNodeServiceList(ctx context.Context, args *rpc.NodeSpecificRequest, reply *rpc.IndexedNodeServiceList) error {
	if args.Node == "" {
		return fmt.Errorf("must provide node: %w", rpc.ErrBadRequest)
	}
	f, err := newFilter(args.Filter)
	if err != nil {
		return err
	}
	return s.blockingQuery(ctx, &args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.Store) (uint64, error) {
		idx, ns, err := st.NodeServiceList(ws, args.Node)
		if err != nil {
			return 0, err
		}
		if ns != nil {
			if ns.Services, err = applyFilter(f, ns.Services); err != nil {
				return 0, err
			}
			ns.Services = nonNil(ns.Services)
		}
		reply.NodeServices = ns
		return idx, nil
	})
}

// nonNil turns a nil slice into an empty one so JSON shows [] as Consul does.
func nonNil[T any](l []T) []T {
	if l == nil {
		return []T{}
	}
	return l
}
