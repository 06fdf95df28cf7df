package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"

	"github.com/hashicorp/serf/serf"

	"github.com/cairn-io/cairn/internal/gossip"
	"github.com/cairn-io/cairn/internal/httpapi"
	"github.com/cairn-io/cairn/internal/version"
)

var _ httpapi.ClusterBackend = (*Agent)(nil)

// ErrNoGossip is returned by cluster operations on an agent whose gossip
// pool is disabled (serf port -1).
var ErrNoGossip = errors.New("agent: gossip is disabled")

// isServer reports whether this agent runs a server.
func (a *Agent) isServer() bool { return a.cfg.Server || a.cfg.Dev }

// gossipTags are the tags this agent gossips (Consul's names).
func (a *Agent) gossipTags() map[string]string {
	cfg := a.cfg
	tags := map[string]string{
		gossip.TagRole:       gossip.RoleClient,
		gossip.TagDatacenter: cfg.Datacenter,
		"segment":            "",
		gossip.TagID:         a.nodeID,
		gossip.TagVsn:        "2",
		"vsn_min":            "2",
		"vsn_max":            "3",
		gossip.TagBuild:      a.versionString() + ":" + version.GitCommit,
		gossip.TagRaftVsn:    "3",
	}
	if a.isServer() {
		tags[gossip.TagRole] = gossip.RoleServer
		tags[gossip.TagPort] = strconv.Itoa(a.serverPort())
		if cfg.Bootstrap || cfg.Dev {
			tags[gossip.TagBootstrap] = "1"
		}
		if cfg.BootstrapExpect > 0 {
			tags[gossip.TagExpect] = strconv.Itoa(cfg.BootstrapExpect)
		}
	}
	return tags
}

// serverPort is the bound server port (the configured one before Start).
func (a *Agent) serverPort() int {
	if a.srv != nil {
		if _, p, err := net.SplitHostPort(a.srv.RPCAddr()); err == nil {
			if n, err := strconv.Atoi(p); err == nil && n > 0 {
				return n
			}
		}
	}
	return max(a.cfg.PortServer, 0)
}

// startGossip starts the LAN pool (and the WAN pool on servers), connects
// the server to the LAN membership and joins start_join (failing the start
// if none of those addresses can be joined, as Consul does). retry_join
// runs in the background.
func (a *Agent) startGossip() error {
	cfg := a.cfg
	bind := cfg.BindAddr
	if bind == "" {
		bind = "0.0.0.0"
	}
	adv := advertiseAddr(cfg)
	tags := a.gossipTags()
	if cfg.PortSerfLAN >= 0 {
		lc := gossip.Config{
			NodeName:         cfg.NodeName,
			Datacenter:       cfg.Datacenter,
			BindAddr:         bind,
			BindPort:         cfg.PortSerfLAN,
			AdvertiseAddr:    adv,
			Tags:             tags,
			RejoinAfterLeave: cfg.RejoinAfterLeave,
			ReconnectTimeout: cfg.ReconnectTimeout,
			Logger:           a.logger.With("component", "gossip"),
		}
		if !cfg.Dev && cfg.DataDir != "" {
			lc.SnapshotPath = filepath.Join(cfg.DataDir, "serf", "local.snapshot")
		}
		if a.gossipTune != nil {
			lc.Tune = a.gossipTune
		}
		pool, err := gossip.New(lc)
		if err != nil {
			return fmt.Errorf("agent: lan gossip: %w", err)
		}
		if err := pool.Start(); err != nil {
			return fmt.Errorf("agent: lan gossip: %w", err)
		}
		a.lan = pool
		if a.srv != nil {
			a.srv.SetLANMembers(pool.Members)
			a.srv.MembershipChanged()
		}
		a.wg.Add(2)
		go a.memberLoop(pool)
		go a.userEventLoop(pool) // event.go
	}
	if a.lan == nil && !a.isServer() {
		a.logger.Warn("client agent without LAN gossip (ports.serf_lan = -1) cannot find any server")
	}
	if a.isServer() && cfg.PortSerfWAN >= 0 {
		advWAN := cfg.AdvertiseAddrWAN
		if advWAN == "" {
			advWAN = adv
		}
		wc := gossip.Config{
			NodeName:         cfg.NodeName + "." + cfg.Datacenter,
			Datacenter:       cfg.Datacenter,
			BindAddr:         bind,
			BindPort:         cfg.PortSerfWAN,
			AdvertiseAddr:    advWAN,
			WAN:              true,
			Tags:             tags,
			RejoinAfterLeave: cfg.RejoinAfterLeave,
			ReconnectTimeout: cfg.ReconnectTimeout,
			Logger:           a.logger.With("component", "gossip"),
		}
		if !cfg.Dev && cfg.DataDir != "" {
			wc.SnapshotPath = filepath.Join(cfg.DataDir, "serf", "remote.snapshot")
		}
		pool, err := gossip.New(wc)
		if err != nil {
			return fmt.Errorf("agent: wan gossip: %w", err)
		}
		if err := pool.Start(); err != nil {
			return fmt.Errorf("agent: wan gossip: %w", err)
		}
		a.wan = pool
		a.wg.Add(1)
		go a.drainEvents(pool)
	}

	if len(cfg.StartJoin) > 0 {
		if a.lan == nil {
			return fmt.Errorf("%w: start_join needs the LAN gossip pool (ports.serf_lan)", ErrInvalidOptions)
		}
		n, err := a.lan.Join(cfg.StartJoin, true)
		if n == 0 {
			return fmt.Errorf("agent: join %v at start: %w", cfg.StartJoin, err)
		}
		a.logger.Info("joined the cluster", "addrs", cfg.StartJoin, "joined", n)
	}
	if len(cfg.RetryJoin) > 0 && a.lan != nil {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			err := gossip.RetryJoin(a.stopCtx, a.lan, cfg.RetryJoin, cfg.RetryInterval, cfg.RetryMax,
				a.logger.With("component", "gossip"))
			if err != nil && a.stopCtx.Err() == nil {
				a.logger.Error("retry join gave up", "error", err)
			}
		}()
	}
	return nil
}

// memberLoop tells the server about LAN member events until shutdown.
func (a *Agent) memberLoop(pool *gossip.Pool) {
	defer a.wg.Done()
	events := pool.Events()
	for {
		select {
		case <-a.stopCh:
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			a.logger.Debug("lan member event", "event", ev.Type.String(), "member", ev.Member.Name,
				"status", ev.Member.Status.String())
			if a.srv != nil {
				a.srv.MembershipChanged()
			}
			if ev.Type == serf.EventMemberFailed || ev.Type == serf.EventMemberLeave {
				if info, ok := gossip.IsServer(ev.Member); ok {
					// Calls in flight to it would otherwise wait for their
					// RPC timeout (a partitioned server never answers).
					if a.rpcPool != nil {
						a.rpcPool.Remove(info.Addr)
					}
					if a.srv != nil {
						a.srv.DropConnections(info.Addr)
					}
				}
			}
		}
	}
}

// drainEvents discards a pool's events (the WAN pool's, until federation
// needs them) so its queue does not log drops.
func (a *Agent) drainEvents(pool *gossip.Pool) {
	defer a.wg.Done()
	events := pool.Events()
	for {
		select {
		case <-a.stopCh:
			return
		case _, ok := <-events:
			if !ok {
				return
			}
		}
	}
}

// pool returns the LAN or WAN pool (nil when disabled or not started).
func (a *Agent) pool(wan bool) *gossip.Pool {
	if wan {
		return a.wan
	}
	return a.lan
}

// Join joins the LAN (or WAN) pool through the given addresses and returns
// how many were contacted.
func (a *Agent) Join(addrs []string, wan bool) (int, error) {
	p := a.pool(wan)
	if p == nil {
		return 0, ErrNoGossip
	}
	n, err := p.Join(addrs, true)
	if n > 0 {
		return n, nil
	}
	return 0, err
}

// ForceLeave moves a failed member of the LAN pool (and of the WAN pool on
// servers, where it is named node.dc) to left; with prune it is forgotten
// at once. wanOnly leaves the LAN pool alone.
func (a *Agent) ForceLeave(node string, prune, wanOnly bool) error {
	if wanOnly {
		if a.wan == nil {
			return ErrNoGossip
		}
		return a.wan.ForceLeave(node, prune)
	}
	if a.lan == nil {
		return ErrNoGossip
	}
	err := a.lan.ForceLeave(node, prune)
	if a.wan != nil {
		_ = a.wan.ForceLeave(node+"."+a.cfg.Datacenter, prune)
	}
	return err
}

// Members returns the gossip members of the LAN (or WAN) pool. Without a
// running pool it is this agent alone.
func (a *Agent) Members(wan bool) []httpapi.Member {
	if wan && !a.isServer() {
		return []httpapi.Member{}
	}
	p := a.pool(wan)
	if p == nil {
		return []httpapi.Member{a.member(wan)}
	}
	ms := p.Members()
	if ms == nil {
		return []httpapi.Member{a.member(wan)}
	}
	out := make([]httpapi.Member, 0, len(ms))
	for _, m := range ms {
		out = append(out, toMember(m))
	}
	return out
}

func toMember(m serf.Member) httpapi.Member {
	tags := make(map[string]string, len(m.Tags))
	for k, v := range m.Tags {
		tags[k] = v
	}
	return httpapi.Member{
		Name: m.Name, Addr: m.Addr.String(), Port: m.Port, Tags: tags, Status: int(m.Status),
		ProtocolMin: m.ProtocolMin, ProtocolMax: m.ProtocolMax, ProtocolCur: m.ProtocolCur,
		DelegateMin: m.DelegateMin, DelegateMax: m.DelegateMax, DelegateCur: m.DelegateCur,
	}
}

// leaveGossip leaves the LAN and WAN pools gracefully.
func (a *Agent) leaveGossip() error {
	var errs []error
	for _, p := range []*gossip.Pool{a.lan, a.wan} {
		if p == nil {
			continue
		}
		if err := p.Leave(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// shutdownGossip stops the pools without leaving.
func (a *Agent) shutdownGossip() error {
	var errs []error
	for _, p := range []*gossip.Pool{a.lan, a.wan} {
		if p == nil {
			continue
		}
		if err := p.Shutdown(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// leave leaves the cluster: for a server, Raft first (server.Leave), with
// the gossip leave in the middle; for a client, gossip only.
func (a *Agent) leave(ctx context.Context) error {
	if a.srv != nil {
		return a.srv.Leave(ctx, a.leaveGossip)
	}
	return a.leaveGossip()
}
