package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
)

// fakeCatalog is a test-only rpc.Caller serving a fixed catalog per
// datacenter. It returns every instance with its checks; filtering by health
// is the DNS server's job.
type fakeCatalog struct {
	mu    sync.Mutex
	dcs   map[string]*fakeDC
	calls []fakeCall

	// lastContact is reported by stale reads (to exercise max_stale).
	lastContact time.Duration

	// index is the catalog index (10 until update moves it); changed is
	// closed and replaced by update, waking blocking reads.
	index   uint64
	changed chan struct{}
}

type fakeCall struct {
	method     string
	allowStale bool
	dc         string
	minIndex   uint64
}

// update runs fn on the catalog under the lock, moves the index and wakes
// blocking reads.
func (f *fakeCatalog) update(fn func(dcs map[string]*fakeDC)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f.dcs)
	f.index++
	close(f.changed)
	f.changed = make(chan struct{})
}

// block waits while the index is minIndex (blocking query semantics).
func (f *fakeCatalog) block(ctx context.Context, opts *rpc.QueryOptions) error {
	if opts.MinQueryIndex == 0 {
		return nil
	}
	wait := opts.MaxQueryTime
	if wait <= 0 {
		wait = 5 * time.Minute
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		f.mu.Lock()
		idx, ch := f.index, f.changed
		f.mu.Unlock()
		if idx > opts.MinQueryIndex {
			return nil
		}
		select {
		case <-ch:
		case <-t.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// blockingCalls counts the blocking reads of method.
func (f *fakeCatalog) blockingCalls(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if c.method == method && c.minIndex > 0 {
			n++
		}
	}
	return n
}

type fakeDC struct {
	nodes     map[string]*state.Node // lowercase name
	instances []*state.CheckServiceNode
}

// callsFor lists the non-blocking reads of method (the blocking reads of
// the cache's watchers come and go in the background).
func (f *fakeCatalog) callsFor(method string) []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fakeCall
	for _, c := range f.calls {
		if c.method == method && c.minIndex == 0 {
			out = append(out, c)
		}
	}
	return out
}

func (f *fakeCatalog) RPC(ctx context.Context, method string, args, reply any) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var opts *rpc.QueryOptions
	switch a := args.(type) {
	case *rpc.NodeSpecificRequest:
		opts = &a.QueryOptions
	case *rpc.ServiceSpecificRequest:
		opts = &a.QueryOptions
	case *rpc.DCSpecificRequest:
		opts = &a.QueryOptions
	default:
		return fmt.Errorf("fake: unexpected args %T", args)
	}
	f.mu.Lock()
	f.calls = append(f.calls, fakeCall{method: method, allowStale: opts.AllowStale, dc: opts.Datacenter, minIndex: opts.MinQueryIndex})
	f.mu.Unlock()
	if err := f.block(ctx, opts); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	lastContact := time.Duration(0)
	if opts.AllowStale {
		lastContact = f.lastContact
	}

	dcName := opts.Datacenter
	if dcName == "" {
		dcName = "dc1"
	}
	dc, ok := f.dcs[dcName]
	if !ok {
		return errors.New("rpc error: No path to datacenter")
	}
	meta := rpc.QueryMeta{Index: f.index, KnownLeader: true, LastContact: lastContact}

	switch method {
	case rpc.MethodCatalogNodeServices:
		a, r := args.(*rpc.NodeSpecificRequest), reply.(*rpc.IndexedNodeServices)
		r.QueryMeta = meta
		r.NodeServices = nil
		if n, ok := dc.nodes[strings.ToLower(a.Node)]; ok {
			ns := &state.NodeServices{Node: n, Services: map[string]*state.NodeService{}}
			for _, in := range dc.instances {
				if in.Node == n {
					ns.Services[in.Service.ID] = in.Service
				}
			}
			r.NodeServices = ns
		}
	case rpc.MethodHealthServiceNodes:
		a, r := args.(*rpc.ServiceSpecificRequest), reply.(*rpc.IndexedCheckServiceNodes)
		if a.ServiceName == "broken" {
			return errors.New("fake: backend exploded")
		}
		r.QueryMeta = meta
		r.Nodes = nil
		for _, in := range dc.instances {
			if strings.EqualFold(in.Service.Service, a.ServiceName) {
				cp := *in
				r.Nodes = append(r.Nodes, &cp)
			}
		}
	case rpc.MethodCatalogListNodes:
		r := reply.(*rpc.IndexedNodes)
		r.QueryMeta = meta
		r.Nodes = nil
		for _, n := range dc.nodes {
			r.Nodes = append(r.Nodes, n)
		}
	case rpc.MethodCatalogListServices:
		r := reply.(*rpc.IndexedServices)
		r.QueryMeta = meta
		r.Services = map[string][]string{}
		for _, in := range dc.instances {
			r.Services[in.Service.Service] = append(r.Services[in.Service.Service], in.Service.Tags...)
		}
	case rpc.MethodCatalogServiceNodes:
		a, r := args.(*rpc.ServiceSpecificRequest), reply.(*rpc.IndexedServiceNodes)
		r.QueryMeta = meta
		r.ServiceNodes = nil
		for _, in := range dc.instances {
			if !strings.EqualFold(in.Service.Service, a.ServiceName) {
				continue
			}
			r.ServiceNodes = append(r.ServiceNodes, &state.ServiceNode{
				Node: in.Node.Node, Address: in.Node.Address, Datacenter: dcName,
				ServiceID: in.Service.ID, ServiceName: in.Service.Service,
				ServiceAddress: in.Service.Address, ServicePort: in.Service.Port,
			})
		}
	default:
		return fmt.Errorf("%w: %s", rpc.ErrUnknownMethod, method)
	}
	return nil
}

func (d *fakeDC) addNode(name, addr string, meta map[string]string) *state.Node {
	n := &state.Node{Node: name, Address: addr, Meta: meta, Datacenter: "dc1"}
	d.nodes[strings.ToLower(name)] = n
	return n
}

func (d *fakeDC) addInstance(n *state.Node, svc *state.NodeService, statuses ...string) {
	if svc.ID == "" {
		svc.ID = svc.Service
	}
	in := &state.CheckServiceNode{Node: n, Service: svc}
	in.Checks = append(in.Checks, &state.HealthCheck{Node: n.Node, CheckID: state.SerfCheckID, Status: state.HealthPassing})
	for i, st := range statuses {
		in.Checks = append(in.Checks, &state.HealthCheck{
			Node: n.Node, CheckID: fmt.Sprintf("service:%s:%d", svc.ID, i), Status: st,
			ServiceID: svc.ID, ServiceName: svc.Service,
		})
	}
	d.instances = append(d.instances, in)
}

// bigInstances is how many healthy instances the "big" service has.
const bigInstances = 40

// newFixture builds the test catalog:
//
//	dc1 nodes: node1 10.0.0.1 (meta), node2 10.0.0.2, node3 10.0.0.3,
//	           node4 2001:db8::4, srv1 10.0.0.10, big1..big40 10.2.0.N
//	web:   node1 (primary, passing), node2 (secondary, warning),
//	       node3 (critical), node4 (passing, IPv6, port 8080)
//	db:    node1, service address 10.1.0.5, tag "Primary"
//	ext:   node2, service address ext.example.com
//	maint: node1 in maintenance
//	consul: srv1
//	big:   40 instances
//	dc2:   remote1 10.9.0.1 with web
func newFixture() *fakeCatalog {
	dc1 := &fakeDC{nodes: map[string]*state.Node{}}
	n1 := dc1.addNode("node1", "10.0.0.1", map[string]string{"rack": "r1", "rfc1035-info": "hello world"})
	n2 := dc1.addNode("node2", "10.0.0.2", nil)
	n3 := dc1.addNode("node3", "10.0.0.3", nil)
	n4 := dc1.addNode("node4", "2001:db8::4", nil)
	srv1 := dc1.addNode("srv1", "10.0.0.10", nil)

	dc1.addInstance(n1, &state.NodeService{ID: "web1", Service: "web", Tags: []string{"primary", "v1"}, Port: 80, Weights: state.Weights{Passing: 5, Warning: 1}}, state.HealthPassing)
	dc1.addInstance(n2, &state.NodeService{ID: "web2", Service: "web", Tags: []string{"secondary"}, Port: 80, Weights: state.Weights{Passing: 10, Warning: 2}}, state.HealthWarning)
	dc1.addInstance(n3, &state.NodeService{ID: "web3", Service: "web", Tags: []string{"primary"}, Port: 80}, state.HealthCritical)
	dc1.addInstance(n4, &state.NodeService{ID: "web4", Service: "web", Port: 8080})
	dc1.addInstance(n1, &state.NodeService{ID: "db1", Service: "db", Tags: []string{"Primary"}, Address: "10.1.0.5", Port: 5432})
	dc1.addInstance(n2, &state.NodeService{ID: "ext1", Service: "ext", Address: "ext.example.com", Port: 443})
	dc1.addInstance(n1, &state.NodeService{ID: "maint1", Service: "maint", Port: 1}, state.HealthMaint)
	dc1.addInstance(srv1, &state.NodeService{ID: "consul", Service: "consul", Port: 8300})
	for i := 1; i <= bigInstances; i++ {
		n := dc1.addNode(fmt.Sprintf("big%d", i), fmt.Sprintf("10.2.0.%d", i), nil)
		dc1.addInstance(n, &state.NodeService{ID: "big", Service: "big", Port: 9000})
	}

	dc2 := &fakeDC{nodes: map[string]*state.Node{}}
	r1 := dc2.addNode("remote1", "10.9.0.1", nil)
	dc2.addInstance(r1, &state.NodeService{ID: "web", Service: "web", Port: 80})

	return &fakeCatalog{dcs: map[string]*fakeDC{"dc1": dc1, "dc2": dc2}, index: 10, changed: make(chan struct{})}
}

// recordWriter is a dns.ResponseWriter that keeps what was written.
type recordWriter struct {
	tcp bool
	msg *dns.Msg
}

func (w *recordWriter) LocalAddr() net.Addr {
	if w.tcp {
		return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8600}
	}
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8600}
}

func (w *recordWriter) RemoteAddr() net.Addr {
	if w.tcp {
		return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
	}
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
}

func (w *recordWriter) WriteMsg(m *dns.Msg) error {
	w.msg = m
	_, err := m.Pack()
	return err
}

func (w *recordWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *recordWriter) Close() error                { return nil }
func (w *recordWriter) TsigStatus() error           { return nil }
func (w *recordWriter) TsigTimersOnly(bool)         {}
func (w *recordWriter) Hijack()                     {}
