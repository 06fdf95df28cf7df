package server

import (
	"context"
	"fmt"
)

func (s *Server) statusLeader(_ context.Context, _ *struct{}, reply *string) error {
	*reply = s.Leader()
	return nil
}

func (s *Server) statusPeers(_ context.Context, _ *struct{}, reply *[]string) error {
	r := s.raftOrNil()
	if r == nil {
		return ErrNotStarted
	}
	f := r.GetConfiguration()
	if err := f.Error(); err != nil {
		return fmt.Errorf("server: raft configuration: %w", err)
	}
	peers := []string{}
	for _, srv := range f.Configuration().Servers {
		peers = append(peers, string(srv.Address))
	}
	*reply = peers
	return nil
}
