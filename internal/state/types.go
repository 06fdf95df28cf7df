package state

import (
	"encoding/json"
	"fmt"
	"time"
)

// Health check statuses, as Consul spells them.
const (
	HealthPassing  = "passing"
	HealthWarning  = "warning"
	HealthCritical = "critical"
	HealthMaint    = "maintenance"
	HealthAny      = "any"
)

// SerfCheckID is the node-level check that reflects gossip liveness.
const (
	SerfCheckID   = "serfHealth"
	SerfCheckName = "Serf Health Status"
)

// KVEntry is one key in the KV store. JSON names match Consul's /v1/kv.
type KVEntry struct {
	LockIndex   uint64
	Key         string
	Flags       uint64
	Value       []byte
	Session     string `json:",omitempty"`
	CreateIndex uint64
	ModifyIndex uint64
}

// Node is a catalog node. JSON names match Consul's /v1/catalog/nodes.
type Node struct {
	ID              string
	Node            string
	Address         string
	Datacenter      string
	TaggedAddresses map[string]string
	Meta            map[string]string
	CreateIndex     uint64
	ModifyIndex     uint64
}

// ServiceAddress is an entry of a service's tagged addresses.
type ServiceAddress struct {
	Address string
	Port    int
}

// Weights are the DNS SRV weights of a service by health state.
type Weights struct {
	Passing int
	Warning int
}

// NodeService is a service instance registered on a node
// (Consul's AgentService / NodeService shape).
type NodeService struct {
	Kind              string `json:",omitempty"`
	ID                string
	Service           string
	Tags              []string
	Address           string
	TaggedAddresses   map[string]ServiceAddress `json:",omitempty"`
	Meta              map[string]string
	Port              int
	Weights           Weights
	EnableTagOverride bool
	CreateIndex       uint64
	ModifyIndex       uint64
}

// ServiceNode is the flattened node+service row returned by
// /v1/catalog/service/:name.
type ServiceNode struct {
	ID                       string
	Node                     string
	Address                  string
	Datacenter               string
	TaggedAddresses          map[string]string
	NodeMeta                 map[string]string
	ServiceKind              string `json:",omitempty"`
	ServiceID                string
	ServiceName              string
	ServiceTags              []string
	ServiceAddress           string
	ServiceTaggedAddresses   map[string]ServiceAddress `json:",omitempty"`
	ServiceWeights           Weights
	ServiceMeta              map[string]string
	ServicePort              int
	ServiceEnableTagOverride bool
	CreateIndex              uint64
	ModifyIndex              uint64
}

// Duration is a time.Duration that marshals as Consul's string form ("10s")
// and unmarshals from either a string or a number of nanoseconds.
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		if s == "" {
			*d = 0
			return nil
		}
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("invalid duration %q: %w", s, err)
		}
		*d = Duration(v)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("invalid duration %s: want a string like \"10s\" or nanoseconds", string(b))
	}
	*d = Duration(n)
	return nil
}

// HealthCheckDefinition is the part of a check's definition that is shown in
// the catalog.
type HealthCheckDefinition struct {
	HTTP                           string              `json:",omitempty"`
	Header                         map[string][]string `json:",omitempty"`
	Method                         string              `json:",omitempty"`
	Body                           string              `json:",omitempty"`
	TLSServerName                  string              `json:",omitempty"`
	TLSSkipVerify                  bool                `json:",omitempty"`
	TCP                            string              `json:",omitempty"`
	TCPUseTLS                      bool                `json:",omitempty"`
	UDP                            string              `json:",omitempty"`
	GRPC                           string              `json:",omitempty"`
	GRPCUseTLS                     bool                `json:",omitempty"`
	Interval                       Duration            `json:",omitempty"`
	Timeout                        Duration            `json:",omitempty"`
	DeregisterCriticalServiceAfter Duration            `json:",omitempty"`
}

// HealthCheck is a check as stored in the catalog. JSON names match Consul.
type HealthCheck struct {
	Node        string
	CheckID     string
	Name        string
	Status      string
	Notes       string
	Output      string
	ServiceID   string
	ServiceName string
	ServiceTags []string
	Type        string
	Definition  HealthCheckDefinition
	CreateIndex uint64
	ModifyIndex uint64
}

// CheckServiceNode is one entry of /v1/health/service/:name.
type CheckServiceNode struct {
	Node    *Node
	Service *NodeService
	Checks  []*HealthCheck
}

// NodeServices is a node with its services keyed by service ID
// (/v1/catalog/node/:node).
type NodeServices struct {
	Node     *Node
	Services map[string]*NodeService
}

// NodeServiceList is a node with its services as a list
// (/v1/catalog/node-services/:node).
type NodeServiceList struct {
	Node     *Node
	Services []*NodeService
}
