package local

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
)

// Config describes the node the local state belongs to.
type Config struct {
	NodeName        string
	NodeID          string
	Datacenter      string
	Address         string
	TaggedAddresses map[string]string
	NodeMeta        map[string]string

	// AgentToken is used for the node's own registration and for entries
	// registered without a token.
	AgentToken string

	// CheckUpdateInterval defers the sync of a check whose output changed
	// but whose status did not (check_update_interval); 0 syncs at once.
	CheckUpdateInterval time.Duration
	// DiscardCheckOutput drops check output (discard_check_output).
	DiscardCheckOutput bool

	// ReservedServiceIDs and ReservedCheckIDs name catalog entries of this
	// node that the agent does not own (the leader's serfHealth check, the
	// "consul" service of a server): anti-entropy never removes them.
	ReservedServiceIDs []string
	ReservedCheckIDs   []string

	Logger *slog.Logger
}

// serviceEntry is a service in the local state. Lock: State.mu.
type serviceEntry struct {
	svc     *state.NodeService
	token   string
	inSync  bool
	deleted bool
	gen     uint64 // bumped on every change; a sync marks in-sync only an unchanged entry
}

// checkEntry is a check in the local state. Lock: State.mu.
type checkEntry struct {
	chk     *state.HealthCheck
	token   string
	inSync  bool
	deleted bool
	gen     uint64
	// deferred is the pending timer of an output-only change.
	deferred *time.Timer
	// criticalSince is when the check last turned critical (zero when it
	// is not critical).
	criticalSince time.Time
}

// State is the agent's local state: the services and checks registered at
// this agent, each with an in-sync flag. It is safe for concurrent use.
// Methods never call out while holding the lock, except to send on the
// (buffered, non-blocking) notify channel.
type State struct {
	cfg    Config
	logger *slog.Logger

	mu         sync.Mutex
	nodeInSync bool
	services   map[string]*serviceEntry
	checks     map[string]*checkEntry
	nextGen    uint64
	stopped    bool

	notifyCh chan struct{}
	// changedCh is closed (and replaced) at every change, for watchers
	// such as hash-based blocking queries. Lock: mu.
	changedCh chan struct{}
}

// NewState returns an empty local state for the node in cfg.
func NewState(cfg Config) *State {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &State{
		cfg:       cfg,
		logger:    logger,
		services:  map[string]*serviceEntry{},
		checks:    map[string]*checkEntry{},
		notifyCh:  make(chan struct{}, 1),
		changedCh: make(chan struct{}),
	}
}

// Notify returns a channel that receives a value after the local state
// changed in a way the catalog must learn about. One value may stand for
// many changes.
func (s *State) Notify() <-chan struct{} { return s.notifyCh }

// notifyLocked signals the sync loop and the watchers; it never blocks.
func (s *State) notifyLocked() {
	select {
	case s.notifyCh <- struct{}{}:
	default:
	}
	s.broadcastLocked()
}

func (s *State) broadcastLocked() {
	close(s.changedCh)
	s.changedCh = make(chan struct{})
}

// Changed returns a channel that is closed at the next change of a service
// or check (including output-only changes that sync later).
func (s *State) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changedCh
}

func (s *State) gen() uint64 {
	s.nextGen++
	return s.nextGen
}

// NodeConfig returns the node description the state syncs.
func (s *State) NodeConfig() Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg
}

// SetNodeMeta replaces the node's meta data and marks the node out of sync.
func (s *State) SetNodeMeta(meta map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg.NodeMeta = cloneMap(meta)
	s.nodeInSync = false
	s.notifyLocked()
}

// AddService registers or replaces a service together with its checks in
// one step, so that the catalog never sees the service without them. The
// checks' ServiceID must be the service's ID.
func (s *State) AddService(svc *state.NodeService, checks []*state.HealthCheck, token string) error {
	if svc == nil || svc.ID == "" {
		return fmt.Errorf("%w: service without ID", rpc.ErrBadRequest)
	}
	for _, c := range checks {
		if c.ServiceID != svc.ID {
			return fmt.Errorf("%w: check %q belongs to service %q, not %q", rpc.ErrBadRequest, c.CheckID, c.ServiceID, svc.ID)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.services[svc.ID] = &serviceEntry{svc: copyService(svc), token: token, gen: s.gen()}
	// Checks already attached to the service learn its new name and tags.
	for _, e := range s.checks {
		if !e.deleted && e.chk.ServiceID == svc.ID {
			s.decorateLocked(e.chk)
			e.inSync = false
			e.gen = s.gen()
		}
	}
	for _, c := range checks {
		s.putCheckLocked(c, token)
	}
	s.notifyLocked()
	return nil
}

// RemoveService marks a service and its checks for deregistration. It
// returns the IDs of the removed checks. An unknown ID wraps
// rpc.ErrNotFound.
func (s *State) RemoveService(id string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.services[id]
	if !ok || e.deleted {
		return nil, fmt.Errorf("%w: unknown service ID %q", rpc.ErrNotFound, id)
	}
	e.deleted, e.inSync, e.gen = true, false, s.gen()
	var removed []string
	for cid, c := range s.checks {
		if !c.deleted && c.chk.ServiceID == id {
			s.deleteCheckLocked(c)
			removed = append(removed, cid)
		}
	}
	s.notifyLocked()
	return removed, nil
}

// AddCheck registers or replaces a check. A service check needs its service
// registered here (rpc.ErrBadRequest otherwise).
func (s *State) AddCheck(chk *state.HealthCheck, token string) error {
	if chk == nil || chk.CheckID == "" {
		return fmt.Errorf("%w: check without ID", rpc.ErrBadRequest)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if chk.ServiceID != "" {
		if e, ok := s.services[chk.ServiceID]; !ok || e.deleted {
			return fmt.Errorf("%w: ServiceID %q does not exist", rpc.ErrBadRequest, chk.ServiceID)
		}
	}
	s.putCheckLocked(chk, token)
	s.notifyLocked()
	return nil
}

func (s *State) putCheckLocked(chk *state.HealthCheck, token string) {
	c := copyCheck(chk)
	c.Node = s.cfg.NodeName
	if s.cfg.DiscardCheckOutput {
		c.Output = ""
	}
	s.decorateLocked(c)
	if old, ok := s.checks[c.CheckID]; ok && old.deferred != nil {
		old.deferred.Stop()
	}
	e := &checkEntry{chk: c, token: token, gen: s.gen()}
	if c.Status == state.HealthCritical {
		e.criticalSince = time.Now()
		if old, ok := s.checks[c.CheckID]; ok && !old.deleted && !old.criticalSince.IsZero() {
			e.criticalSince = old.criticalSince
		}
	}
	s.checks[c.CheckID] = e
}

// decorateLocked copies the service's name and tags onto its check.
func (s *State) decorateLocked(c *state.HealthCheck) {
	if c.ServiceID == "" {
		c.ServiceName, c.ServiceTags = "", nil
		return
	}
	if e, ok := s.services[c.ServiceID]; ok {
		c.ServiceName = e.svc.Service
		c.ServiceTags = cloneStrings(e.svc.Tags)
	}
}

// RemoveCheck marks a check for deregistration; an unknown ID wraps
// rpc.ErrNotFound.
func (s *State) RemoveCheck(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.checks[id]
	if !ok || e.deleted {
		return fmt.Errorf("%w: unknown check ID %q", rpc.ErrNotFound, id)
	}
	s.deleteCheckLocked(e)
	s.notifyLocked()
	return nil
}

func (s *State) deleteCheckLocked(e *checkEntry) {
	if e.deferred != nil {
		e.deferred.Stop()
		e.deferred = nil
	}
	e.deleted, e.inSync, e.gen = true, false, s.gen()
}

// UpdateCheck sets a check's status and output. A status change syncs at
// once; an output-only change waits up to CheckUpdateInterval. It reports
// whether the check exists.
func (s *State) UpdateCheck(id, status, output string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.checks[id]
	if !ok || e.deleted || s.stopped {
		return ok && !e.deleted
	}
	if s.cfg.DiscardCheckOutput {
		output = ""
	}
	if e.chk.Status == status && e.chk.Output == output {
		return true
	}
	if e.chk.Status == status && s.cfg.CheckUpdateInterval > 0 {
		// Output-only change: keep the catalog's copy for a while to spare
		// Raft from chatty checks.
		e.chk.Output = output
		s.broadcastLocked()
		if e.inSync && e.deferred == nil {
			gen := e.gen
			e.deferred = time.AfterFunc(s.cfg.CheckUpdateInterval, func() {
				s.mu.Lock()
				defer s.mu.Unlock()
				cur, ok := s.checks[id]
				if !ok || cur != e || cur.gen != gen {
					return
				}
				cur.deferred = nil
				cur.inSync = false
				cur.gen = s.gen()
				s.notifyLocked()
			})
		}
		return true
	}
	if e.deferred != nil {
		e.deferred.Stop()
		e.deferred = nil
	}
	switch {
	case status != state.HealthCritical:
		e.criticalSince = time.Time{}
	case e.criticalSince.IsZero():
		e.criticalSince = time.Now()
	}
	e.chk.Status, e.chk.Output = status, output
	e.inSync, e.gen = false, s.gen()
	s.notifyLocked()
	return true
}

// Service returns a copy of a registered service, or nil.
func (s *State) Service(id string) *state.NodeService {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.services[id]; ok && !e.deleted {
		return copyService(e.svc)
	}
	return nil
}

// Services returns copies of the registered services by ID.
func (s *State) Services() map[string]*state.NodeService {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]*state.NodeService, len(s.services))
	for id, e := range s.services {
		if !e.deleted {
			out[id] = copyService(e.svc)
		}
	}
	return out
}

// Check returns a copy of a registered check, or nil.
func (s *State) Check(id string) *state.HealthCheck {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.checks[id]; ok && !e.deleted {
		return copyCheck(e.chk)
	}
	return nil
}

// Checks returns copies of the registered checks by ID.
func (s *State) Checks() map[string]*state.HealthCheck {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]*state.HealthCheck, len(s.checks))
	for id, e := range s.checks {
		if !e.deleted {
			out[id] = copyCheck(e.chk)
		}
	}
	return out
}

// CriticalCheck is a check that is critical, and since when.
type CriticalCheck struct {
	Check         *state.HealthCheck
	CriticalSince time.Time
}

// CriticalChecks returns the checks that are critical now, by ID.
func (s *State) CriticalChecks() map[string]CriticalCheck {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]CriticalCheck{}
	for id, e := range s.checks {
		if !e.deleted && !e.criticalSince.IsZero() {
			out[id] = CriticalCheck{Check: copyCheck(e.chk), CriticalSince: e.criticalSince}
		}
	}
	return out
}

// ServiceToken returns the token a service was registered with.
func (s *State) ServiceToken(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.services[id]; ok {
		return e.token
	}
	return ""
}

// InSync reports whether the node, every service and every check are in
// sync with the catalog (for tests and /v1/agent/self stats).
func (s *State) InSync() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.nodeInSync {
		return false
	}
	for _, e := range s.services {
		if !e.inSync {
			return false
		}
	}
	for _, e := range s.checks {
		if !e.inSync {
			return false
		}
	}
	return true
}

// Stop cancels pending deferred check syncs. The state stays readable.
func (s *State) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	for _, e := range s.checks {
		if e.deferred != nil {
			e.deferred.Stop()
			e.deferred = nil
		}
	}
}

func copyService(svc *state.NodeService) *state.NodeService {
	c := *svc
	c.Tags = cloneStrings(svc.Tags)
	c.Meta = cloneMap(svc.Meta)
	c.TaggedAddresses = cloneAddrs(svc.TaggedAddresses)
	return &c
}

func copyCheck(chk *state.HealthCheck) *state.HealthCheck {
	c := *chk
	c.ServiceTags = cloneStrings(chk.ServiceTags)
	if chk.Definition.Header != nil {
		h := make(map[string][]string, len(chk.Definition.Header))
		for k, v := range chk.Definition.Header {
			h[k] = cloneStrings(v)
		}
		c.Definition.Header = h
	}
	return &c
}
