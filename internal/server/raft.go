package server

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hashicorp/raft"

	"github.com/cairn-io/cairn/internal/rpc"
)

// Base Raft timings for RaftMultiplier 1 (the agent's default is 2,
// config.DefaultRaftMultiplier; Consul's is 5 on timings 4× longer).
// A follower starts an election after between one and two heartbeat
// timeouts without hearing from the leader, and the leader sends
// heartbeats every HeartbeatTimeout/10, so a LAN cluster replaces a dead
// leader in well under 2 s: measured on loopback with 3 real server
// processes on a 2-CPU box (10 kill -9 runs, two CPU-burning processes
// beside them), at ×1 the first write through a client agent succeeded
// 0.35-0.8 s after the kill (p50 ~0.6 s); `cairn bench failover -cluster`
// measured p50 0.6 s at ×1 and 0.86 s at ×2. LeaderLeaseTimeout is below HeartbeatTimeout, as Raft requires, so
// a partitioned leader steps down before a new one can be elected. Larger
// multipliers trade failover time for tolerance of slow machines and links
// (docs/OPERATIONS.md).
const (
	baseHeartbeatTimeout   = 250 * time.Millisecond
	baseElectionTimeout    = 250 * time.Millisecond
	baseLeaderLeaseTimeout = 200 * time.Millisecond
)

// raftParts are the pieces of Raft that the server must close on shutdown.
type raftParts struct {
	raft      *raft.Raft
	transport raft.Transport
	// mux is the server port shared by Raft and the RPC server (nil with
	// the in-memory transport).
	mux     *rpc.Mux
	closers []io.Closer
	// hasState is whether Raft had a log or snapshot when it was opened.
	hasState bool
}

func (s *Server) raftConfig() *raft.Config {
	c := raft.DefaultConfig()
	id := s.cfg.NodeID
	if id == "" {
		id = s.cfg.NodeName
	}
	c.LocalID = raft.ServerID(id)
	m := time.Duration(s.cfg.RaftMultiplier)
	c.HeartbeatTimeout = baseHeartbeatTimeout * m
	c.ElectionTimeout = baseElectionTimeout * m
	c.LeaderLeaseTimeout = baseLeaderLeaseTimeout * m
	c.SnapshotThreshold = s.cfg.SnapshotThreshold
	c.SnapshotInterval = s.cfg.SnapshotInterval
	c.TrailingLogs = s.cfg.TrailingLogs
	c.NotifyCh = s.raftNotifyCh
	c.Logger = newHCLogAdapter(s.logger, "raft")
	return c
}

// openRaft builds the stores and transport and starts Raft.
func (s *Server) openRaft() (*raftParts, error) {
	conf := s.raftConfig()
	parts := &raftParts{}
	var (
		logs   raft.LogStore
		stable raft.StableStore
		snaps  raft.SnapshotStore
	)
	if s.cfg.InMemory {
		store := raft.NewInmemStore()
		logs, stable = store, store
		snaps = raft.NewInmemSnapshotStore()
	} else {
		dir := filepath.Join(s.cfg.DataDir, "raft")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("server: create raft dir: %w", err)
		}
		// The log and stable store is internal/raftlog: append-only
		// segments with one fdatasync per append batch (see its package
		// doc for why not raft-boltdb or raft-wal).
		store, err := openLogStore(dir, s.logger)
		if err != nil {
			return nil, err
		}
		parts.closers = append(parts.closers, store)
		cache, err := raft.NewLogCache(raftLogCacheSize, store)
		if err != nil {
			parts.close()
			return nil, fmt.Errorf("server: raft log cache: %w", err)
		}
		logs, stable = cache, store
		fss, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, newHCLogAdapter(s.logger, "raft.snapshot"))
		if err != nil {
			parts.close()
			return nil, fmt.Errorf("server: open raft snapshots in %s: %w", dir, err)
		}
		snaps = fss
	}
	if s.cfg.InMemory && s.cfg.RaftBindAddr == "" {
		// The in-memory transport takes the advertised address so
		// /v1/status/leader shows host:port, as in durable mode.
		_, trans := raft.NewInmemTransport(raft.ServerAddress(s.cfg.RaftAdvertise))
		parts.transport = trans
	} else if err := s.openNetworkTransport(parts); err != nil {
		parts.close()
		return nil, err
	}

	hasState, err := raft.HasExistingState(logs, stable, snaps)
	if err != nil {
		parts.close()
		return nil, fmt.Errorf("server: inspect raft state: %w", err)
	}
	parts.hasState = hasState
	if s.cfg.Bootstrap {
		if !hasState {
			cfg := raft.Configuration{Servers: []raft.Server{{
				Suffrage: raft.Voter, ID: conf.LocalID, Address: parts.transport.LocalAddr(),
			}}}
			if err := raft.BootstrapCluster(conf, logs, stable, snaps, parts.transport, cfg); err != nil &&
				!errors.Is(err, raft.ErrCantBootstrap) {
				parts.close()
				return nil, fmt.Errorf("server: bootstrap raft: %w", err)
			}
		}
	}

	r, err := raft.NewRaft(conf, s.fsm, logs, stable, snaps, parts.transport)
	if err != nil {
		parts.close()
		return nil, fmt.Errorf("server: start raft: %w", err)
	}
	parts.raft = r
	return parts, nil
}

// close closes the transport and stores (Raft must be shut down first).
func (p *raftParts) close() error {
	var errs []error
	if c, ok := p.transport.(io.Closer); ok {
		if err := c.Close(); err != nil {
			errs = append(errs, fmt.Errorf("server: close raft transport: %w", err))
		}
	}
	if p.mux != nil {
		if err := p.mux.Close(); err != nil {
			errs = append(errs, fmt.Errorf("server: close server port: %w", err))
		}
	}
	for _, c := range p.closers {
		if err := c.Close(); err != nil {
			errs = append(errs, fmt.Errorf("server: close raft store: %w", err))
		}
	}
	return errors.Join(errs...)
}

// raftLogCacheSize is how many recent log entries are kept in memory in
// front of the on-disk store, so replication to followers rarely reads disk.
const raftLogCacheSize = 512

// raftTransportTimeout bounds one Raft RPC (AppendEntries, RequestVote,
// InstallSnapshot chunks) over the network transport.
const raftTransportTimeout = 10 * time.Second

// openNetworkTransport binds the server port, puts the first-byte Mux on
// it and builds Raft's network transport over the Mux's Raft connections;
// the RPC server (Start) takes the Mux's RPC connections.
func (s *Server) openNetworkTransport(parts *raftParts) error {
	bind := s.cfg.RaftBindAddr
	if bind == "" {
		bind = DefaultRaftBindAddr
	}
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return fmt.Errorf("server: listen on server port %s: %w", bind, err)
	}
	mux := rpc.NewMux(ln, rpc.MuxConfig{Logger: s.logger.With("component", "rpc")})
	parts.mux = mux
	bound := ln.Addr().(*net.TCPAddr)
	var advertise net.Addr = bound
	if s.cfg.RaftAdvertise != "" {
		host, port, err := net.SplitHostPort(s.cfg.RaftAdvertise)
		if err != nil {
			return fmt.Errorf("server: raft advertise address %q: %w", s.cfg.RaftAdvertise, err)
		}
		if port == "0" || port == "" {
			port = strconv.Itoa(bound.Port)
		}
		a, err := net.ResolveTCPAddr("tcp", net.JoinHostPort(host, port))
		if err != nil {
			return fmt.Errorf("server: resolve raft advertise address %q: %w", s.cfg.RaftAdvertise, err)
		}
		advertise = a
	} else if bound.IP.IsUnspecified() {
		return fmt.Errorf("%w: server port bound to %s needs an advertise address", ErrInvalidConfig, bound)
	}
	layer := rpc.NewRaftLayer(advertise, mux)
	parts.transport = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  layer,
		MaxPool: 3,
		Timeout: raftTransportTimeout,
		Logger:  newHCLogAdapter(s.logger, "raft.transport"),
	})
	return nil
}
