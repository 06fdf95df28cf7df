package config

import (
	"time"
)

// RuntimeConfig is the one validated configuration an agent runs with. It is
// built by Load from defaults, config files (JSON/HCL, merged in order) and
// command-line flags (which win). Field names follow Consul's keys.
type RuntimeConfig struct {
	// Dev is set by -dev: in-memory single server on 127.0.0.1, bootstrap,
	// everything on.
	Dev bool

	NodeName   string
	NodeID     string // UUID; generated (and persisted in DataDir) when empty
	Datacenter string // default "dc1", lowercased
	DataDir    string // required unless Dev

	Server          bool
	Bootstrap       bool
	BootstrapExpect int

	BindAddr         string // default "0.0.0.0" ("127.0.0.1" in dev)
	ClientAddr       string // default "127.0.0.1"; for HTTP and DNS
	AdvertiseAddr    string // default: BindAddr if not 0.0.0.0, else first private IP (127.0.0.1 in dev)
	AdvertiseAddrWAN string

	// Addresses per listener override ClientAddr (addresses.http, addresses.dns).
	AddrHTTP  string
	AddrDNS   string
	AddrHTTPS string // addresses.https
	AddrGRPC  string // addresses.grpc

	// Ports; -1 disables a listener.
	PortHTTP    int // 8500
	PortHTTPS   int // -1
	PortDNS     int // 8600
	PortSerfLAN int // 8301
	PortSerfWAN int // 8302
	PortServer  int // 8300
	PortGRPC    int // -1 (8502 in dev)
	PortGRPCTLS int // ports.grpc_tls, -1

	RetryJoin     []string
	RetryInterval time.Duration // 30s
	RetryMax      int           // retry_max, 0 = retry forever
	StartJoin     []string

	LogLevel string // trace|debug|info|warn|error, default "info"
	LogJSON  bool
	LogFile  string // log_file; empty = stderr only

	NodeMeta map[string]string

	RaftMultiplier int           // performance.raft_multiplier, default set by config package
	LeaveDrainTime time.Duration // performance.leave_drain_time, 5s
	RPCHoldTimeout time.Duration // performance.rpc_hold_timeout, 7s

	PrimaryDatacenter string // primary_datacenter (legacy acl_datacenter); default Datacenter

	RaftProtocol          int           // raft_protocol, 3
	RaftSnapshotThreshold int           // raft_snapshot_threshold, 16384
	RaftSnapshotInterval  time.Duration // raft_snapshot_interval, 30s
	RaftTrailingLogs      int           // raft_trailing_logs, 10240
	RejoinAfterLeave      bool          // rejoin_after_leave
	ReconnectTimeout      time.Duration // reconnect_timeout, 72h
	DisableHostNodeID     bool          // disable_host_node_id, default true

	Autopilot AutopilotConfig

	// DNS interface.
	Domain    string // domain, default "consul." (always ends with a dot)
	AltDomain string // alt_domain, "" or ends with a dot
	Recursors []string
	DNS       DNSConfig

	UIEnabled bool // ui_config.enabled (legacy top-level ui); on in dev

	// HTTP API.
	HTTPMaxConnsPerClient int           // limits.http_max_conns_per_client, 200
	DefaultQueryTime      time.Duration // default_query_time, 300s
	MaxQueryTime          time.Duration // max_query_time, 600s
	SessionTTLMin         time.Duration // session_ttl_min, 10s

	DisableUpdateCheck      bool
	LeaveOnTerminate        bool // default false for servers, true for clients
	SkipLeaveOnInterrupt    bool // default true for servers, false for clients
	EnableScriptChecks      bool
	EnableLocalScriptChecks bool
	EnableDebug             bool

	KVMaxValueSize uint64 // limits.kv_max_value_size, default 512 KiB
	TxnMaxReqLen   uint64 // limits.txn_max_req_len, default 512 KiB

	CheckUpdateInterval time.Duration // 5m
	DiscardCheckOutput  bool

	ACL ACLConfig

	// Watches are the raw watches [...] definitions.
	Watches []map[string]any

	// Services and Checks defined in config files; the raw decoded maps are
	// kept here and interpreted by the agent (health-check issue).
	Services []map[string]any
	Checks   []map[string]any

	// Files lists every config file read, in merge order.
	Files []string
}

// ACLConfig is the acl {...} block.
type ACLConfig struct {
	Enabled                bool
	DefaultPolicy          string // "allow"
	DownPolicy             string // "extend-cache"
	EnableTokenPersistence bool
	TokenTTL               time.Duration // acl.token_ttl, 30s
	PolicyTTL              time.Duration // acl.policy_ttl, 30s
	RoleTTL                time.Duration // acl.role_ttl, 30s
	Tokens                 ACLTokens
}

// ACLTokens is acl.tokens {...}.
type ACLTokens struct {
	InitialManagement string // also legacy acl_master_token / acl.tokens.master
	Agent             string
	Default           string
	AgentRecovery     string // acl.tokens.agent_recovery (legacy agent_master, acl_agent_master_token)
	Replication       string // acl.tokens.replication (legacy acl_replication_token)
}

// AutopilotConfig is the autopilot {...} block.
type AutopilotConfig struct {
	CleanupDeadServers      bool          // true
	LastContactThreshold    time.Duration // 200ms
	MaxTrailingLogs         int           // 250
	MinQuorum               int           // 0
	ServerStabilizationTime time.Duration // 10s
}

// DNSConfig is the dns_config {...} block.
type DNSConfig struct {
	AllowStale         bool          // true
	MaxStale           time.Duration // 87600h
	NodeTTL            time.Duration // 0
	ServiceTTL         map[string]time.Duration
	OnlyPassing        bool
	EnableTruncate     bool
	UDPAnswerLimit     int           // 3
	ARecordLimit       int           // 0 = no limit
	RecursorTimeout    time.Duration // 2s
	DisableCompression bool
}
