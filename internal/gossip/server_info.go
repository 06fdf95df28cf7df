package gossip

import (
	"fmt"
	"net"
	"strconv"

	"github.com/hashicorp/serf/serf"
)

// Tag keys and values gossiped by every agent (Consul's names).
const (
	TagRole       = "role"
	TagDatacenter = "dc"
	TagPort       = "port"
	TagBuild      = "build"
	TagVsn        = "vsn"
	TagID         = "id"
	TagExpect     = "expect"
	TagBootstrap  = "bootstrap"
	TagRaftVsn    = "raft_vsn"

	// RoleServer marks a server agent, RoleClient a client agent.
	RoleServer = "consul"
	RoleClient = "node"
)

// ServerInfo is what a server advertises through its gossip tags.
type ServerInfo struct {
	// Name is the member name (on the WAN pool "node.dc").
	Name       string
	ID         string
	Datacenter string
	// Addr is the server's RPC address: the member's gossip IP and the port
	// from its port tag (a *net.TCPAddr).
	Addr        net.Addr
	Port        int
	Bootstrap   bool
	Expect      int
	Build       string
	Version     int
	RaftVersion int
	Status      serf.MemberStatus
}

// String implements fmt.Stringer.
func (s *ServerInfo) String() string {
	return fmt.Sprintf("%s (%s, dc=%s)", s.Name, s.Addr, s.Datacenter)
}

// IsServer reports whether m is a server and, if so, parses its tags. A
// member with role=consul but a missing or malformed port, expect or vsn
// tag is not a usable server and yields false.
func IsServer(m serf.Member) (*ServerInfo, bool) {
	if m.Tags[TagRole] != RoleServer {
		return nil, false
	}
	port, err := strconv.Atoi(m.Tags[TagPort])
	if err != nil || port <= 0 || port > 65535 {
		return nil, false
	}
	expect, ok := optionalInt(m.Tags, TagExpect)
	if !ok {
		return nil, false
	}
	vsn, ok := optionalInt(m.Tags, TagVsn)
	if !ok {
		return nil, false
	}
	raftVsn, ok := optionalInt(m.Tags, TagRaftVsn)
	if !ok {
		return nil, false
	}
	ip := append(net.IP(nil), m.Addr...)
	return &ServerInfo{
		Name:        m.Name,
		ID:          m.Tags[TagID],
		Datacenter:  m.Tags[TagDatacenter],
		Addr:        &net.TCPAddr{IP: ip, Port: port},
		Port:        port,
		Bootstrap:   m.Tags[TagBootstrap] == "1",
		Expect:      expect,
		Build:       m.Tags[TagBuild],
		Version:     vsn,
		RaftVersion: raftVsn,
		Status:      m.Status,
	}, true
}

// optionalInt parses tags[key] as a non-negative int; a missing tag is 0.
func optionalInt(tags map[string]string, key string) (int, bool) {
	s, ok := tags[key]
	if !ok || s == "" {
		return 0, true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}
