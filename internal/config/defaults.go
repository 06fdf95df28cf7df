package config

import (
	"maps"
	"os"
	"slices"
	"time"
)

// Default ports (Consul's).
const (
	DefaultPortHTTP    = 8500
	DefaultPortDNS     = 8600
	DefaultPortSerfLAN = 8301
	DefaultPortSerfWAN = 8302
	DefaultPortServer  = 8300
	DevPortGRPC        = 8502
)

// DefaultRaftMultiplier is Cairn's default performance.raft_multiplier.
// Consul defaults to 5 and tells production users to set 1. Cairn's base
// Raft timings are 4× tighter than Consul's: at 2 the heartbeat timeout is
// 500 ms and the leader lease 400 ms, a leader failover takes about 0.9 s
// on a LAN (etcd's defaults: about 2 s), and a 10,000-watcher fan-out on a
// 2-CPU host no longer makes the leader step down, as it did in every run
// at 1 (docs/OPERATIONS.md). 1 remains for fast, uncrowded hosts. Valid
// values are 1..10 (higher = slower, more tolerant).
const DefaultRaftMultiplier = 2

// DefaultConfig returns the configuration an agent starts from before any
// file or flag is applied. NodeName is the host name (empty if it cannot be
// read; Validate then reports it). LeaveOnTerminate and SkipLeaveOnInterrupt
// are decided by Load from Server unless a source sets them.
func DefaultConfig() *RuntimeConfig {
	hostname, _ := os.Hostname()
	return &RuntimeConfig{
		NodeName:   hostname,
		Datacenter: "dc1",

		BindAddr:   "0.0.0.0",
		ClientAddr: "127.0.0.1",

		PortHTTP:    DefaultPortHTTP,
		PortHTTPS:   -1,
		PortDNS:     DefaultPortDNS,
		PortSerfLAN: DefaultPortSerfLAN,
		PortSerfWAN: DefaultPortSerfWAN,
		PortServer:  DefaultPortServer,
		PortGRPC:    -1,
		PortGRPCTLS: -1,

		RetryInterval: 30 * time.Second,

		LogLevel: "info",

		RaftMultiplier: DefaultRaftMultiplier,
		LeaveDrainTime: 5 * time.Second,
		RPCHoldTimeout: 7 * time.Second,

		RaftProtocol:          3,
		RaftSnapshotThreshold: 16384,
		RaftSnapshotInterval:  30 * time.Second,
		RaftTrailingLogs:      10240,
		ReconnectTimeout:      72 * time.Hour,
		DisableHostNodeID:     true,

		Autopilot: AutopilotConfig{
			CleanupDeadServers:      true,
			LastContactThreshold:    200 * time.Millisecond,
			MaxTrailingLogs:         250,
			ServerStabilizationTime: 10 * time.Second,
		},

		Domain: "consul.",
		DNS: DNSConfig{
			AllowStale:      true,
			MaxStale:        87600 * time.Hour,
			UDPAnswerLimit:  3,
			RecursorTimeout: 2 * time.Second,
		},

		HTTPMaxConnsPerClient: 200,
		DefaultQueryTime:      300 * time.Second,
		MaxQueryTime:          600 * time.Second,
		SessionTTLMin:         10 * time.Second,

		KVMaxValueSize: 512 * 1024,
		TxnMaxReqLen:   512 * 1024,

		CheckUpdateInterval: 5 * time.Minute,

		ACL: ACLConfig{
			DefaultPolicy: "allow",
			DownPolicy:    "extend-cache",
			TokenTTL:      30 * time.Second,
			PolicyTTL:     30 * time.Second,
			RoleTTL:       30 * time.Second,
		},
	}
}

// DevConfig is DefaultConfig for `agent -dev`: a single in-memory server
// that bootstraps itself, listens on 127.0.0.1 only, and has the UI, gRPC and
// debug endpoints on. No data_dir is needed.
func DevConfig() *RuntimeConfig {
	c := DefaultConfig()
	c.Dev = true
	c.Server = true
	c.Bootstrap = true
	c.BindAddr = "127.0.0.1"
	c.ClientAddr = "127.0.0.1"
	c.AdvertiseAddr = "127.0.0.1"
	c.PortGRPC = DevPortGRPC
	c.EnableDebug = true
	c.DisableUpdateCheck = true
	c.UIEnabled = true
	// One in-memory server: no follower can miss a heartbeat and no
	// leader can be lost, so the fastest timing only shortens its first
	// election.
	c.RaftMultiplier = 1
	return c
}

// Clone returns a deep copy of c (slices, maps and raw service/check
// definitions are copied, so the copy can be changed freely).
func (c *RuntimeConfig) Clone() *RuntimeConfig {
	out := *c
	out.RetryJoin = slices.Clone(c.RetryJoin)
	out.StartJoin = slices.Clone(c.StartJoin)
	out.Recursors = slices.Clone(c.Recursors)
	out.Files = slices.Clone(c.Files)
	out.NodeMeta = maps.Clone(c.NodeMeta)
	out.DNS.ServiceTTL = maps.Clone(c.DNS.ServiceTTL)
	out.Services = cloneDefs(c.Services)
	out.Checks = cloneDefs(c.Checks)
	out.Watches = cloneDefs(c.Watches)
	return &out
}

func cloneDefs(in []map[string]any) []map[string]any {
	if in == nil {
		return nil
	}
	out := make([]map[string]any, len(in))
	for i, m := range in {
		out[i], _ = cloneValue(m).(map[string]any)
	}
	return out
}

func cloneValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = cloneValue(e)
		}
		return m
	case []any:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = cloneValue(e)
		}
		return l
	default:
		return v
	}
}
