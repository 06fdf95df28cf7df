package httpapi

import (
	"net/http"

	"github.com/cairn-io/cairn/internal/acl"
	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
)

// catalogRegister serves PUT /v1/catalog/register.
func (h *handler) catalogRegister(w http.ResponseWriter, r *http.Request, _ string) error {
	body, err := readJSONBody(w, r)
	if err != nil {
		return err
	}
	req, err := decodeRegister(body)
	if err != nil {
		return err
	}
	if req.Node == "" {
		return badRequest("Must provide node")
	}
	if req.Address == "" && !req.SkipNodeUpdate {
		return badRequest("Must provide address if SkipNodeUpdate is not set")
	}
	if req.Service != nil && req.Service.Service == "" {
		return badRequest("Must provide service name with Service")
	}
	for _, chk := range append([]*state.HealthCheck{req.Check}, req.Checks...) {
		if chk != nil && chk.Status != "" && !validCheckStatus(chk.Status) {
			return badRequest("Invalid check status %q: must be passing, warning or critical", chk.Status)
		}
	}
	if err := authorize(r, func(a acl.Authorizer) bool {
		return a.NodeWrite(req.Node) && (req.Service == nil || a.ServiceWrite(req.Service.Service))
	}); err != nil {
		return err
	}
	req.WriteRequest = h.writeRequest(r)
	if queryParams(r).Get("dc") == "" && req.Datacenter != "" {
		req.WriteRequest.Datacenter = req.Datacenter
	}
	var out struct{}
	if err := h.cfg.Caller.RPC(r.Context(), rpc.MethodCatalogRegister, req, &out); err != nil {
		return err
	}
	return writeJSON(w, r, true)
}

// catalogDeregister serves PUT /v1/catalog/deregister.
func (h *handler) catalogDeregister(w http.ResponseWriter, r *http.Request, _ string) error {
	body, err := readJSONBody(w, r)
	if err != nil {
		return err
	}
	req, err := decodeDeregister(body)
	if err != nil {
		return err
	}
	if req.Node == "" {
		return badRequest("Must provide node")
	}
	if err := authorize(r, func(a acl.Authorizer) bool { return a.NodeWrite(req.Node) }); err != nil {
		return err
	}
	req.WriteRequest = h.writeRequest(r)
	var out struct{}
	if err := h.cfg.Caller.RPC(r.Context(), rpc.MethodCatalogDeregister, req, &out); err != nil {
		return err
	}
	return writeJSON(w, r, true)
}

// catalogDatacenters serves GET /v1/catalog/datacenters.
func (h *handler) catalogDatacenters(w http.ResponseWriter, r *http.Request, _ string) error {
	opts, err := h.queryOptions(r)
	if err != nil {
		return err
	}
	var out []string
	if err := h.cfg.Caller.RPC(r.Context(), rpc.MethodCatalogListDatacenters, &rpc.DCSpecificRequest{QueryOptions: opts}, &out); err != nil {
		return err
	}
	if out == nil {
		out = []string{}
	}
	return writeJSON(w, r, out)
}

// catalogNodes serves GET /v1/catalog/nodes.
func (h *handler) catalogNodes(w http.ResponseWriter, r *http.Request, _ string) error {
	opts, err := h.queryOptions(r)
	if err != nil {
		return err
	}
	args := &rpc.DCSpecificRequest{NodeMetaFilters: nodeMetaFilters(queryParams(r)), QueryOptions: opts}
	var out rpc.IndexedNodes
	if err := h.cfg.Caller.RPC(r.Context(), rpc.MethodCatalogListNodes, args, &out); err != nil {
		return err
	}
	setMeta(w, out.QueryMeta, opts)
	nodes := out.Nodes
	if nodes == nil {
		nodes = []*state.Node{}
	}
	return writeJSON(w, r, nodes)
}

// catalogServices serves GET /v1/catalog/services (name -> tags).
func (h *handler) catalogServices(w http.ResponseWriter, r *http.Request, _ string) error {
	opts, err := h.queryOptions(r)
	if err != nil {
		return err
	}
	args := &rpc.DCSpecificRequest{NodeMetaFilters: nodeMetaFilters(queryParams(r)), QueryOptions: opts}
	var out rpc.IndexedServices
	if err := h.cfg.Caller.RPC(r.Context(), rpc.MethodCatalogListServices, args, &out); err != nil {
		return err
	}
	setMeta(w, out.QueryMeta, opts)
	services := make(map[string][]string, len(out.Services))
	for name, tags := range out.Services {
		services[name] = nonNilStrings(tags)
	}
	return writeJSON(w, r, services)
}

// catalogServiceNodes serves GET /v1/catalog/service/:name.
func (h *handler) catalogServiceNodes(w http.ResponseWriter, r *http.Request, name string) error {
	if name == "" {
		return badRequest("Missing service name")
	}
	if err := authorize(r, func(a acl.Authorizer) bool { return a.ServiceRead(name) }); err != nil {
		return err
	}
	opts, err := h.queryOptions(r)
	if err != nil {
		return err
	}
	q := queryParams(r)
	args := &rpc.ServiceSpecificRequest{
		ServiceName:     name,
		ServiceTags:     q["tag"],
		NodeMetaFilters: nodeMetaFilters(q),
		QueryOptions:    opts,
	}
	var out rpc.IndexedServiceNodes
	if err := h.cfg.Caller.RPC(r.Context(), rpc.MethodCatalogServiceNodes, args, &out); err != nil {
		return err
	}
	setMeta(w, out.QueryMeta, opts)
	nodes := make([]*state.ServiceNode, 0, len(out.ServiceNodes))
	for _, sn := range out.ServiceNodes {
		if sn == nil {
			continue
		}
		c := *sn
		c.ServiceTags = nonNilStrings(c.ServiceTags)
		nodes = append(nodes, &c)
	}
	return writeJSON(w, r, nodes)
}

// catalogNodeServices serves GET /v1/catalog/node/:node. Like Consul, an
// unknown node is a 200 with body null.
func (h *handler) catalogNodeServices(w http.ResponseWriter, r *http.Request, node string) error {
	if node == "" {
		return badRequest("Missing node name")
	}
	if err := authorize(r, func(a acl.Authorizer) bool { return a.NodeRead(node) }); err != nil {
		return err
	}
	opts, err := h.queryOptions(r)
	if err != nil {
		return err
	}
	var out rpc.IndexedNodeServices
	if err := h.cfg.Caller.RPC(r.Context(), rpc.MethodCatalogNodeServices, &rpc.NodeSpecificRequest{Node: node, QueryOptions: opts}, &out); err != nil {
		return err
	}
	setMeta(w, out.QueryMeta, opts)
	if out.NodeServices == nil {
		return writeJSON(w, r, nil)
	}
	ns := &state.NodeServices{Node: out.NodeServices.Node, Services: make(map[string]*state.NodeService, len(out.NodeServices.Services))}
	for id, svc := range out.NodeServices.Services {
		ns.Services[id] = withTags(svc)
	}
	return writeJSON(w, r, ns)
}

// catalogNodeServiceList serves GET /v1/catalog/node-services/:node. An
// unknown node is a 200 with body null.
func (h *handler) catalogNodeServiceList(w http.ResponseWriter, r *http.Request, node string) error {
	if node == "" {
		return badRequest("Missing node name")
	}
	if err := authorize(r, func(a acl.Authorizer) bool { return a.NodeRead(node) }); err != nil {
		return err
	}
	opts, err := h.queryOptions(r)
	if err != nil {
		return err
	}
	var out rpc.IndexedNodeServiceList
	if err := h.cfg.Caller.RPC(r.Context(), rpc.MethodCatalogNodeServiceList, &rpc.NodeSpecificRequest{Node: node, QueryOptions: opts}, &out); err != nil {
		return err
	}
	setMeta(w, out.QueryMeta, opts)
	if out.NodeServices == nil {
		return writeJSON(w, r, nil)
	}
	nl := &state.NodeServiceList{Node: out.NodeServices.Node, Services: make([]*state.NodeService, 0, len(out.NodeServices.Services))}
	for _, svc := range out.NodeServices.Services {
		if svc != nil {
			nl.Services = append(nl.Services, withTags(svc))
		}
	}
	return writeJSON(w, r, nl)
}

// withTags returns a shallow copy of svc whose Tags are [] rather than null.
func withTags(svc *state.NodeService) *state.NodeService {
	if svc == nil {
		return nil
	}
	c := *svc
	c.Tags = nonNilStrings(c.Tags)
	return &c
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
