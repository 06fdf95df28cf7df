package httpapi

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/cairn-io/cairn/internal/local"
	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
)

// rpcCall is one call recorded by fakeCaller.
type rpcCall struct {
	method string
	args   any
}

// fakeCaller is an in-memory rpc.Caller: a tiny KV store and catalog plus
// per-method overrides. It records every call.
type fakeCaller struct {
	mu        sync.Mutex
	calls     []rpcCall
	index     uint64
	kv        map[string]*state.KVEntry
	services  map[string][]string
	override  map[string]func(args, reply any) error
	meta      rpc.QueryMeta
	leader    string
	healthOut []*state.CheckServiceNode
}

func newFakeCaller() *fakeCaller {
	return &fakeCaller{
		index:    10,
		kv:       map[string]*state.KVEntry{},
		services: map[string][]string{},
		override: map[string]func(args, reply any) error{},
		meta:     rpc.QueryMeta{KnownLeader: true},
		leader:   "127.0.0.1:8300",
	}
}

func (f *fakeCaller) on(method string, fn func(args, reply any) error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.override[method] = fn
}

func (f *fakeCaller) Calls() []rpcCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]rpcCall(nil), f.calls...)
}

// writeCalls counts calls of write methods.
func (f *fakeCaller) writeCalls() int {
	n := 0
	for _, c := range f.Calls() {
		switch c.method {
		case rpc.MethodKVSApply, rpc.MethodCatalogRegister, rpc.MethodCatalogDeregister:
			n++
		}
	}
	return n
}

func (f *fakeCaller) lastCall(method string) any {
	calls := f.Calls()
	for i := len(calls) - 1; i >= 0; i-- {
		if calls[i].method == method {
			return calls[i].args
		}
	}
	return nil
}

func (f *fakeCaller) RPC(ctx context.Context, method string, args, reply any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, rpcCall{method, args})
	if fn, ok := f.override[method]; ok {
		return fn(args, reply)
	}
	meta := f.meta
	meta.Index = f.index
	switch method {
	case rpc.MethodKVSApply:
		req := args.(*rpc.KVSRequest)
		*reply.(*bool) = f.applyKV(req)
	case rpc.MethodKVSGet:
		req := args.(*rpc.KeyRequest)
		out := reply.(*rpc.IndexedKVEntries)
		if e, ok := f.kv[req.Key]; ok {
			c := *e
			out.Entries = []*state.KVEntry{&c}
		}
		out.QueryMeta = meta
	case rpc.MethodKVSList:
		req := args.(*rpc.KeyRequest)
		out := reply.(*rpc.IndexedKVEntries)
		for _, k := range f.sortedKeys(req.Key) {
			c := *f.kv[k]
			out.Entries = append(out.Entries, &c)
		}
		out.QueryMeta = meta
	case rpc.MethodKVSListKeys:
		req := args.(*rpc.KeyListRequest)
		out := reply.(*rpc.IndexedKeyList)
		seen := map[string]bool{}
		for _, k := range f.sortedKeys(req.Prefix) {
			if req.Separator != "" {
				if i := strings.Index(k[len(req.Prefix):], req.Separator); i >= 0 {
					k = k[:len(req.Prefix)+i+len(req.Separator)]
				}
			}
			if !seen[k] {
				seen[k] = true
				out.Keys = append(out.Keys, k)
			}
		}
		out.QueryMeta = meta
	case rpc.MethodCatalogListServices:
		out := reply.(*rpc.IndexedServices)
		out.Services = maps.Clone(f.services)
		out.QueryMeta = meta
	case rpc.MethodCatalogRegister:
		req := args.(*rpc.RegisterRequest)
		if req.Service != nil {
			f.services[req.Service.Service] = req.Service.Tags
		}
		f.index++
	case rpc.MethodCatalogDeregister:
		f.index++
	case rpc.MethodHealthServiceNodes:
		out := reply.(*rpc.IndexedCheckServiceNodes)
		out.Nodes = f.healthOut
		out.QueryMeta = meta
	case rpc.MethodStatusLeader:
		*reply.(*string) = f.leader
	case rpc.MethodStatusPeers:
		*reply.(*[]string) = []string{f.leader}
	case rpc.MethodCatalogListDatacenters:
		*reply.(*[]string) = []string{"dc1"}
	case rpc.MethodCatalogListNodes:
		reply.(*rpc.IndexedNodes).QueryMeta = meta
	case rpc.MethodCatalogServiceNodes:
		reply.(*rpc.IndexedServiceNodes).QueryMeta = meta
	case rpc.MethodCatalogNodeServices:
		reply.(*rpc.IndexedNodeServices).QueryMeta = meta
	case rpc.MethodCatalogNodeServiceList:
		reply.(*rpc.IndexedNodeServiceList).QueryMeta = meta
	case rpc.MethodHealthNodeChecks, rpc.MethodHealthServiceChecks, rpc.MethodHealthChecksInState:
		reply.(*rpc.IndexedHealthChecks).QueryMeta = meta
	default:
		return fmt.Errorf("%w: %s", rpc.ErrUnknownMethod, method)
	}
	return nil
}

func (f *fakeCaller) sortedKeys(prefix string) []string {
	var keys []string
	for k := range f.kv {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

func (f *fakeCaller) applyKV(req *rpc.KVSRequest) bool {
	key := req.Entry.Key
	cur, exists := f.kv[key]
	switch req.Op {
	case rpc.KVCAS, rpc.KVDeleteCAS:
		if req.Entry.ModifyIndex == 0 && exists ||
			req.Entry.ModifyIndex != 0 && (!exists || cur.ModifyIndex != req.Entry.ModifyIndex) {
			return false
		}
	}
	f.index++
	switch req.Op {
	case rpc.KVSet, rpc.KVCAS:
		e := req.Entry
		e.ModifyIndex = f.index
		e.CreateIndex = f.index
		if exists {
			e.CreateIndex = cur.CreateIndex
		}
		f.kv[key] = &e
	case rpc.KVDelete, rpc.KVDeleteCAS:
		delete(f.kv, key)
	case rpc.KVDeleteTree:
		for _, k := range f.sortedKeys(key) {
			delete(f.kv, k)
		}
	}
	return true
}

// fakeAgent is an in-memory AgentBackend.
type fakeAgent struct {
	mu             sync.Mutex
	services       map[string]*state.NodeService
	checks         map[string]*state.HealthCheck
	tokens         []string
	nodeMaint      bool
	svcMaint       map[string]string
	reloaded, left int
	lastWAN        bool
}

func newFakeAgent() *fakeAgent {
	return &fakeAgent{
		services: map[string]*state.NodeService{},
		checks:   map[string]*state.HealthCheck{},
		svcMaint: map[string]string{},
	}
}

func (a *fakeAgent) Self() map[string]any {
	return map[string]any{"Config": map[string]any{"NodeName": "node1", "Datacenter": "dc1"}, "Member": map[string]any{"Name": "node1"}}
}
func (a *fakeAgent) Host() map[string]any {
	return map[string]any{"Host": map[string]any{"os": "linux"}}
}
func (a *fakeAgent) Members(wan bool) []Member {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.lastWAN = wan
	if wan {
		return []Member{{Name: "node1.dc1", Addr: "127.0.0.1", Port: 8302, Status: 1}}
	}
	return []Member{{Name: "node1", Addr: "127.0.0.1", Port: 8301, Status: 1, Tags: map[string]string{"role": "consul"}},
		{Name: "node2", Addr: "127.0.0.2", Port: 8301, Status: 4}}
}
func (a *fakeAgent) Services() map[string]*state.NodeService {
	a.mu.Lock()
	defer a.mu.Unlock()
	return maps.Clone(a.services)
}
func (a *fakeAgent) AddService(def *local.ServiceDefinition, token string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	id := def.ID
	if id == "" {
		id = def.Name
	}
	svc := &state.NodeService{ID: id, Service: def.Name, Tags: def.Tags, Port: def.Port, Address: def.Address,
		Meta: def.Meta, EnableTagOverride: def.EnableTagOverride, TaggedAddresses: def.TaggedAddresses}
	if def.Weights != nil {
		svc.Weights = *def.Weights
	}
	a.services[id] = svc
	a.tokens = append(a.tokens, token)
	checks := serviceChecks(def)
	for i, c := range checks {
		cid := c.ID
		if cid == "" {
			cid = c.CheckID
		}
		if cid == "" {
			cid = "service:" + id
			if len(checks) > 1 {
				cid = fmt.Sprintf("service:%s:%d", id, i+1)
			}
		}
		a.checks[cid] = &state.HealthCheck{Node: "node1", CheckID: cid, Name: c.Name, Status: state.HealthCritical,
			ServiceID: id, ServiceName: def.Name, Type: "ttl"}
	}
	return nil
}
func (a *fakeAgent) RemoveService(id string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.services[id]; !ok {
		return fmt.Errorf("%w: unknown service %q", rpc.ErrNotFound, id)
	}
	delete(a.services, id)
	return nil
}
func (a *fakeAgent) Checks() map[string]*state.HealthCheck {
	a.mu.Lock()
	defer a.mu.Unlock()
	return maps.Clone(a.checks)
}
func (a *fakeAgent) AddCheck(def *local.CheckDefinition, token string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if def.TTL == 0 && def.HTTP == "" && def.TCP == "" {
		return fmt.Errorf("%w: check type must be specified", rpc.ErrBadRequest)
	}
	id := def.ID
	if id == "" {
		id = def.Name
	}
	status := def.Status
	if status == "" {
		status = state.HealthCritical
	}
	a.checks[id] = &state.HealthCheck{Node: "node1", CheckID: id, Name: def.Name, Status: status, ServiceID: def.ServiceID, Type: "ttl"}
	a.tokens = append(a.tokens, token)
	return nil
}
func (a *fakeAgent) RemoveCheck(id string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.checks[id]; !ok {
		return fmt.Errorf("%w: unknown check %q", rpc.ErrNotFound, id)
	}
	delete(a.checks, id)
	return nil
}
func (a *fakeAgent) UpdateTTLCheck(id, status, output string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	c, ok := a.checks[id]
	if !ok {
		return fmt.Errorf("%w: unknown check %q", rpc.ErrNotFound, id)
	}
	cc := *c
	cc.Status, cc.Output = status, output
	a.checks[id] = &cc
	return nil
}
func (a *fakeAgent) EnableNodeMaintenance(reason, token string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.nodeMaint = true
}
func (a *fakeAgent) DisableNodeMaintenance() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.nodeMaint = false
}
func (a *fakeAgent) EnableServiceMaintenance(id, reason, token string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.services[id]; !ok {
		return fmt.Errorf("%w: unknown service %q", rpc.ErrNotFound, id)
	}
	a.svcMaint[id] = reason
	return nil
}
func (a *fakeAgent) DisableServiceMaintenance(id string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.services[id]; !ok {
		return fmt.Errorf("%w: unknown service %q", rpc.ErrNotFound, id)
	}
	delete(a.svcMaint, id)
	return nil
}
func (a *fakeAgent) Reload() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.reloaded++
	return nil
}
func (a *fakeAgent) Leave() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.left++
	return nil
}

// testEnv is a handler over fakes.
type testEnv struct {
	caller *fakeCaller
	agent  *fakeAgent
	h      http.Handler
}

func newTestEnv(t *testing.T, mutate ...func(*Config)) *testEnv {
	t.Helper()
	env := &testEnv{caller: newFakeCaller(), agent: newFakeAgent()}
	cfg := Config{
		Caller:     env.caller,
		Agent:      env.agent,
		Datacenter: "dc1",
		NodeName:   "node1",
		Version:    "1.0.0-dev",
	}
	for _, m := range mutate {
		m(&cfg)
	}
	env.h = New(cfg)
	return env
}

// do runs one request through the handler.
func (e *testEnv) do(method, target string, body string, hdr ...string) *httptest.ResponseRecorder {
	var req *http.Request
	if body != "" {
		req = httptest.NewRequest(method, target, strings.NewReader(body))
	} else {
		req = httptest.NewRequest(method, target, nil)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	return rec
}
