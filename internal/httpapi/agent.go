package httpapi

import (
	"net/http"
	"strconv"

	"github.com/hashicorp/go-bexpr"

	"github.com/cairn-io/cairn/internal/acl"
	"github.com/cairn-io/cairn/internal/state"
)

// agentService is the /v1/agent/services shape of a service (the official
// client's AgentService).
type agentService struct {
	Kind              string `json:",omitempty"`
	ID                string
	Service           string
	Tags              []string
	Meta              map[string]string
	Port              int
	Address           string
	TaggedAddresses   map[string]state.ServiceAddress `json:",omitempty"`
	Weights           state.Weights
	EnableTagOverride bool
	ContentHash       string `json:",omitempty" bexpr:"-"`
	Datacenter        string `json:",omitempty" bexpr:"-"`
}

func (h *handler) agentServiceOut(svc *state.NodeService) *agentService {
	out := &agentService{
		Kind:              svc.Kind,
		ID:                svc.ID,
		Service:           svc.Service,
		Tags:              nonNilStrings(svc.Tags),
		Meta:              svc.Meta,
		Port:              svc.Port,
		Address:           svc.Address,
		TaggedAddresses:   svc.TaggedAddresses,
		Weights:           svc.Weights,
		EnableTagOverride: svc.EnableTagOverride,
		Datacenter:        h.cfg.Datacenter,
	}
	if out.Meta == nil {
		out.Meta = map[string]string{}
	}
	if out.Weights == (state.Weights{}) {
		out.Weights = state.Weights{Passing: 1, Warning: 1}
	}
	return out
}

// applyFilter runs a ?filter expression over a map or slice.
func applyFilter[T any](r *http.Request, data T) (T, error) {
	expr := queryParams(r).Get("filter")
	if expr == "" {
		return data, nil
	}
	f, err := bexpr.CreateFilter(expr)
	if err != nil {
		return data, badRequest("Failed to create boolean expression evaluator: %v", err)
	}
	res, err := f.Execute(data)
	if err != nil {
		return data, badRequest("Failed to apply filter: %v", err)
	}
	return res.(T), nil
}

// agentSelf serves GET /v1/agent/self.
func (h *handler) agentSelf(w http.ResponseWriter, r *http.Request, _ string) error {
	if err := authorize(r, func(a acl.Authorizer) bool { return a.AgentRead(h.cfg.NodeName) }); err != nil {
		return err
	}
	return writeJSON(w, r, h.cfg.Agent.Self())
}

// agentVersion serves GET /v1/agent/version.
func (h *handler) agentVersion(w http.ResponseWriter, r *http.Request, _ string) error {
	return writeJSON(w, r, map[string]string{
		"SHA":          "",
		"BuildDate":    "",
		"HumanVersion": h.cfg.Version,
		"FIPS":         "",
	})
}

// agentHost serves GET /v1/agent/host.
func (h *handler) agentHost(w http.ResponseWriter, r *http.Request, _ string) error {
	if err := authorize(r, func(a acl.Authorizer) bool { return a.OperatorRead() }); err != nil {
		return err
	}
	return writeJSON(w, r, h.cfg.Agent.Host())
}

// agentMembers serves GET /v1/agent/members (?wan for the WAN pool).
func (h *handler) agentMembers(w http.ResponseWriter, r *http.Request, _ string) error {
	authz, err := authorizerOf(r)
	if err != nil {
		return err
	}
	members := make([]Member, 0)
	for _, m := range h.cfg.Agent.Members(flagParam(queryParams(r), "wan")) {
		if authz.NodeRead(m.Name) {
			members = append(members, m)
		}
	}
	members, err = applyFilter(r, members)
	if err != nil {
		return err
	}
	return writeJSON(w, r, members)
}

// LocalStateWatcher is optionally implemented by an AgentBackend to make
// GET /v1/agent/service/:id?hash=H block until the service changes, as
// Consul's hash-based blocking does. Without it the endpoint answers at once.
type LocalStateWatcher interface {
	// LocalStateChanged returns a channel that is closed at the next change
	// of the agent's local services or checks. It must not block.
	LocalStateChanged() <-chan struct{}
}

// agentService serves GET /v1/agent/service/:id with its ContentHash; with
// ?hash= it blocks (up to ?wait) until the content hash differs.
func (h *handler) agentService(w http.ResponseWriter, r *http.Request, id string) error {
	if id == "" {
		return badRequest("Missing service ID")
	}
	return h.hashBlocking(w, r, func() (any, string, error) {
		svc, ok := h.cfg.Agent.Services()[id]
		if !ok || svc == nil {
			return nil, "", notFound("unknown service ID: %s", id)
		}
		if err := authorize(r, func(a acl.Authorizer) bool { return a.ServiceRead(svc.Service) }); err != nil {
			return nil, "", err
		}
		out := h.agentServiceOut(svc)
		out.ContentHash = hashOf(out)
		return out, out.ContentHash, nil
	})
}

// agentChecks serves GET /v1/agent/checks (ID -> check).
func (h *handler) agentChecks(w http.ResponseWriter, r *http.Request, _ string) error {
	authz, err := authorizerOf(r)
	if err != nil {
		return err
	}
	out := make(map[string]*state.HealthCheck)
	for id, chk := range h.cfg.Agent.Checks() {
		if chk == nil {
			continue
		}
		if chk.ServiceID != "" && !authz.ServiceRead(chk.ServiceName) ||
			chk.ServiceID == "" && !authz.NodeRead(h.cfg.NodeName) {
			continue
		}
		c := *chk
		c.ServiceTags = nonNilStrings(c.ServiceTags)
		out[id] = &c
	}
	out, err = applyFilter(r, out)
	if err != nil {
		return err
	}
	return writeJSON(w, r, out)
}

// agentReload serves PUT /v1/agent/reload.
func (h *handler) agentReload(w http.ResponseWriter, r *http.Request, _ string) error {
	if err := authorize(r, func(a acl.Authorizer) bool { return a.AgentWrite(h.cfg.NodeName) }); err != nil {
		return err
	}
	if err := h.cfg.Agent.Reload(); err != nil {
		return err
	}
	return writeEmpty(w)
}

// agentLeave serves PUT /v1/agent/leave.
func (h *handler) agentLeave(w http.ResponseWriter, r *http.Request, _ string) error {
	if err := authorize(r, func(a acl.Authorizer) bool { return a.AgentWrite(h.cfg.NodeName) }); err != nil {
		return err
	}
	if err := h.cfg.Agent.Leave(); err != nil {
		return err
	}
	return writeEmpty(w)
}

// agentMaintenance serves PUT /v1/agent/maintenance?enable=true|false.
func (h *handler) agentMaintenance(w http.ResponseWriter, r *http.Request, _ string) error {
	enable, err := enableParam(r)
	if err != nil {
		return err
	}
	if err := authorize(r, func(a acl.Authorizer) bool { return a.NodeWrite(h.cfg.NodeName) }); err != nil {
		return err
	}
	if enable {
		h.cfg.Agent.EnableNodeMaintenance(queryParams(r).Get("reason"), tokenOf(r))
	} else {
		h.cfg.Agent.DisableNodeMaintenance()
	}
	return writeEmpty(w)
}

// enableParam parses the required ?enable of the maintenance endpoints.
func enableParam(r *http.Request) (bool, error) {
	q := queryParams(r)
	v, ok := q["enable"]
	if !ok || len(v) == 0 || v[0] == "" {
		return false, badRequest("Missing value for enable")
	}
	b, err := strconv.ParseBool(v[0])
	if err != nil {
		return false, badRequest("Invalid value for enable: %q", v[0])
	}
	return b, nil
}
