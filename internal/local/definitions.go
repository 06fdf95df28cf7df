package local

import (
	"github.com/cairn-io/cairn/internal/state"
)

// ServiceDefinition is a service registered at the agent, from
// /v1/agent/service/register or a config file's service/services block.
// JSON names are Consul's (AgentServiceRegistration); decoders also accept
// the snake_case spellings used in config files.
type ServiceDefinition struct {
	Kind              string `json:",omitempty"`
	ID                string
	Name              string
	Tags              []string
	Port              int
	Address           string
	TaggedAddresses   map[string]state.ServiceAddress
	EnableTagOverride bool
	Meta              map[string]string
	Weights           *state.Weights
	Check             *CheckDefinition
	Checks            []*CheckDefinition
	Token             string `json:",omitempty"`
}

// CheckDefinition is a health check registered at the agent
// (/v1/agent/check/register, a service's Check/Checks, or a config file's
// check/checks block). Exactly one kind is selected by which fields are set:
// TTL, HTTP, TCP, UDP, GRPC, H2PING, Args (script), AliasNode/AliasService,
// DockerContainerID.
type CheckDefinition struct {
	ID        string `json:",omitempty"`
	CheckID   string `json:",omitempty"` // alias of ID accepted inside service definitions
	Name      string
	Notes     string `json:",omitempty"`
	ServiceID string `json:",omitempty"`
	Status    string `json:",omitempty"` // initial status; default critical

	TTL    state.Duration      `json:",omitempty"`
	HTTP   string              `json:",omitempty"`
	Header map[string][]string `json:",omitempty"`
	Method string              `json:",omitempty"`
	Body   string              `json:",omitempty"`

	DisableRedirects *bool  `json:",omitempty"`
	TLSServerName    string `json:",omitempty"`
	TLSSkipVerify    bool   `json:",omitempty"`

	TCP          string `json:",omitempty"`
	TCPUseTLS    bool   `json:",omitempty"`
	UDP          string `json:",omitempty"`
	GRPC         string `json:",omitempty"`
	GRPCUseTLS   bool   `json:",omitempty"`
	H2PING       string `json:",omitempty"`
	H2PingUseTLS bool   `json:",omitempty"`

	Args              []string `json:",omitempty"`
	DockerContainerID string   `json:",omitempty"`
	Shell             string   `json:",omitempty"`

	AliasNode    string `json:",omitempty"`
	AliasService string `json:",omitempty"`

	Interval                       state.Duration `json:",omitempty"`
	Timeout                        state.Duration `json:",omitempty"`
	DeregisterCriticalServiceAfter state.Duration `json:",omitempty"`
	OutputMaxSize                  int            `json:",omitempty"`

	SuccessBeforePassing   int `json:",omitempty"`
	FailuresBeforeWarning  int `json:",omitempty"`
	FailuresBeforeCritical int `json:",omitempty"`

	Token string `json:",omitempty"`
}
