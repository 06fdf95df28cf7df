package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/serf/serf"

	"github.com/cairn-io/cairn/internal/checks"
	"github.com/cairn-io/cairn/internal/config"
	"github.com/cairn-io/cairn/internal/dns"
	"github.com/cairn-io/cairn/internal/gossip"
	"github.com/cairn-io/cairn/internal/httpapi"
	"github.com/cairn-io/cairn/internal/local"
	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/server"
	"github.com/cairn-io/cairn/internal/state"
)

// Errors of the agent's lifecycle.
var (
	ErrInvalidOptions = errors.New("agent: invalid options")
	ErrNotStarted     = errors.New("agent: not started")
	ErrShutdown       = errors.New("agent: shut down")
)

// Options are everything an Agent needs.
type Options struct {
	Config *config.RuntimeConfig
	// Reload re-reads the config files for /v1/agent/reload and SIGHUP;
	// may be nil (reload then fails).
	Reload  func() (*config.RuntimeConfig, []string, error)
	Logger  *slog.Logger
	Version string
}

// defaultFullSyncInterval is the period of full anti-entropy syncs (plus up
// to 10% jitter).
const defaultFullSyncInterval = time.Minute

// Agent is one Cairn agent: a server (for now) plus its HTTP API, local
// state, checks and anti-entropy.
type Agent struct {
	opts   Options
	cfg    *config.RuntimeConfig
	logger *slog.Logger

	// fullSyncInterval is the full sync period and reapInterval the period
	// of the critical-service reaper; tests shorten them.
	fullSyncInterval time.Duration
	reapInterval     time.Duration
	// reapMinimum is the floor of deregister_critical_service_after.
	reapMinimum time.Duration

	// gossipTune, when set (tests), tunes the LAN pool's serf config.
	gossipTune func(*serf.Config)

	// Set by Start, read-only afterwards.
	nodeID  string
	srv     *server.Server // nil on a client agent
	lan     *gossip.Pool   // nil when ports.serf_lan is -1
	wan     *gossip.Pool   // servers only; nil when ports.serf_wan is -1
	rpcPool *rpc.ConnPool  // client agents: connections to the servers
	caller  rpc.Caller
	local   *local.State
	httpSrv *http.Server
	// httpLimit caps concurrent HTTP connections per client IP.
	httpLimit *connLimiter
	httpLn    net.Listener
	dnsSrv    *dns.Server
	started   time.Time

	// events holds the user events received over gossip (event.go);
	// watches the running config watches (event_watch.go). Both guard
	// themselves.
	events  eventRing
	watches watchSet

	mu sync.Mutex // guards the fields below
	// runners holds the running check of every check ID that has one
	// (maintenance checks have none).
	runners map[string]*runner
	// configServices / configChecks are the IDs defined in config files, so
	// a reload can remove the ones that disappeared.
	configServices map[string]bool
	configChecks   map[string]bool
	nodeMeta       map[string]string
	state          lifecycle
	// appliedDefs holds the JSON of the config definition last applied per
	// "service:<id>" / "check:<id>", so a reload skips unchanged ones
	// (config_defs.go). Created on first use.
	appliedDefs map[string]string

	stopCh       chan struct{}
	stopCtx      context.Context
	stopCancel   context.CancelFunc
	wg           sync.WaitGroup
	readyCh      chan struct{}
	readyOnce    sync.Once
	doneCh       chan struct{}
	shutdownOnce sync.Once
	shutdownErr  error
}

type lifecycle int

const (
	stateNew lifecycle = iota
	stateStarted
	stateStopping
)

// runner is a running check and what the agent needs to feed it.
type runner struct {
	check     checks.Check
	outputMax int
	// ttl is a TTL check's TTL (0 for other kinds), for the saved state's
	// expiry (persist.go).
	ttl time.Duration
}

// New validates opts and allocates an Agent. It does no I/O.
func New(opts Options) (*Agent, error) {
	if opts.Config == nil {
		return nil, fmt.Errorf("%w: Config is required", ErrInvalidOptions)
	}
	cfg := opts.Config
	if cfg.NodeName == "" {
		return nil, fmt.Errorf("%w: node name is required", ErrInvalidOptions)
	}
	if cfg.Datacenter == "" {
		return nil, fmt.Errorf("%w: datacenter is required", ErrInvalidOptions)
	}
	if !cfg.Dev && cfg.DataDir == "" {
		return nil, fmt.Errorf("%w: data_dir is required unless -dev", ErrInvalidOptions)
	}
	if cfg.NodeID != "" && !isUUID(cfg.NodeID) {
		return nil, fmt.Errorf("%w: node_id %q is not a UUID", ErrInvalidOptions, cfg.NodeID)
	}
	if cfg.ACL.Enabled {
		// Fail closed: running would serve every request as if ACLs were
		// off, while the operator believes they are on.
		return nil, fmt.Errorf("%w: acl.enabled = true, but cairn does not enforce ACLs yet and would serve every request as if ACLs were off; "+
			"remove acl.enabled (or set it to false) to run without ACLs", ErrInvalidOptions)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Agent{
		opts:             opts,
		cfg:              cfg,
		logger:           logger,
		fullSyncInterval: defaultFullSyncInterval,
		reapInterval:     defaultReapInterval,
		reapMinimum:      envDuration(EnvDeregisterCriticalMinimum, minDeregisterCriticalAfter),
		runners:          map[string]*runner{},
		configServices:   map[string]bool{},
		configChecks:     map[string]bool{},
		stopCh:           make(chan struct{}),
		stopCtx:          ctx,
		stopCancel:       cancel,
		readyCh:          make(chan struct{}),
		doneCh:           make(chan struct{}),
	}, nil
}

// Ready is closed once a leader is known and this node is registered in the
// catalog (the first full anti-entropy sync succeeded).
func (a *Agent) Ready() <-chan struct{} { return a.readyCh }

// Done is closed after shutdown completed.
func (a *Agent) Done() <-chan struct{} { return a.doneCh }

// HTTPAddr is the bound HTTP address ("127.0.0.1:8500"), or "" when the
// HTTP listener is disabled or not started.
func (a *Agent) HTTPAddr() string {
	if a.httpLn == nil {
		return ""
	}
	return a.httpLn.Addr().String()
}

// NodeID returns the node's ID (known after Start).
func (a *Agent) NodeID() string { return a.nodeID }

// Caller returns the RPC caller the agent uses: the in-process server on a
// server agent, the server router on a client agent.
func (a *Agent) Caller() rpc.Caller { return a.caller }

// Start brings the agent up: node ID, server, local state with the services
// and checks from config files, HTTP listener, anti-entropy. It returns once
// the listeners are bound; wait on Ready for the catalog registration. On
// error the caller should still call Shutdown.
func (a *Agent) Start(ctx context.Context) error {
	a.mu.Lock()
	if a.state != stateNew {
		a.mu.Unlock()
		return fmt.Errorf("agent: Start called twice or after Shutdown")
	}
	a.state = stateStarted
	a.mu.Unlock()
	a.started = time.Now()

	cfg := a.cfg
	nodeID, err := loadNodeID(cfg)
	if err != nil {
		return err
	}
	a.nodeID = nodeID

	adv := advertiseAddr(cfg)
	advWAN := cfg.AdvertiseAddrWAN
	if advWAN == "" {
		advWAN = adv
	}
	tagged := taggedAddresses(adv, advWAN)
	a.nodeMeta = nodeMeta(cfg.NodeMeta)

	if a.isServer() {
		if err := a.startServer(adv, tagged); err != nil {
			return err
		}
	} else {
		a.rpcPool = rpc.NewConnPool(rpc.ConnPoolConfig{
			DialTimeout:      server.ServerDialTimeout,
			DefaultQueryTime: cfg.DefaultQueryTime,
			MaxQueryTime:     cfg.MaxQueryTime,
			Logger:           a.logger.With("component", "rpc.pool"),
		})
		hold := cfg.RPCHoldTimeout
		if hold <= 0 {
			hold = server.DefaultRPCHoldTimeout
		}
		a.caller = &router{pool: a.rpcPool, members: a.lanMembers, dc: cfg.Datacenter, hold: hold,
			stopCh: a.stopCh, logger: a.logger.With("component", "router")}
	}

	a.local = local.NewState(local.Config{
		NodeName:            cfg.NodeName,
		NodeID:              nodeID,
		Datacenter:          cfg.Datacenter,
		Address:             adv,
		TaggedAddresses:     tagged,
		NodeMeta:            a.nodeMeta,
		AgentToken:          agentToken(cfg),
		CheckUpdateInterval: cfg.CheckUpdateInterval,
		DiscardCheckOutput:  cfg.DiscardCheckOutput,
		ReservedServiceIDs:  []string{"consul"},
		ReservedCheckIDs:    []string{state.SerfCheckID},
		Logger:              a.logger.With("component", "local"),
	})

	if err := a.loadConfigDefinitions(cfg); err != nil {
		return err
	}
	if err := a.loadPersisted(); err != nil {
		return err
	}

	if err := a.startHTTP(ctx); err != nil {
		return err
	}
	if err := a.startDNS(); err != nil {
		return err
	}
	if err := a.startGossip(); err != nil {
		return err
	}
	if err := a.reloadWatches(cfg.Watches); err != nil { // event_watch.go
		return err
	}

	hint := make(chan struct{})
	a.wg.Add(3)
	go a.watchLeader(hint)
	go a.syncLoop(hint)
	go a.reapLoop()

	a.logger.Info("agent started", "node", cfg.NodeName, "node_id", nodeID, "datacenter", cfg.Datacenter, "http_addr", a.HTTPAddr())
	return nil
}

// startServer creates and starts this agent's server: Raft and the RPC
// server share the server port (also in -dev, so a dev server can be
// reached by other agents; -dev keeps its stores in memory).
func (a *Agent) startServer(adv string, tagged map[string]string) error {
	cfg := a.cfg
	srvCfg := server.Config{
		NodeName:         cfg.NodeName,
		NodeID:           a.nodeID,
		Datacenter:       cfg.Datacenter,
		DataDir:          cfg.DataDir,
		InMemory:         cfg.Dev,
		Bootstrap:        cfg.Bootstrap || cfg.Dev || cfg.BootstrapExpect == 1,
		BootstrapExpect:  cfg.BootstrapExpect,
		RPCHoldTimeout:   cfg.RPCHoldTimeout,
		RaftMultiplier:   cfg.RaftMultiplier,
		NodeAddress:      adv,
		TaggedAddresses:  tagged,
		NodeMeta:         a.nodeMeta,
		ServerPort:       cfg.PortServer,
		KVMaxValueSize:   cfg.KVMaxValueSize,
		SnapshotInterval: cfg.RaftSnapshotInterval,
		// raft_snapshot_threshold and raft_trailing_logs (validated >= 1, >= 0).
		SnapshotThreshold: uint64(max(cfg.RaftSnapshotThreshold, 0)),
		TrailingLogs:      uint64(max(cfg.RaftTrailingLogs, 0)),
		SessionTTLMin:     cfg.SessionTTLMin,
		Logger:            a.logger,
	}
	if cfg.PortServer >= 0 {
		bind := cfg.BindAddr
		if bind == "" {
			bind = "0.0.0.0"
		}
		srvCfg.RaftBindAddr = net.JoinHostPort(bind, strconv.Itoa(cfg.PortServer))
		// Port 0 (tests) is replaced by the bound port.
		srvCfg.RaftAdvertise = net.JoinHostPort(adv, strconv.Itoa(cfg.PortServer))
	} else if !cfg.Dev {
		return fmt.Errorf("%w: a server needs the server port (ports.server)", ErrInvalidOptions)
	}
	if cfg.RaftSnapshotThreshold > 0 {
		srvCfg.SnapshotThreshold = uint64(cfg.RaftSnapshotThreshold)
	}
	srv, err := server.New(srvCfg)
	if err != nil {
		return fmt.Errorf("agent: create server: %w", err)
	}
	a.srv = srv
	ap := cfg.Autopilot
	if err := srv.SetAutopilotDefaults(state.AutopilotConfig{
		CleanupDeadServers:      ap.CleanupDeadServers,
		LastContactThreshold:    state.Duration(ap.LastContactThreshold),
		MaxTrailingLogs:         uint64(max(ap.MaxTrailingLogs, 0)),
		MinQuorum:               uint(max(ap.MinQuorum, 0)),
		ServerStabilizationTime: state.Duration(ap.ServerStabilizationTime),
	}); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	if err := srv.Start(); err != nil {
		return fmt.Errorf("agent: start server: %w", err)
	}
	a.caller = srv
	return nil
}

func (a *Agent) startHTTP(ctx context.Context) error {
	cfg := a.cfg
	if cfg.PortHTTP < 0 {
		return nil
	}
	host := cfg.AddrHTTP
	if host == "" {
		host = cfg.ClientAddr
	}
	if f := strings.Fields(host); len(f) > 0 {
		host = f[0]
	} else {
		host = "127.0.0.1"
	}
	addr := net.JoinHostPort(host, strconv.Itoa(cfg.PortHTTP))
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("agent: listen http on %s: %w", addr, err)
	}
	a.httpLn = ln
	// A server takes snapshots itself (a follower relays to the leader);
	// a client agent streams them to a server its router picks.
	var snapshots httpapi.SnapshotBackend
	if a.srv != nil {
		snapshots = a.srv
	} else if rt, ok := a.caller.(*router); ok {
		snapshots = newSnapshotRouter(rt)
	}
	handler := httpapi.New(httpapi.Config{
		Caller:         a.caller,
		Agent:          Backend{a},
		Snapshot:       snapshots,
		Datacenter:     cfg.Datacenter,
		NodeName:       cfg.NodeName,
		KVMaxValueSize: cfg.KVMaxValueSize,
		TxnMaxReqLen:   cfg.TxnMaxReqLen,
		Version:        a.opts.Version,
		Logger:         a.logger.With("component", "http"),
		EnableDebug:    cfg.EnableDebug,
	})
	a.httpSrv = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          slog.NewLogLogger(a.logger.With("component", "http").Handler(), slog.LevelWarn),
	}
	a.httpLimit = newConnLimiter(cfg.HTTPMaxConnsPerClient, a.logger.With("component", "http"))
	a.httpLimit.install(a.httpSrv)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if err := a.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.logger.Error("http server stopped", "error", err)
		}
	}()
	return nil
}

func (a *Agent) startDNS() error {
	cfg := a.cfg
	if cfg.PortDNS < 0 {
		return nil
	}
	host := cfg.AddrDNS
	if host == "" {
		host = cfg.ClientAddr
	}
	if f := strings.Fields(host); len(f) > 0 {
		host = f[0]
	} else {
		host = "127.0.0.1"
	}
	dc := dns.DefaultConfig()
	dc.Caller = a.caller
	dc.Datacenter = cfg.Datacenter
	dc.NodeName = cfg.NodeName
	if cfg.Domain != "" {
		dc.Domain = cfg.Domain
	}
	dc.AltDomain = cfg.AltDomain
	dc.Recursors = cfg.Recursors
	if cfg.DNS.RecursorTimeout > 0 {
		dc.RecursorTimeout = cfg.DNS.RecursorTimeout
	}
	dc.AllowStale = cfg.DNS.AllowStale
	if cfg.DNS.MaxStale > 0 {
		dc.MaxStale = cfg.DNS.MaxStale
	}
	dc.NodeTTL = cfg.DNS.NodeTTL
	dc.ServiceTTL = cfg.DNS.ServiceTTL
	dc.OnlyPassing = cfg.DNS.OnlyPassing
	dc.EnableTruncate = cfg.DNS.EnableTruncate
	if cfg.DNS.UDPAnswerLimit > 0 {
		dc.UDPAnswerLimit = cfg.DNS.UDPAnswerLimit
	}
	dc.ARecordLimit = cfg.DNS.ARecordLimit
	dc.Logger = a.logger.With("component", "dns")
	srv, err := dns.New(dc)
	if err != nil {
		return fmt.Errorf("agent: create dns server: %w", err)
	}
	addr := net.JoinHostPort(host, strconv.Itoa(cfg.PortDNS))
	if err := srv.ListenAndServe(addr, addr); err != nil {
		return fmt.Errorf("agent: listen dns on %s: %w", addr, err)
	}
	a.dnsSrv = srv
	return nil
}

// DNSAddr is the bound DNS address (UDP), or "" when DNS is disabled.
func (a *Agent) DNSAddr() string {
	if a.dnsSrv == nil || a.dnsSrv.UDPAddr() == nil {
		return ""
	}
	return a.dnsSrv.UDPAddr().String()
}

// Shutdown stops the agent: HTTP (gracefully, within ctx), anti-entropy,
// checks, then the server. It waits for every goroutine it started and is
// idempotent; concurrent callers all wait for the one shutdown.
func (a *Agent) Shutdown(ctx context.Context) error {
	a.shutdownOnce.Do(func() {
		a.mu.Lock()
		a.state = stateStopping
		a.mu.Unlock()
		a.shutdownErr = a.shutdown(ctx)
		close(a.doneCh)
	})
	select {
	case <-a.doneCh:
		return a.shutdownErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (a *Agent) shutdown(ctx context.Context) error {
	var errs []error
	// Config watches hold blocking queries open on our own HTTP server,
	// which would stall its graceful shutdown.
	a.stopWatches() // event_watch.go
	if a.httpSrv != nil {
		if err := a.httpSrv.Shutdown(ctx); err != nil {
			// Blocking queries may outlive the grace period; cut them.
			_ = a.httpSrv.Close()
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				errs = append(errs, fmt.Errorf("agent: stop http: %w", err))
			}
		}
	}
	if a.dnsSrv != nil {
		if err := a.dnsSrv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("agent: stop dns: %w", err))
		}
	}
	close(a.stopCh)
	a.stopCancel()

	a.mu.Lock()
	for id, r := range a.runners {
		r.check.Stop()
		delete(a.runners, id)
	}
	a.mu.Unlock()
	if a.local != nil {
		a.local.Stop()
	}
	a.wg.Wait() // sync loop and HTTP serve goroutine

	if a.srv != nil {
		if err := a.srv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("agent: stop server: %w", err))
		}
	}
	if err := a.shutdownGossip(); err != nil {
		errs = append(errs, fmt.Errorf("agent: stop gossip: %w", err))
	}
	if a.rpcPool != nil {
		_ = a.rpcPool.Shutdown()
	}
	a.logger.Info("agent stopped")
	return errors.Join(errs...)
}

// Leave leaves the cluster gracefully and shuts down: a server leaves the
// Raft configuration (server.Leave), every agent announces its departure
// on gossip so the leader deregisters its node instead of marking it
// failed.
func (a *Agent) Leave(ctx context.Context) error {
	a.logger.Info("agent leaving")
	a.mu.Lock()
	started := a.state == stateStarted
	a.mu.Unlock()
	var leaveErr error
	if started {
		if err := a.leave(ctx); err != nil {
			a.logger.Error("graceful leave failed", "error", err)
			leaveErr = fmt.Errorf("agent: leave: %w", err)
		}
	}
	return errors.Join(leaveErr, a.Shutdown(ctx))
}

// lanMembers returns the LAN pool's members (none without a pool).
func (a *Agent) lanMembers() []serf.Member {
	if a.lan == nil {
		return nil
	}
	return a.lan.Members()
}

// watchLeader closes hint as soon as the servers report a leader, so the
// first anti-entropy sync does not sit in a long backoff after a slow
// election (bootstrap_expect waiting for its peers, a client joining).
func (a *Agent) watchLeader(hint chan struct{}) {
	defer a.wg.Done()
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(a.stopCtx, time.Second)
		var leader string
		err := a.caller.RPC(ctx, rpc.MethodStatusLeader, &struct{}{}, &leader)
		cancel()
		if err == nil && leader != "" {
			close(hint)
			return
		}
		select {
		case <-a.stopCh:
			return
		case <-t.C:
		}
	}
}

// Reload re-reads the configuration through Options.Reload and applies what
// can change at run time: services and checks from config files, node
// meta and limits.http_max_conns_per_client.
func (a *Agent) Reload() error {
	if a.opts.Reload == nil {
		return fmt.Errorf("agent: reload is not available (no config loader)")
	}
	a.mu.Lock()
	st := a.state
	a.mu.Unlock()
	if st != stateStarted || a.local == nil {
		return ErrNotStarted
	}
	cfg, warnings, err := a.opts.Reload()
	if err != nil {
		return fmt.Errorf("agent: reload config: %w", err)
	}
	for _, w := range warnings {
		a.logger.Warn("config warning", "warning", w)
	}
	if err := a.reloadWatches(cfg.Watches); err != nil { // event_watch.go
		return err
	}
	if err := a.reloadConfigDefinitions(cfg); err != nil {
		return err
	}
	if a.httpLimit != nil {
		a.httpLimit.setLimit(cfg.HTTPMaxConnsPerClient)
	}
	meta := nodeMeta(cfg.NodeMeta)
	a.mu.Lock()
	changed := !mapsEqual(meta, a.nodeMeta)
	if changed {
		a.nodeMeta = meta
	}
	a.mu.Unlock()
	if changed {
		a.local.SetNodeMeta(meta)
	}
	a.logger.Info("config reloaded")
	return nil
}

// markReady closes Ready once.
func (a *Agent) markReady() {
	a.readyOnce.Do(func() {
		a.logger.Info("agent ready: node registered in the catalog")
		close(a.readyCh)
	})
}

func advertiseAddr(cfg *config.RuntimeConfig) string {
	if cfg.AdvertiseAddr != "" {
		return cfg.AdvertiseAddr
	}
	if cfg.BindAddr != "" && cfg.BindAddr != "0.0.0.0" && cfg.BindAddr != "::" {
		return cfg.BindAddr
	}
	return "127.0.0.1"
}

func taggedAddresses(lan, wan string) map[string]string {
	out := map[string]string{"lan": lan, "wan": wan}
	for name, addr := range map[string]string{"lan": lan, "wan": wan} {
		if ip := net.ParseIP(addr); ip != nil {
			if ip.To4() != nil {
				out[name+"_ipv4"] = addr
			} else {
				out[name+"_ipv6"] = addr
			}
		}
	}
	return out
}

// nodeMeta returns the node meta the catalog shows: the configured one plus
// the network segment key Consul always sets.
func nodeMeta(m map[string]string) map[string]string {
	out := map[string]string{"consul-network-segment": ""}
	for k, v := range m {
		out[k] = v
	}
	return out
}

func agentToken(cfg *config.RuntimeConfig) string {
	if cfg.ACL.Tokens.Agent != "" {
		return cfg.ACL.Tokens.Agent
	}
	return cfg.ACL.Tokens.Default
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
