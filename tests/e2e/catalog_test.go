package e2e

import (
	"net/http"
	"net/url"
	"sort"
	"testing"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"
)

// registerFixture puts two external nodes in the catalog:
//
//	n1 (rack=r1): web [v1 primary] :80 check passing, db :5432
//	n2 (rack=r2): web [v2] :8080 check critical
func registerFixture(t *testing.T, c *api.Client) {
	t.Helper()
	regs := []*api.CatalogRegistration{
		{
			Node: "n1", Address: "10.0.0.1", NodeMeta: map[string]string{"rack": "r1"},
			Service: &api.AgentService{ID: "web1", Service: "web", Tags: []string{"v1", "primary"}, Port: 80},
			Check: &api.AgentCheck{Node: "n1", CheckID: "web1-check", Name: "web check",
				Status: api.HealthPassing, ServiceID: "web1"},
		},
		{
			Node: "n1", Address: "10.0.0.1", NodeMeta: map[string]string{"rack": "r1"},
			Service: &api.AgentService{ID: "db1", Service: "db", Port: 5432},
		},
		{
			Node: "n2", Address: "10.0.0.2", NodeMeta: map[string]string{"rack": "r2"},
			Service: &api.AgentService{ID: "web2", Service: "web", Tags: []string{"v2"}, Port: 8080},
			Check: &api.AgentCheck{Node: "n2", CheckID: "web2-check", Name: "web check",
				Status: api.HealthCritical, ServiceID: "web2", Output: "connection refused"},
		},
	}
	for _, r := range regs {
		_, err := c.Catalog().Register(r, nil)
		require.NoError(t, err, "register %s/%s", r.Node, r.Service.ID)
	}
}

func serviceNodes(entries []*api.CatalogService) []string {
	var out []string
	for _, e := range entries {
		out = append(out, e.Node+"/"+e.ServiceID)
	}
	sort.Strings(out)
	return out
}

func healthNodes(entries []*api.ServiceEntry) []string {
	var out []string
	for _, e := range entries {
		out = append(out, e.Node.Node+"/"+e.Service.ID)
	}
	sort.Strings(out)
	return out
}

func TestCatalogAndHealth(t *testing.T) {
	t.Parallel()
	a := startDev(t)
	c := a.Client()
	registerFixture(t, c)
	cat, health := c.Catalog(), c.Health()

	t.Run("Services", func(t *testing.T) {
		svcs, meta, err := cat.Services(nil)
		require.NoError(t, err)
		require.GreaterOrEqual(t, meta.LastIndex, uint64(1))
		require.Contains(t, svcs, "web")
		require.Contains(t, svcs, "db")
		require.Contains(t, svcs, "consul")
		tags := append([]string(nil), svcs["web"]...)
		sort.Strings(tags)
		require.Equal(t, []string{"primary", "v1", "v2"}, tags)

		// node-meta filter on catalog/services.
		svcs, _, err = cat.Services(&api.QueryOptions{NodeMeta: map[string]string{"rack": "r2"}})
		require.NoError(t, err)
		require.Contains(t, svcs, "web")
		require.NotContains(t, svcs, "db")
	})

	t.Run("ServiceAndTags", func(t *testing.T) {
		all, meta, err := cat.Service("web", "", nil)
		require.NoError(t, err)
		require.GreaterOrEqual(t, meta.LastIndex, uint64(1))
		require.Equal(t, []string{"n1/web1", "n2/web2"}, serviceNodes(all))
		for _, e := range all {
			if e.ServiceID == "web1" {
				require.Equal(t, 80, e.ServicePort)
				require.Equal(t, "10.0.0.1", e.Address)
				require.Equal(t, "r1", e.NodeMeta["rack"])
			}
		}

		one, _, err := cat.Service("web", "v2", nil)
		require.NoError(t, err)
		require.Equal(t, []string{"n2/web2"}, serviceNodes(one))

		// Repeated ?tag= means all of them.
		both, _, err := cat.ServiceMultipleTags("web", []string{"v1", "primary"}, nil)
		require.NoError(t, err)
		require.Equal(t, []string{"n1/web1"}, serviceNodes(both))
		none, _, err := cat.ServiceMultipleTags("web", []string{"v1", "v2"}, nil)
		require.NoError(t, err)
		require.Empty(t, none)

		missing, meta, err := cat.Service("no-such-service", "", nil)
		require.NoError(t, err)
		require.Empty(t, missing)
		require.GreaterOrEqual(t, meta.LastIndex, uint64(1))
	})

	t.Run("NodeMetaFilter", func(t *testing.T) {
		nodes, _, err := cat.Nodes(&api.QueryOptions{NodeMeta: map[string]string{"rack": "r1"}})
		require.NoError(t, err)
		require.Len(t, nodes, 1)
		require.Equal(t, "n1", nodes[0].Node)

		web, _, err := cat.Service("web", "", &api.QueryOptions{NodeMeta: map[string]string{"rack": "r2"}})
		require.NoError(t, err)
		require.Equal(t, []string{"n2/web2"}, serviceNodes(web))
	})

	t.Run("HealthService", func(t *testing.T) {
		all, meta, err := health.Service("web", "", false, nil)
		require.NoError(t, err)
		require.GreaterOrEqual(t, meta.LastIndex, uint64(1))
		require.Equal(t, []string{"n1/web1", "n2/web2"}, healthNodes(all))
		for _, e := range all {
			require.NotEmpty(t, e.Checks, "entry %s must carry its checks", e.Service.ID)
		}

		passing, _, err := health.Service("web", "", true, nil)
		require.NoError(t, err)
		require.Equal(t, []string{"n1/web1"}, healthNodes(passing))

		tagged, _, err := health.Service("web", "v2", false, nil)
		require.NoError(t, err)
		require.Equal(t, []string{"n2/web2"}, healthNodes(tagged))

		taggedPassing, _, err := health.Service("web", "v2", true, nil)
		require.NoError(t, err)
		require.Empty(t, taggedPassing)
	})

	t.Run("HealthState", func(t *testing.T) {
		crit, meta, err := health.State(api.HealthCritical, nil)
		require.NoError(t, err)
		require.GreaterOrEqual(t, meta.LastIndex, uint64(1))
		var ids []string
		for _, ch := range crit {
			require.Equal(t, api.HealthCritical, ch.Status)
			ids = append(ids, ch.CheckID)
		}
		require.Contains(t, ids, "web2-check")
		require.NotContains(t, ids, "web1-check")

		anyState, _, err := health.State(api.HealthAny, nil)
		require.NoError(t, err)
		ids = nil
		for _, ch := range anyState {
			ids = append(ids, ch.CheckID)
		}
		require.Contains(t, ids, "web1-check")
		require.Contains(t, ids, "web2-check")
		require.Contains(t, ids, "serfHealth")
	})

	t.Run("HealthChecksForService", func(t *testing.T) {
		checks, _, err := health.Checks("web", nil)
		require.NoError(t, err)
		var ids []string
		for _, ch := range checks {
			ids = append(ids, ch.CheckID)
			require.Equal(t, "web", ch.ServiceName)
		}
		sort.Strings(ids)
		require.Equal(t, []string{"web1-check", "web2-check"}, ids)
	})

	t.Run("HealthNode", func(t *testing.T) {
		checks, _, err := health.Node("n2", nil)
		require.NoError(t, err)
		require.Len(t, checks, 1)
		require.Equal(t, "web2-check", checks[0].CheckID)
		require.Equal(t, "connection refused", checks[0].Output)
	})

	t.Run("CatalogNode", func(t *testing.T) {
		n, _, err := cat.Node("n1", nil)
		require.NoError(t, err)
		require.NotNil(t, n)
		require.Equal(t, "n1", n.Node.Node)
		require.Equal(t, "10.0.0.1", n.Node.Address)
		require.Equal(t, "r1", n.Node.Meta["rack"])
		require.Contains(t, n.Services, "web1")
		require.Contains(t, n.Services, "db1")
		require.Equal(t, []string{"v1", "primary"}, n.Services["web1"].Tags)

		missing, _, err := cat.Node("no-such-node", nil)
		require.NoError(t, err)
		require.Nil(t, missing)
	})

	t.Run("NodeServiceList", func(t *testing.T) {
		l, _, err := cat.NodeServiceList("n1", nil)
		require.NoError(t, err)
		require.NotNil(t, l)
		require.Equal(t, "n1", l.Node.Node)
		var ids []string
		for _, s := range l.Services {
			ids = append(ids, s.ID)
		}
		sort.Strings(ids)
		require.Equal(t, []string{"db1", "web1"}, ids)
	})

	t.Run("Filter", func(t *testing.T) {
		web, _, err := health.Service("web", "", false, &api.QueryOptions{Filter: "Service.Port == 80"})
		require.NoError(t, err)
		require.Equal(t, []string{"n1/web1"}, healthNodes(web))

		cweb, _, err := cat.Service("web", "", &api.QueryOptions{Filter: "ServicePort == 8080"})
		require.NoError(t, err)
		require.Equal(t, []string{"n2/web2"}, serviceNodes(cweb))

		cweb, _, err = cat.Service("web", "", &api.QueryOptions{Filter: `"primary" in ServiceTags`})
		require.NoError(t, err)
		require.Equal(t, []string{"n1/web1"}, serviceNodes(cweb))

		nodes, _, err := cat.Nodes(&api.QueryOptions{Filter: `Meta.rack == "r2"`})
		require.NoError(t, err)
		require.Len(t, nodes, 1)
		require.Equal(t, "n2", nodes[0].Node)

		for _, path := range []string{
			"/v1/health/service/web?filter=",
			"/v1/catalog/service/web?filter=",
			"/v1/catalog/nodes?filter=",
		} {
			for _, expr := range []string{"Service.Port ==", "((", "NoSuchField == 1"} {
				r := do(t, a, http.MethodGet, path+url.QueryEscape(expr), nil)
				require.Equal(t, http.StatusBadRequest, r.Status, "%s%q: %s", path, expr, r.Body)
				require.NotEmpty(t, r.Body)
			}
		}
	})

	t.Run("Deregister", func(t *testing.T) {
		_, err := cat.Deregister(&api.CatalogDeregistration{Node: "n1", ServiceID: "db1"}, nil)
		require.NoError(t, err)
		db, _, err := cat.Service("db", "", nil)
		require.NoError(t, err)
		require.Empty(t, db)
		svcs, _, err := cat.Services(nil)
		require.NoError(t, err)
		require.NotContains(t, svcs, "db")

		_, err = cat.Deregister(&api.CatalogDeregistration{Node: "n2"}, nil)
		require.NoError(t, err)
		n, _, err := cat.Node("n2", nil)
		require.NoError(t, err)
		require.Nil(t, n)
		web, _, err := health.Service("web", "", false, nil)
		require.NoError(t, err)
		require.Equal(t, []string{"n1/web1"}, healthNodes(web))
		crit, _, err := health.State(api.HealthCritical, nil)
		require.NoError(t, err)
		for _, ch := range crit {
			require.NotEqual(t, "web2-check", ch.CheckID, "checks of a deregistered node must go")
		}
	})
}
