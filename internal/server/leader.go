package server

import (
	"maps"
	"sync"
	"time"

	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
)

// Leader loop timings.
const (
	reconcileInterval = 60 * time.Second
	barrierTimeout    = time.Minute
	leaderRetryDelay  = time.Second
)

// consulServiceID is the catalog service every server registers.
const consulServiceID = "consul"

// monitorLeadership runs the leader loop while this server leads. It owns
// the leader loop goroutine and stops it on leadership loss or shutdown.
func (s *Server) monitorLeadership() {
	var (
		stopCh chan struct{}
		wg     sync.WaitGroup
	)
	stop := func() {
		if stopCh != nil {
			close(stopCh)
			wg.Wait()
			stopCh = nil
		}
	}
	defer stop()
	for {
		select {
		case isLeader := <-s.raftNotifyCh:
			switch {
			case isLeader && stopCh == nil:
				stopCh = make(chan struct{})
				wg.Add(1)
				go func(ch chan struct{}) {
					defer wg.Done()
					s.leaderLoop(ch)
				}(stopCh)
				s.logger.Info("cluster leadership acquired")
			case !isLeader && stopCh != nil:
				s.readyForReads.Store(false)
				stop()
				s.logger.Info("cluster leadership lost")
			}
		case <-s.shutdownCh:
			return
		}
	}
}

// leaderLoop establishes leadership (barrier, then self-registration) and
// reconciles periodically until stopCh closes.
func (s *Server) leaderLoop(stopCh <-chan struct{}) {
	defer s.stopAutopilot()
	defer s.stopSessionTimers()
	established := false
	var retry <-chan time.Time
	ticker := time.NewTicker(reconcileInterval)
	defer ticker.Stop()
	for {
		if !established {
			if err := s.establishLeadership(); err != nil {
				s.logger.Error("failed to establish leadership", "error", err)
				retry = time.After(leaderRetryDelay)
			} else {
				established = true
				retry = nil
				// Before readiness, so a fresh cluster's first write is
				// done by the time callers see a ready leader.
				s.initAutopilotConfig()
				s.readyForReads.Store(true)
				s.readyOnce.Do(func() { close(s.readyCh) })
				s.startAutopilot()
				s.startSessionTimers()
				if !s.reconcile() {
					retry = time.After(leaderRetryDelay)
				}
			}
		}
		select {
		case <-stopCh:
			return
		case <-s.shutdownCh:
			return
		case <-retry:
			retry = nil
			if established && !s.reconcile() {
				retry = time.After(leaderRetryDelay)
			}
		case <-ticker.C:
			if established && !s.reconcile() {
				retry = time.After(leaderRetryDelay)
			}
		case <-s.reconcileCh:
			if established {
				if !s.reconcile() {
					retry = time.After(leaderRetryDelay)
				}
				s.RemoveDeadServers()
			}
		}
	}
}

// reconcile brings this server's own catalog entry and the gossip members
// into the catalog and the Raft configuration (membership.go). It reports
// whether everything succeeded; the leader loop retries soon if not.
func (s *Server) reconcile() bool {
	ok := true
	if err := s.reconcileSelf(); err != nil {
		s.logger.Error("failed to reconcile this server in the catalog", "error", err)
		ok = false
	}
	if err := s.reconcileMembers(); err != nil {
		s.logger.Error("failed to reconcile gossip members", "error", err)
		ok = false
	}
	return ok
}

// establishLeadership waits until every entry committed by earlier leaders
// is applied to our FSM, then brings this server's catalog entry up to date.
func (s *Server) establishLeadership() error {
	r := s.raftOrNil()
	if r == nil {
		return ErrNotStarted
	}
	if err := r.Barrier(barrierTimeout).Error(); err != nil {
		return err
	}
	return s.reconcileSelf()
}

// selfRegistration is this server's node, serfHealth check and consul
// service as they should be in the catalog.
func (s *Server) selfRegistration() *rpc.RegisterRequest {
	return &rpc.RegisterRequest{
		ID:              s.cfg.NodeID,
		Node:            s.cfg.NodeName,
		Address:         s.cfg.NodeAddress,
		Datacenter:      s.cfg.Datacenter,
		TaggedAddresses: maps.Clone(s.cfg.TaggedAddresses),
		NodeMeta:        maps.Clone(s.cfg.NodeMeta),
		Service: &state.NodeService{
			ID:      consulServiceID,
			Service: consulServiceID,
			Port:    s.cfg.ServerPort,
			Weights: state.Weights{Passing: 1, Warning: 1},
		},
		Checks: []*state.HealthCheck{{
			Node:    s.cfg.NodeName,
			CheckID: state.SerfCheckID,
			Name:    state.SerfCheckName,
			Status:  state.HealthPassing,
			Output:  "Agent alive and reachable",
			Type:    "",
		}},
	}
}

// reconcileSelf registers this server unless the catalog already matches,
// so a steady cluster writes nothing to Raft.
func (s *Server) reconcileSelf() error {
	req, err := s.normalizeRegister(s.selfRegistration())
	if err != nil {
		return err
	}
	upToDate, err := s.fsm.State().RegistrationUpToDate(registrationFromRequest(req))
	if err != nil {
		return err
	}
	if upToDate {
		return nil
	}
	_, err = s.raftApply(RegisterRequestType, req)
	return mapStateError(err)
}
