package bench

import (
	"context"
	"fmt"
	"sync"

	"github.com/hashicorp/consul/api"
)

// churnNode names the external node worker w registers services on.
func churnNode(w int) string { return fmt.Sprintf("bench-churn-%d", w) }

// catalogChurn alternates catalog registrations and deregistrations of
// service instances on per-worker external nodes (PUT /v1/catalog/register
// and /deregister), so the catalog's size stays bounded.
func catalogChurn(ctx context.Context, cfg Config) (*Result, error) {
	cls, closeAll, err := cfg.clients(cfg.Conns)
	if err != nil {
		return nil, err
	}
	defer closeAll()
	seq := make([]int, cfg.Clients)
	r, err := Run(ctx, cfg.runOptions("register", "deregister"), func(_ context.Context, w int) (int, error) {
		cat := cls[w%len(cls)].Catalog()
		i := seq[w]
		seq[w]++
		id := fmt.Sprintf("churn-%d", (i/2)%max(cfg.Instances, 1))
		if i%2 == 0 {
			_, err := cat.Register(&api.CatalogRegistration{
				Node: churnNode(w), Address: "127.0.0.1", SkipNodeUpdate: i > 0,
				Service: &api.AgentService{ID: id, Service: "bench-churn", Port: 8000 + w},
				Check:   &api.AgentCheck{CheckID: "check-" + id, Name: "churn", Status: api.HealthPassing, ServiceID: id},
			}, nil)
			return 0, err
		}
		_, err := cat.Deregister(&api.CatalogDeregistration{Node: churnNode(w), ServiceID: id}, nil)
		return 1, err
	})
	if err != nil {
		return nil, err
	}
	fill(r, cfg, "catalog-churn")
	// Leave the catalog as found: drop the churn nodes.
	for w := 0; w < cfg.Clients; w++ {
		_, _ = cls[w%len(cls)].Catalog().Deregister(&api.CatalogDeregistration{Node: churnNode(w)}, nil)
	}
	return r, nil
}

// registerInstances puts n passing instances of service on n external
// nodes, `par` at a time.
func registerInstances(ctx context.Context, cl *api.Client, service string, n, par int) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  int
	)
	for w := 0; w < par; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				mu.Lock()
				i := next
				next++
				stop := i >= n || first != nil
				mu.Unlock()
				if stop {
					return
				}
				node := fmt.Sprintf("%s-node-%d", service, i)
				_, err := cl.Catalog().Register(&api.CatalogRegistration{
					Node: node, Address: fmt.Sprintf("10.%d.%d.%d", (i>>16)&255, (i>>8)&255, i&255),
					Service: &api.AgentService{ID: service, Service: service, Port: 8080, Tags: []string{"bench"}},
					Check:   &api.AgentCheck{CheckID: "svc-" + service, Name: "bench", Status: api.HealthPassing, ServiceID: service},
				}, nil)
				if err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("bench: registering %s: %w", node, err)
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

// healthRead registers Instances instances of one service and then reads
// /v1/health/service/<name> (all instances, every read) in the chosen
// consistency mode.
func healthRead(ctx context.Context, cfg Config) (*Result, error) {
	cls, closeAll, err := cfg.clients(cfg.Conns)
	if err != nil {
		return nil, err
	}
	defer closeAll()
	const service = "bench-health"
	if err := registerInstances(ctx, cls[0], service, cfg.Instances, min(cfg.Clients, 32)); err != nil {
		return nil, err
	}
	qos := make([]*api.QueryOptions, cfg.Clients)
	for i := range qos {
		qos[i] = cfg.queryOptions()
	}
	r, err := Run(ctx, cfg.runOptions("read"), func(_ context.Context, w int) (int, error) {
		out, _, err := cls[w%len(cls)].Health().Service(service, "", false, qos[w])
		if err == nil && len(out) < cfg.Instances {
			err = fmt.Errorf("bench: health read returned %d instances, want %d", len(out), cfg.Instances)
		}
		return 0, err
	})
	if err != nil {
		return nil, err
	}
	fill(r, cfg, "health-read")
	r.Consistency = cfg.Consistency
	r.Extra = map[string]float64{"instances": float64(cfg.Instances)}
	return r, nil
}
