package agent

import (
	"runtime"
	"strconv"
	"time"

	"github.com/cairn-io/cairn/internal/httpapi"
	"github.com/cairn-io/cairn/internal/version"
)

// Serf's protocol numbers as Consul reports them in member listings.
const (
	protocolMin, protocolMax, protocolCur = 1, 5, 2
	delegateMin, delegateMax, delegateCur = 2, 5, 4
)

func (a *Agent) versionString() string {
	if a.opts.Version != "" {
		return a.opts.Version
	}
	return version.Human()
}

// member returns this agent as a LAN (or WAN) gossip member: its pool's
// own entry, or a synthetic one when the pool is disabled.
func (a *Agent) member(wan bool) httpapi.Member {
	if p := a.pool(wan); p != nil {
		if lm := p.LocalMember(); lm.Name != "" {
			return toMember(lm)
		}
	}
	cfg := a.cfg
	tags := a.gossipTags()
	name, port := cfg.NodeName, cfg.PortSerfLAN
	addr := advertiseAddr(cfg)
	if wan {
		name = cfg.NodeName + "." + cfg.Datacenter
		port = cfg.PortSerfWAN
		if cfg.AdvertiseAddrWAN != "" {
			addr = cfg.AdvertiseAddrWAN
		}
	}
	if port < 0 {
		port = 0
	}
	return httpapi.Member{
		Name:        name,
		Addr:        addr,
		Port:        uint16(port),
		Tags:        tags,
		Status:      1,
		ProtocolMin: protocolMin, ProtocolMax: protocolMax, ProtocolCur: protocolCur,
		DelegateMin: delegateMin, DelegateMax: delegateMax, DelegateCur: delegateCur,
	}
}

// Self returns the body of /v1/agent/self. The official client reads
// Config.NodeName / Config.Datacenter / Member; `consul info` reads Stats as
// sections of string values.
func (a *Agent) Self() map[string]any {
	cfg := a.cfg
	a.mu.Lock()
	meta := make(map[string]string, len(a.nodeMeta))
	for k, v := range a.nodeMeta {
		meta[k] = v
	}
	a.mu.Unlock()
	return map[string]any{
		"Config": map[string]any{
			"Datacenter":        cfg.Datacenter,
			"PrimaryDatacenter": cfg.Datacenter,
			"NodeName":          cfg.NodeName,
			"NodeID":            a.nodeID,
			"Partition":         "",
			"Revision":          version.GitCommit,
			"Server":            cfg.Server || cfg.Dev,
			"Version":           a.versionString(),
			"BuildDate":         version.BuildDate,
		},
		"DebugConfig": a.debugConfig(),
		"Member":      a.member(false),
		"Meta":        meta,
		"Stats":       a.stats(),
	}
}

// debugConfig is a sanitized subset of the runtime config (no tokens).
func (a *Agent) debugConfig() map[string]any {
	cfg := a.cfg
	return map[string]any{
		"Datacenter":              cfg.Datacenter,
		"PrimaryDatacenter":       cfg.Datacenter,
		"NodeName":                cfg.NodeName,
		"NodeID":                  a.nodeID,
		"NodeMeta":                cfg.NodeMeta,
		"DataDir":                 cfg.DataDir,
		"DevMode":                 cfg.Dev,
		"ServerMode":              cfg.Server || cfg.Dev,
		"Bootstrap":               cfg.Bootstrap,
		"BootstrapExpect":         cfg.BootstrapExpect,
		"BindAddr":                cfg.BindAddr,
		"ClientAddrs":             []string{cfg.ClientAddr},
		"AdvertiseAddrLAN":        advertiseAddr(cfg),
		"AdvertiseAddrWAN":        cfg.AdvertiseAddrWAN,
		"HTTPPort":                cfg.PortHTTP,
		"HTTPSPort":               cfg.PortHTTPS,
		"DNSPort":                 cfg.PortDNS,
		"SerfPortLAN":             cfg.PortSerfLAN,
		"SerfPortWAN":             cfg.PortSerfWAN,
		"ServerPort":              cfg.PortServer,
		"GRPCPort":                cfg.PortGRPC,
		"RetryJoinLAN":            cfg.RetryJoin,
		"LogLevel":                cfg.LogLevel,
		"LogJSON":                 cfg.LogJSON,
		"EnableScriptChecks":      cfg.EnableScriptChecks,
		"EnableLocalScriptChecks": cfg.EnableLocalScriptChecks,
		"EnableDebug":             cfg.EnableDebug,
		"CheckUpdateInterval":     cfg.CheckUpdateInterval.String(),
		"DiscardCheckOutput":      cfg.DiscardCheckOutput,
		"KVMaxValueSize":          cfg.KVMaxValueSize,
		"TxnMaxReqLen":            cfg.TxnMaxReqLen,
		"RaftMultiplier":          cfg.RaftMultiplier,
		"ACLsEnabled":             cfg.ACL.Enabled,
		"ACLDefaultPolicy":        cfg.ACL.DefaultPolicy,
		"ACLDownPolicy":           cfg.ACL.DownPolicy,
		"Version":                 a.versionString(),
	}
}

// stats returns Consul's `consul info` sections; every value is a string.
func (a *Agent) stats() map[string]map[string]string {
	svcs, chks := a.Services(), a.Checks()
	a.mu.Lock()
	ttls := 0
	for id, r := range a.runners {
		if _, ok := chks[id]; ok && r != nil {
			if chks[id].Type == "ttl" {
				ttls++
			}
		}
	}
	a.mu.Unlock()
	leader, leaderAddr := "false", ""
	if a.srv != nil {
		leader = strconv.FormatBool(a.srv.IsLeader())
		leaderAddr = a.srv.Leader()
	}
	return map[string]map[string]string{
		"agent": {
			"check_monitors": "0",
			"check_ttls":     strconv.Itoa(ttls),
			"checks":         strconv.Itoa(len(chks)),
			"services":       strconv.Itoa(len(svcs)),
		},
		"build": {
			"prerelease": version.VersionPrerelease,
			"revision":   version.GitCommit,
			"version":    version.Version,
		},
		"consul": {
			"bootstrap":         strconv.FormatBool(a.cfg.Bootstrap || a.cfg.Dev),
			"known_datacenters": "1",
			"leader":            leader,
			"leader_addr":       leaderAddr,
			"server":            strconv.FormatBool(a.cfg.Server || a.cfg.Dev),
		},
		"runtime": {
			"arch":       runtime.GOARCH,
			"os":         runtime.GOOS,
			"version":    runtime.Version(),
			"cpu_count":  strconv.Itoa(runtime.NumCPU()),
			"goroutines": strconv.Itoa(runtime.NumGoroutine()),
			"max_procs":  strconv.Itoa(runtime.GOMAXPROCS(0)),
		},
		"serf_lan": {
			"members": "1",
			"failed":  "0",
			"left":    "0",
		},
	}
}

// uptime is used by Host.
func (a *Agent) uptime() time.Duration {
	if a.started.IsZero() {
		return 0
	}
	return time.Since(a.started)
}
