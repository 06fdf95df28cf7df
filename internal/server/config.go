package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"
)

// Defaults applied by New.
const (
	DefaultKVMaxValueSize    = 512 * 1024
	DefaultSnapshotThreshold = 16384
	DefaultSnapshotInterval  = 30 * time.Second
	DefaultTrailingLogs      = 10240
	DefaultRaftBindAddr      = "127.0.0.1:8300"
	// DefaultRPCHoldTimeout is Consul's performance.rpc_hold_timeout.
	DefaultRPCHoldTimeout = 7 * time.Second
)

// ErrInvalidConfig wraps every configuration validation failure.
var ErrInvalidConfig = errors.New("server: invalid config")

// Config configures a Server.
type Config struct {
	NodeName, NodeID, Datacenter string

	// DataDir holds the Raft log and snapshots (DataDir/raft); required
	// unless InMemory.
	DataDir string
	// InMemory keeps Raft's log, stable store and snapshots in memory and
	// uses an in-memory transport (-dev).
	InMemory bool
	// Bootstrap makes this server the single voter of a new cluster when
	// its Raft state is empty.
	Bootstrap bool

	// BootstrapExpect > 1 makes this server wait until that many servers
	// of its datacenter are known through gossip (SetLANMembers) and then
	// bootstrap Raft with all of them, unless one of them already has Raft
	// state (membership.go).
	BootstrapExpect int
	// RPCHoldTimeout is how long a request that needs the leader waits for
	// one (during an election) before failing with rpc.ErrNoLeader
	// (default DefaultRPCHoldTimeout).
	RPCHoldTimeout time.Duration

	// RaftMultiplier (1..10) scales Raft's timeouts (raft.go); 0 means 1,
	// the fastest. The agent passes performance.raft_multiplier, 2 unless
	// configured (config.DefaultRaftMultiplier).
	RaftMultiplier int
	// RaftBindAddr is the server port's listen address: Raft and the
	// internal RPC share it (rpc.Mux). It defaults to DefaultRaftBindAddr
	// unless InMemory; an InMemory server with no RaftBindAddr uses an
	// in-memory Raft transport and serves no network RPC. RaftAdvertise is
	// the address other servers dial (defaults to the listener's address;
	// a port of 0 is replaced by the bound port).
	RaftBindAddr  string
	RaftAdvertise string

	// NodeAddress, TaggedAddresses and NodeMeta describe this node in the
	// catalog; ServerPort is the port of its "consul" service.
	NodeAddress     string
	TaggedAddresses map[string]string
	NodeMeta        map[string]string
	ServerPort      int

	// KVMaxValueSize limits KV values (default 512 KiB); larger values are
	// rejected with an error wrapping rpc.ErrTooLarge.
	KVMaxValueSize uint64
	// SnapshotThreshold and SnapshotInterval configure Raft snapshots:
	// every SnapshotInterval (with jitter) Raft snapshots the FSM when at
	// least SnapshotThreshold entries were applied since the last one.
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	// TrailingLogs is how many log entries Raft keeps after a snapshot
	// (log compaction), so slow followers can catch up without a full
	// snapshot (default DefaultTrailingLogs).
	TrailingLogs uint64
	// SessionTTLMin is the shortest session TTL accepted (session_ttl_min,
	// default SessionTTLMin; at most SessionTTLMax).
	SessionTTLMin time.Duration

	Logger *slog.Logger
}

// withDefaults returns a validated copy of c with defaults filled in.
func (c Config) withDefaults() (Config, error) {
	if c.NodeName == "" {
		return c, fmt.Errorf("%w: node name is required", ErrInvalidConfig)
	}
	if c.Datacenter == "" {
		return c, fmt.Errorf("%w: datacenter is required", ErrInvalidConfig)
	}
	if !c.InMemory && c.DataDir == "" {
		return c, fmt.Errorf("%w: data dir is required unless running in memory", ErrInvalidConfig)
	}
	if c.RaftMultiplier == 0 {
		c.RaftMultiplier = 1
	}
	if c.SessionTTLMin == 0 {
		c.SessionTTLMin = SessionTTLMin
	}
	if c.SessionTTLMin < 0 || c.SessionTTLMin > SessionTTLMax {
		return c, fmt.Errorf("%w: session TTL minimum %v is outside 0..%v", ErrInvalidConfig, c.SessionTTLMin, SessionTTLMax)
	}
	if c.RaftMultiplier < 1 || c.RaftMultiplier > 10 {
		return c, fmt.Errorf("%w: raft multiplier %d is outside 1..10", ErrInvalidConfig, c.RaftMultiplier)
	}
	if !c.InMemory {
		if c.RaftBindAddr == "" {
			c.RaftBindAddr = DefaultRaftBindAddr
		}
		if _, _, err := net.SplitHostPort(c.RaftBindAddr); err != nil {
			return c, fmt.Errorf("%w: raft bind address %q: %v", ErrInvalidConfig, c.RaftBindAddr, err)
		}
		if c.RaftAdvertise != "" {
			if _, _, err := net.SplitHostPort(c.RaftAdvertise); err != nil {
				return c, fmt.Errorf("%w: raft advertise address %q: %v", ErrInvalidConfig, c.RaftAdvertise, err)
			}
		}
	}
	if c.RaftBindAddr != "" {
		if _, _, err := net.SplitHostPort(c.RaftBindAddr); err != nil {
			return c, fmt.Errorf("%w: raft bind address %q: %v", ErrInvalidConfig, c.RaftBindAddr, err)
		}
	}
	if c.BootstrapExpect < 0 {
		return c, fmt.Errorf("%w: bootstrap_expect %d is negative", ErrInvalidConfig, c.BootstrapExpect)
	}
	if c.RPCHoldTimeout < 0 {
		return c, fmt.Errorf("%w: rpc_hold_timeout %s is negative", ErrInvalidConfig, c.RPCHoldTimeout)
	}
	if c.RPCHoldTimeout == 0 {
		c.RPCHoldTimeout = DefaultRPCHoldTimeout
	}
	if c.NodeAddress == "" {
		c.NodeAddress = "127.0.0.1"
	}
	if c.KVMaxValueSize == 0 {
		c.KVMaxValueSize = DefaultKVMaxValueSize
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = DefaultSnapshotThreshold
	}
	if c.SnapshotInterval == 0 {
		c.SnapshotInterval = DefaultSnapshotInterval
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = DefaultTrailingLogs
	}
	if c.SnapshotInterval < 0 {
		return c, fmt.Errorf("%w: snapshot interval %s is negative", ErrInvalidConfig, c.SnapshotInterval)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}
