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

	BindAddr      string // default "0.0.0.0" ("127.0.0.1" in dev)
	ClientAddr    string // default "127.0.0.1"; for HTTP and DNS
	AdvertiseAddr string // default: BindAddr if not 0.0.0.0, else first private IP (127.0.0.1 in dev)
	AdvertiseAddrWAN string

	// Addresses per listener override ClientAddr (addresses.http, addresses.dns).
	AddrHTTP string
	AddrDNS  string

	// Ports; -1 disables a listener.
	PortHTTP    int // 8500
	PortHTTPS   int // -1
	PortDNS     int // 8600
	PortSerfLAN int // 8301
	PortSerfWAN int // 8302
	PortServer  int // 8300
	PortGRPC    int // -1 (8502 in dev)

	RetryJoin     []string
	RetryInterval time.Duration // 30s
	StartJoin     []string

	LogLevel string // trace|debug|info|warn|error, default "info"
	LogJSON  bool

	NodeMeta map[string]string

	RaftMultiplier int // performance.raft_multiplier, default set by config package

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
	Tokens                 ACLTokens
}

// ACLTokens is acl.tokens {...}.
type ACLTokens struct {
	InitialManagement string // also legacy acl_master_token / acl.tokens.master
	Agent             string
	Default           string
}
