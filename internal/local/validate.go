package local

import (
	"fmt"
	"strings"

	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
)

// Check kinds, spelled as Consul's HealthCheck.Type.
const (
	KindTTL         = "ttl"
	KindHTTP        = "http"
	KindTCP         = "tcp"
	KindUDP         = "udp"
	KindGRPC        = "grpc"
	KindH2Ping      = "h2ping"
	KindScript      = "script"
	KindAlias       = "alias"
	KindDocker      = "docker"
	KindMaintenance = "maintenance"
)

// ErrScriptChecksDisabled is returned (wrapping rpc.ErrBadRequest) for a
// script or docker check when the agent does not allow them.
var ErrScriptChecksDisabled = fmt.Errorf("%w: Scripts are disabled on this agent; to enable, configure 'enable_script_checks' to true", rpc.ErrBadRequest)

// ValidateOptions are the agent policies a check definition is checked
// against.
type ValidateOptions struct {
	// AllowScripts allows script and docker checks (enable_script_checks,
	// or enable_local_script_checks for definitions from config files).
	AllowScripts bool
}

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", rpc.ErrBadRequest, fmt.Sprintf(format, args...))
}

// Kind returns the check kind selected by the definition's fields. Exactly
// one kind must be selected.
func (d *CheckDefinition) Kind() (string, error) {
	var kinds []string
	if d.TTL != 0 {
		kinds = append(kinds, KindTTL)
	}
	if d.HTTP != "" {
		kinds = append(kinds, KindHTTP)
	}
	if d.TCP != "" {
		kinds = append(kinds, KindTCP)
	}
	if d.UDP != "" {
		kinds = append(kinds, KindUDP)
	}
	if d.GRPC != "" {
		kinds = append(kinds, KindGRPC)
	}
	if d.H2PING != "" {
		kinds = append(kinds, KindH2Ping)
	}
	if d.DockerContainerID != "" {
		kinds = append(kinds, KindDocker)
	} else if len(d.Args) > 0 {
		kinds = append(kinds, KindScript)
	}
	if d.AliasNode != "" || d.AliasService != "" {
		kinds = append(kinds, KindAlias)
	}
	switch len(kinds) {
	case 0:
		return "", badRequest("check must set one of TTL, HTTP, TCP, UDP, GRPC, H2PING, Args, DockerContainerID or AliasService/AliasNode")
	case 1:
		return kinds[0], nil
	}
	return "", badRequest("check must select exactly one kind, got %s", strings.Join(kinds, ", "))
}

// validStatus reports whether s is a status a check may be registered or
// updated with.
func validStatus(s string) bool {
	switch s {
	case state.HealthPassing, state.HealthWarning, state.HealthCritical:
		return true
	}
	return false
}

// ValidStatus reports whether s is passing, warning or critical.
func ValidStatus(s string) bool { return validStatus(s) }

// BuildCheck validates def and returns the catalog view of the check (Node,
// ServiceName and ServiceTags left for the caller) with Type set to its kind.
// ID defaults to Name; Status defaults to critical. Errors wrap
// rpc.ErrBadRequest.
func BuildCheck(def *CheckDefinition, opts ValidateOptions) (*state.HealthCheck, error) {
	if def == nil {
		return nil, badRequest("missing check definition")
	}
	id := def.ID
	if id == "" {
		id = def.CheckID
	}
	if def.Name == "" {
		return nil, badRequest("Missing check name")
	}
	if id == "" {
		id = def.Name
	}
	kind, err := def.Kind()
	if err != nil {
		return nil, err
	}
	switch kind {
	case KindTTL:
		if def.TTL < 0 {
			return nil, badRequest("check %q: TTL must be positive", id)
		}
	case KindScript, KindDocker:
		if !opts.AllowScripts {
			return nil, ErrScriptChecksDisabled
		}
		fallthrough
	case KindHTTP, KindTCP, KindUDP, KindGRPC, KindH2Ping:
		if def.Interval <= 0 {
			return nil, badRequest("check %q: Interval is required for %s checks", id, kind)
		}
	}
	if err := validateKindFields(id, kind, def); err != nil {
		return nil, err
	}
	if def.Timeout < 0 {
		return nil, badRequest("check %q: Timeout must not be negative", id)
	}
	if def.Interval < 0 {
		return nil, badRequest("check %q: Interval must not be negative", id)
	}
	if def.OutputMaxSize < 0 {
		return nil, badRequest("check %q: OutputMaxSize must not be negative", id)
	}
	if def.SuccessBeforePassing < 0 || def.FailuresBeforeWarning < 0 || def.FailuresBeforeCritical < 0 {
		return nil, badRequest("check %q: SuccessBeforePassing, FailuresBeforeWarning and FailuresBeforeCritical must not be negative", id)
	}
	status := def.Status
	if status == "" {
		status = state.HealthCritical
	}
	if !validStatus(status) {
		return nil, badRequest("check %q: invalid Status %q (want passing, warning or critical)", id, status)
	}
	if def.HTTP != "" && !strings.HasPrefix(def.HTTP, "http://") && !strings.HasPrefix(def.HTTP, "https://") {
		return nil, badRequest("check %q: HTTP must be an http:// or https:// URL, got %q", id, def.HTTP)
	}
	return &state.HealthCheck{
		CheckID:   id,
		Name:      def.Name,
		Status:    status,
		Notes:     def.Notes,
		ServiceID: def.ServiceID,
		Type:      kind,
		Definition: state.HealthCheckDefinition{
			HTTP:                           def.HTTP,
			Header:                         def.Header,
			Method:                         def.Method,
			Body:                           def.Body,
			TLSServerName:                  def.TLSServerName,
			TLSSkipVerify:                  def.TLSSkipVerify,
			TCP:                            def.TCP,
			TCPUseTLS:                      def.TCPUseTLS,
			UDP:                            def.UDP,
			GRPC:                           def.GRPC,
			GRPCUseTLS:                     def.GRPCUseTLS,
			Interval:                       def.Interval,
			Timeout:                        def.Timeout,
			DeregisterCriticalServiceAfter: def.DeregisterCriticalServiceAfter,
		},
	}, nil
}

// BuildService validates def and returns the service as the catalog holds it
// and copies of its check definitions with ID ("service:<id>", with ":N"
// when there are several), Name and ServiceID filled in. ID defaults to
// Name; Weights default to {1, 1}. Errors wrap rpc.ErrBadRequest. The checks
// themselves are validated by BuildCheck.
func BuildService(def *ServiceDefinition) (*state.NodeService, []*CheckDefinition, error) {
	if def == nil {
		return nil, nil, badRequest("missing service definition")
	}
	if def.Name == "" {
		return nil, nil, badRequest("Missing service name")
	}
	id := def.ID
	if id == "" {
		id = def.Name
	}
	if def.Port < 0 || def.Port > 65535 {
		return nil, nil, badRequest("service %q: invalid Port %d", id, def.Port)
	}
	weights := state.Weights{Passing: 1, Warning: 1}
	if def.Weights != nil {
		if def.Weights.Passing < 1 {
			return nil, nil, badRequest("service %q: Weights.Passing must be greater than 0", id)
		}
		if def.Weights.Warning < 0 {
			return nil, nil, badRequest("service %q: Weights.Warning must not be negative", id)
		}
		weights = *def.Weights
	}
	for k := range def.Meta {
		if k == "" {
			return nil, nil, badRequest("service %q: Meta keys must not be empty", id)
		}
	}
	svc := &state.NodeService{
		Kind:              def.Kind,
		ID:                id,
		Service:           def.Name,
		Tags:              cloneStrings(def.Tags),
		Address:           def.Address,
		TaggedAddresses:   cloneAddrs(def.TaggedAddresses),
		Meta:              cloneMap(def.Meta),
		Port:              def.Port,
		Weights:           weights,
		EnableTagOverride: def.EnableTagOverride,
	}

	var raw []*CheckDefinition
	if def.Check != nil {
		raw = append(raw, def.Check)
	}
	for _, c := range def.Checks {
		if c != nil {
			raw = append(raw, c)
		}
	}
	out := make([]*CheckDefinition, 0, len(raw))
	for i, c := range raw {
		cc := *c
		if cc.ID == "" {
			cc.ID = cc.CheckID
		}
		cc.CheckID = ""
		if cc.ID == "" {
			cc.ID = "service:" + id
			if len(raw) > 1 {
				cc.ID += fmt.Sprintf(":%d", i+1)
			}
		}
		if cc.Name == "" {
			cc.Name = fmt.Sprintf("Service '%s' check", def.Name)
		}
		if cc.ServiceID != "" && cc.ServiceID != id {
			return nil, nil, badRequest("check %q: ServiceID %q does not match service %q", cc.ID, cc.ServiceID, id)
		}
		cc.ServiceID = id
		out = append(out, &cc)
	}
	return svc, out, nil
}

func cloneStrings(s []string) []string {
	if s == nil {
		return nil
	}
	return append([]string(nil), s...)
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func cloneAddrs(m map[string]state.ServiceAddress) map[string]state.ServiceAddress {
	if m == nil {
		return nil
	}
	out := make(map[string]state.ServiceAddress, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
