package httpapi

import (
	"github.com/cairn-io/cairn/internal/local"
	"github.com/cairn-io/cairn/internal/state"
)

// AgentBackend is what the /v1/agent/* endpoints need from the agent they run
// in. The agent package implements it; the HTTP layer never sees the concrete
// agent. Methods must be safe for concurrent use and must not block on the
// network for longer than a request should (registration returns once the
// local state has the entry; anti-entropy syncs it to the catalog).
type AgentBackend interface {
	// Self returns the body of /v1/agent/self ("Config", "Member", "Meta",
	// "Stats", ...).
	Self() map[string]any
	// Host returns the body of /v1/agent/host.
	Host() map[string]any
	// Members returns the gossip members (LAN, or WAN when wan is true).
	Members(wan bool) []Member

	// Services returns the services registered at this agent by ID.
	Services() map[string]*state.NodeService
	// AddService registers or replaces a service with its checks.
	// Validation failures wrap rpc.ErrBadRequest.
	AddService(def *local.ServiceDefinition, token string) error
	// RemoveService deregisters a service and its checks; an unknown ID
	// wraps rpc.ErrNotFound.
	RemoveService(id string) error

	// Checks returns the checks registered at this agent by ID.
	Checks() map[string]*state.HealthCheck
	// AddCheck registers or replaces a check. Validation failures (including
	// a script check when script checks are disabled) wrap
	// rpc.ErrBadRequest.
	AddCheck(def *local.CheckDefinition, token string) error
	// RemoveCheck deregisters a check; unknown IDs wrap rpc.ErrNotFound.
	RemoveCheck(id string) error
	// UpdateTTLCheck sets a TTL check's status and output and re-arms its
	// TTL. Unknown IDs wrap rpc.ErrNotFound; a non-TTL check wraps
	// rpc.ErrBadRequest.
	UpdateTTLCheck(id, status, output string) error

	// EnableNodeMaintenance / DisableNodeMaintenance toggle the
	// _node_maintenance check.
	EnableNodeMaintenance(reason, token string)
	DisableNodeMaintenance()
	// EnableServiceMaintenance / DisableServiceMaintenance toggle the
	// _service_maintenance:<id> check; unknown IDs wrap rpc.ErrNotFound.
	EnableServiceMaintenance(id, reason, token string) error
	DisableServiceMaintenance(id string) error

	// Reload re-reads the configuration files.
	Reload() error
	// Leave leaves the cluster gracefully and shuts the agent down
	// (asynchronously, after the HTTP reply is sent).
	Leave() error
}

// Member is a gossip member as /v1/agent/members shows it.
type Member struct {
	Name        string
	Addr        string
	Port        uint16
	Tags        map[string]string
	Status      int // 1 alive, 2 leaving, 3 left, 4 failed
	ProtocolMin uint8
	ProtocolMax uint8
	ProtocolCur uint8
	DelegateMin uint8
	DelegateMax uint8
	DelegateCur uint8
}
