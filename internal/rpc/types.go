package rpc

import (
	"time"

	"github.com/cairn-io/cairn/internal/state"
)

// Consistency levels reported in X-Consul-Effective-Consistency.
const (
	ConsistencyLeader     = "leader"
	ConsistencyConsistent = "consistent"
	ConsistencyStale      = "stale"
)

// QueryOptions are the common options of every read.
type QueryOptions struct {
	Datacenter string
	Token      string

	// MinQueryIndex > 0 makes the read a blocking query: the server waits
	// until the result's index is greater than MinQueryIndex or
	// MaxQueryTime (plus jitter) passes.
	MinQueryIndex uint64
	MaxQueryTime  time.Duration

	AllowStale        bool
	RequireConsistent bool

	// Filter is a go-bexpr expression applied to the result list.
	Filter string
}

// QueryMeta is returned with every read.
type QueryMeta struct {
	Index            uint64
	LastContact      time.Duration
	KnownLeader      bool
	ConsistencyLevel string
}

// WriteRequest holds the common fields of every write.
type WriteRequest struct {
	Datacenter string
	Token      string
}

// KVOp is a KV operation applied through Raft.
type KVOp string

// KV operations.
const (
	KVSet        KVOp = "set"
	KVCAS        KVOp = "cas"
	KVDelete     KVOp = "delete"
	KVDeleteCAS  KVOp = "delete-cas"
	KVDeleteTree KVOp = "delete-tree"
	KVLock       KVOp = "lock"
	KVUnlock     KVOp = "unlock"
)

// KVSRequest applies Op to Entry. For CAS ops Entry.ModifyIndex is the
// expected index (0 = must not exist).
type KVSRequest struct {
	Op    KVOp
	Entry state.KVEntry
	WriteRequest
}

// KeyRequest reads one key or a prefix.
type KeyRequest struct {
	Key string
	QueryOptions
}

// KeyListRequest lists keys under Prefix, rolled up at Separator.
type KeyListRequest struct {
	Prefix    string
	Separator string
	QueryOptions
}

// IndexedKVEntries is the reply of KVS.Get and KVS.List.
type IndexedKVEntries struct {
	Entries []*state.KVEntry
	QueryMeta
}

// IndexedKeyList is the reply of KVS.ListKeys.
type IndexedKeyList struct {
	Keys []string
	QueryMeta
}

// RegisterRequest is /v1/catalog/register's body (Consul's field names).
type RegisterRequest struct {
	ID              string
	Node            string
	Address         string
	Datacenter      string
	TaggedAddresses map[string]string
	NodeMeta        map[string]string
	Service         *state.NodeService
	Check           *state.HealthCheck
	Checks          []*state.HealthCheck
	SkipNodeUpdate  bool
	WriteRequest
}

// DeregisterRequest is /v1/catalog/deregister's body. With only Node set the
// whole node goes; with ServiceID or CheckID just that entry.
type DeregisterRequest struct {
	Node      string
	ServiceID string
	CheckID   string
	WriteRequest
}

// DCSpecificRequest is a read scoped to a datacenter.
type DCSpecificRequest struct {
	NodeMetaFilters map[string]string
	QueryOptions
}

// ServiceSpecificRequest reads one service's instances.
type ServiceSpecificRequest struct {
	ServiceName     string
	ServiceTags     []string // every tag must be present
	NodeMetaFilters map[string]string
	QueryOptions
}

// NodeSpecificRequest reads one node.
type NodeSpecificRequest struct {
	Node string
	QueryOptions
}

// ChecksInStateRequest lists checks in State ("any" for all).
type ChecksInStateRequest struct {
	State           string
	NodeMetaFilters map[string]string
	QueryOptions
}

// IndexedNodes is the reply of Catalog.ListNodes.
type IndexedNodes struct {
	Nodes []*state.Node
	QueryMeta
}

// IndexedServices is the reply of Catalog.ListServices (name -> tags).
type IndexedServices struct {
	Services map[string][]string
	QueryMeta
}

// IndexedServiceNodes is the reply of Catalog.ServiceNodes.
type IndexedServiceNodes struct {
	ServiceNodes []*state.ServiceNode
	QueryMeta
}

// IndexedNodeServices is the reply of Catalog.NodeServices; NodeServices is
// nil when the node does not exist.
type IndexedNodeServices struct {
	NodeServices *state.NodeServices
	QueryMeta
}

// IndexedNodeServiceList is the reply of Catalog.NodeServiceList.
type IndexedNodeServiceList struct {
	NodeServices *state.NodeServiceList
	QueryMeta
}

// IndexedHealthChecks is the reply of the Health.*Checks methods.
type IndexedHealthChecks struct {
	HealthChecks []*state.HealthCheck
	QueryMeta
}

// IndexedCheckServiceNodes is the reply of Health.ServiceNodes.
type IndexedCheckServiceNodes struct {
	Nodes []*state.CheckServiceNode
	QueryMeta
}
