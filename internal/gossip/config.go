package gossip

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
)

// Default ports of the two pools (Consul's).
const (
	DefaultLANPort = 8301
	DefaultWANPort = 8302
)

// DefaultReconnectTimeout is how long a failed member is kept (and retried)
// before it is reaped.
const DefaultReconnectTimeout = 72 * time.Hour

// DefaultEventBuffer is the capacity of the Events and UserEvents channels.
const DefaultEventBuffer = 1024

// Sentinel errors.
var (
	ErrInvalidConfig = errors.New("gossip: invalid config")
	ErrNotStarted    = errors.New("gossip: pool not started")
	ErrShutdown      = errors.New("gossip: pool shut down")
	ErrNoJoin        = errors.New("gossip: could not join any address")
)

// Config configures one gossip pool.
type Config struct {
	// NodeName is this member's name in the pool. On the WAN pool Consul
	// names servers "node.datacenter".
	NodeName   string
	Datacenter string

	// BindAddr/BindPort is where memberlist listens (TCP and UDP). Port 0
	// picks a free port; Pool.Addr reports it after Start.
	BindAddr string
	BindPort int
	// AdvertiseAddr/AdvertisePort is what other members dial; empty/0 means
	// the bind address.
	AdvertiseAddr string
	AdvertisePort int

	// WAN selects memberlist's WAN timing (long probe intervals); otherwise
	// the LAN timing below is used.
	WAN bool

	// Tags are gossiped with the member: role ("consul" for servers, "node"
	// for clients), dc, port (server RPC port), build, vsn, id, expect,
	// bootstrap. The dc tag defaults to Datacenter.
	Tags map[string]string

	// SnapshotPath is serf's snapshot file, used to rejoin known members
	// after a restart. Empty disables snapshots (dev mode).
	SnapshotPath string

	// EncryptKey enables gossip encryption (16, 24 or 32 bytes). Nil is off.
	EncryptKey []byte

	// RejoinAfterLeave lets a member that left rejoin from its snapshot.
	RejoinAfterLeave bool

	// ReconnectTimeout is how long a failed member is remembered before it
	// is reaped. Zero means DefaultReconnectTimeout.
	ReconnectTimeout time.Duration

	// EventBuffer is the capacity of the Events and UserEvents channels;
	// zero means DefaultEventBuffer.
	EventBuffer int

	// Tune, when set, is called with the finished serf configuration
	// (memberlist's included) just before serf is created. Tests use it to
	// shorten reap intervals; production code should not need it.
	Tune func(*serf.Config)

	Logger *slog.Logger
}

// Validate reports the first problem with the configuration.
func (c *Config) Validate() error {
	if c.NodeName == "" {
		return fmt.Errorf("%w: node name is required", ErrInvalidConfig)
	}
	if c.BindPort < 0 || c.BindPort > 65535 {
		return fmt.Errorf("%w: bind port %d out of range", ErrInvalidConfig, c.BindPort)
	}
	if c.AdvertisePort < 0 || c.AdvertisePort > 65535 {
		return fmt.Errorf("%w: advertise port %d out of range", ErrInvalidConfig, c.AdvertisePort)
	}
	switch len(c.EncryptKey) {
	case 0, 16, 24, 32:
	default:
		return fmt.Errorf("%w: encrypt key must be 16, 24 or 32 bytes, got %d", ErrInvalidConfig, len(c.EncryptKey))
	}
	if c.ReconnectTimeout < 0 {
		return fmt.Errorf("%w: negative reconnect timeout %s", ErrInvalidConfig, c.ReconnectTimeout)
	}
	if c.EventBuffer < 0 {
		return fmt.Errorf("%w: negative event buffer %d", ErrInvalidConfig, c.EventBuffer)
	}
	return nil
}

// LANMemberlistConfig returns memberlist's LAN preset tuned so that a dead
// member is declared failed in about 2-3 s on a LAN: probes every 500 ms
// and a suspicion period of 3 probe intervals (Lifeguard still stretches it
// when the local node is slow, and shortens it as other members confirm).
func LANMemberlistConfig() *memberlist.Config {
	c := memberlist.DefaultLANConfig()
	c.ProbeInterval = 500 * time.Millisecond
	c.ProbeTimeout = 250 * time.Millisecond
	c.SuspicionMult = 3
	c.SuspicionMaxTimeoutMult = 4
	c.GossipInterval = 100 * time.Millisecond
	c.DeadNodeReclaimTime = 30 * time.Second
	return c
}

// WANMemberlistConfig returns memberlist's WAN preset.
func WANMemberlistConfig() *memberlist.Config {
	c := memberlist.DefaultWANConfig()
	c.DeadNodeReclaimTime = 30 * time.Second
	return c
}

// serfConfig builds serf's configuration from c. eventCh receives serf's
// events.
func (c *Config) serfConfig(eventCh chan serf.Event, logger *slog.Logger) *serf.Config {
	conf := serf.DefaultConfig()
	conf.NodeName = c.NodeName
	conf.Tags = make(map[string]string, len(c.Tags)+1)
	for k, v := range c.Tags {
		conf.Tags[k] = v
	}
	if _, ok := conf.Tags[TagDatacenter]; !ok && c.Datacenter != "" {
		conf.Tags[TagDatacenter] = c.Datacenter
	}
	conf.EventCh = eventCh
	conf.SnapshotPath = c.SnapshotPath
	conf.RejoinAfterLeave = c.RejoinAfterLeave
	conf.ReconnectTimeout = c.ReconnectTimeout
	if conf.ReconnectTimeout == 0 {
		conf.ReconnectTimeout = DefaultReconnectTimeout
	}
	conf.LogOutput = nil
	conf.Logger = newStdLogger(logger)

	var ml *memberlist.Config
	if c.WAN {
		ml = WANMemberlistConfig()
	} else {
		ml = LANMemberlistConfig()
	}
	ml.Name = c.NodeName
	ml.BindAddr = c.BindAddr
	if ml.BindAddr == "" {
		ml.BindAddr = "0.0.0.0"
	}
	ml.BindPort = c.BindPort
	ml.AdvertiseAddr = c.AdvertiseAddr
	ml.AdvertisePort = c.AdvertisePort
	if ml.AdvertisePort == 0 {
		ml.AdvertisePort = c.BindPort
	}
	if len(c.EncryptKey) > 0 {
		ml.SecretKey = append([]byte(nil), c.EncryptKey...)
	}
	ml.LogOutput = nil
	ml.Logger = conf.Logger
	conf.MemberlistConfig = ml

	if c.Tune != nil {
		c.Tune(conf)
	}
	return conf
}
