package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"
)

// syncTimeout bounds how long anti-entropy may take to move a local change
// into the catalog.
const syncTimeout = 10 * time.Second

// catalogCheckStatus returns the catalog's (health endpoint's) status of a
// check on node, or "" when the catalog does not have it.
func catalogCheckStatus(c *api.Client, node, checkID string) (string, string, error) {
	checks, _, err := c.Health().Node(node, nil)
	if err != nil {
		return "", "", err
	}
	for _, ch := range checks {
		if ch.CheckID == checkID {
			return ch.Status, ch.Output, nil
		}
	}
	return "", "", nil
}

// waitCheck polls until the catalog has checkID on node with want status.
func waitCheck(t *testing.T, c *api.Client, node, checkID, want string) string {
	t.Helper()
	var output string
	poll(t, syncTimeout, func() error {
		got, out, err := catalogCheckStatus(c, node, checkID)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("check %s on %s: status %q, want %q (output %q)", checkID, node, got, want, out)
		}
		output = out
		return nil
	})
	return output
}

func passingIDs(t *testing.T, c *api.Client, service string) []string {
	t.Helper()
	entries, _, err := c.Health().Service(service, "", true, nil)
	require.NoError(t, err)
	var ids []string
	for _, e := range entries {
		ids = append(ids, e.Service.ID)
	}
	return ids
}

func TestAgent_ServiceTTLLifecycle(t *testing.T) {
	t.Parallel()
	a := startDev(t)
	c := a.Client()
	ag := c.Agent()

	err := ag.ServiceRegister(&api.AgentServiceRegistration{
		ID: "api1", Name: "api", Tags: []string{"blue"}, Port: 9000, Address: "127.0.0.1",
		Meta:  map[string]string{"version": "1"},
		Check: &api.AgentServiceCheck{TTL: "30s"},
	})
	require.NoError(t, err)
	const checkID = "service:api1"

	// Local view right away.
	svcs, err := ag.Services()
	require.NoError(t, err)
	require.Contains(t, svcs, "api1")
	require.Equal(t, 9000, svcs["api1"].Port)
	checks, err := ag.Checks()
	require.NoError(t, err)
	require.Contains(t, checks, checkID)
	require.Equal(t, api.HealthCritical, checks[checkID].Status, "a TTL check starts critical")

	// Catalog and health via anti-entropy.
	poll(t, syncTimeout, func() error {
		entries, _, err := c.Catalog().Service("api", "blue", nil)
		if err != nil {
			return err
		}
		if len(entries) != 1 || entries[0].ServiceID != "api1" || entries[0].Node != a.Name {
			return fmt.Errorf("catalog/service/api: %d entries", len(entries))
		}
		if entries[0].ServicePort != 9000 || entries[0].ServiceMeta["version"] != "1" {
			return fmt.Errorf("catalog entry not synced fully: %+v", entries[0])
		}
		return nil
	})
	waitCheck(t, c, a.Name, checkID, api.HealthCritical)
	require.Empty(t, passingIDs(t, c, "api"))

	// pass → passing, with the note as output.
	require.NoError(t, ag.PassTTL(checkID, "all good"))
	out := waitCheck(t, c, a.Name, checkID, api.HealthPassing)
	require.Equal(t, "all good", out)
	require.Equal(t, []string{"api1"}, passingIDs(t, c, "api"))

	// warn → warning; warning still counts as not passing for ?passing.
	require.NoError(t, ag.WarnTTL(checkID, "slow"))
	waitCheck(t, c, a.Name, checkID, api.HealthWarning)
	require.Empty(t, passingIDs(t, c, "api"))

	// fail → critical.
	require.NoError(t, ag.FailTTL(checkID, "broken"))
	out = waitCheck(t, c, a.Name, checkID, api.HealthCritical)
	require.Equal(t, "broken", out)

	// check/update with explicit status and output.
	require.NoError(t, ag.UpdateTTL(checkID, "updated output", api.HealthPassing))
	out = waitCheck(t, c, a.Name, checkID, api.HealthPassing)
	require.Equal(t, "updated output", out)
	checks, err = ag.Checks()
	require.NoError(t, err)
	require.Equal(t, api.HealthPassing, checks[checkID].Status)
	require.Equal(t, "updated output", checks[checkID].Output)

	// deregister → gone from agent, catalog and health.
	require.NoError(t, ag.ServiceDeregister("api1"))
	svcs, err = ag.Services()
	require.NoError(t, err)
	require.NotContains(t, svcs, "api1")
	poll(t, syncTimeout, func() error {
		entries, _, err := c.Catalog().Service("api", "", nil)
		if err != nil {
			return err
		}
		if len(entries) != 0 {
			return fmt.Errorf("api still in catalog: %d entries", len(entries))
		}
		st, _, err := catalogCheckStatus(c, a.Name, checkID)
		if err != nil {
			return err
		}
		if st != "" {
			return fmt.Errorf("check %s still in catalog (%s)", checkID, st)
		}
		return nil
	})
}

func TestAgent_TTLExpires(t *testing.T) {
	t.Parallel()
	a := startDev(t)
	c := a.Client()
	ag := c.Agent()
	require.NoError(t, ag.ServiceRegister(&api.AgentServiceRegistration{
		ID: "ttl1", Name: "ttl", Port: 1,
		Check: &api.AgentServiceCheck{CheckID: "ttl1-check", TTL: "1s"},
	}))
	require.NoError(t, ag.PassTTL("ttl1-check", "fresh"))
	waitCheck(t, c, a.Name, "ttl1-check", api.HealthPassing)
	passedAt := time.Now()
	out := waitCheck(t, c, a.Name, "ttl1-check", api.HealthCritical)
	require.GreaterOrEqual(t, time.Since(passedAt), 900*time.Millisecond, "TTL lapsed too early")
	require.Contains(t, strings.ToLower(out), "ttl expired")

	// Passing again re-arms it.
	require.NoError(t, ag.PassTTL("ttl1-check", "back"))
	waitCheck(t, c, a.Name, "ttl1-check", api.HealthPassing)
}

func TestAgent_CheckRegisterAndDeregister(t *testing.T) {
	t.Parallel()
	a := startDev(t)
	c := a.Client()
	ag := c.Agent()
	require.NoError(t, ag.ServiceRegister(&api.AgentServiceRegistration{ID: "svc1", Name: "svc", Port: 2}))
	require.NoError(t, ag.CheckRegister(&api.AgentCheckRegistration{
		ID: "svc1-extra", Name: "extra", ServiceID: "svc1",
		AgentServiceCheck: api.AgentServiceCheck{TTL: "1m", Status: api.HealthPassing},
	}))
	waitCheck(t, c, a.Name, "svc1-extra", api.HealthPassing)
	require.Equal(t, []string{"svc1"}, passingIDs(t, c, "svc"))
	require.NoError(t, ag.CheckDeregister("svc1-extra"))
	poll(t, syncTimeout, func() error {
		st, _, err := catalogCheckStatus(c, a.Name, "svc1-extra")
		if err != nil {
			return err
		}
		if st != "" {
			return fmt.Errorf("check still in catalog: %s", st)
		}
		return nil
	})
}

func TestAgent_NodeMaintenance(t *testing.T) {
	t.Parallel()
	a := startDev(t)
	c := a.Client()
	ag := c.Agent()
	require.NoError(t, ag.ServiceRegister(&api.AgentServiceRegistration{
		ID: "m1", Name: "maint", Port: 3,
		Check: &api.AgentServiceCheck{CheckID: "m1-check", TTL: "5m", Status: api.HealthPassing},
	}))
	waitCheck(t, c, a.Name, "m1-check", api.HealthPassing)
	require.Equal(t, []string{"m1"}, passingIDs(t, c, "maint"))

	require.NoError(t, ag.EnableNodeMaintenance("patching"))
	checks, err := ag.Checks()
	require.NoError(t, err)
	require.Contains(t, checks, "_node_maintenance")
	require.Equal(t, api.HealthCritical, checks["_node_maintenance"].Status)
	out := waitCheck(t, c, a.Name, "_node_maintenance", api.HealthCritical)
	require.Contains(t, out+checks["_node_maintenance"].Notes, "patching", "the reason must be recorded")
	poll(t, syncTimeout, func() error {
		if ids := passingIDs(t, c, "maint"); len(ids) != 0 {
			return fmt.Errorf("service on a node in maintenance still passing: %v", ids)
		}
		return nil
	})
	crit, _, err := c.Health().State(api.HealthCritical, nil)
	require.NoError(t, err)
	var ids []string
	for _, ch := range crit {
		ids = append(ids, ch.CheckID)
	}
	require.Contains(t, ids, "_node_maintenance")

	require.NoError(t, ag.DisableNodeMaintenance())
	checks, err = ag.Checks()
	require.NoError(t, err)
	require.NotContains(t, checks, "_node_maintenance")
	poll(t, syncTimeout, func() error {
		st, _, err := catalogCheckStatus(c, a.Name, "_node_maintenance")
		if err != nil {
			return err
		}
		if st != "" {
			return fmt.Errorf("_node_maintenance still in catalog (%s)", st)
		}
		if ids := passingIDs(t, c, "maint"); len(ids) != 1 {
			return fmt.Errorf("service not passing again after maintenance: %v", ids)
		}
		return nil
	})
}

func TestAgent_ServiceMaintenance(t *testing.T) {
	t.Parallel()
	a := startDev(t)
	c := a.Client()
	ag := c.Agent()
	for _, id := range []string{"s1", "s2"} {
		require.NoError(t, ag.ServiceRegister(&api.AgentServiceRegistration{
			ID: id, Name: "smaint", Port: 4,
			Check: &api.AgentServiceCheck{CheckID: id + "-check", TTL: "5m", Status: api.HealthPassing},
		}))
		waitCheck(t, c, a.Name, id+"-check", api.HealthPassing)
	}
	poll(t, syncTimeout, func() error {
		if ids := passingIDs(t, c, "smaint"); len(ids) != 2 {
			return fmt.Errorf("passing: %v", ids)
		}
		return nil
	})

	require.NoError(t, ag.EnableServiceMaintenance("s1", "upgrade"))
	const maintID = "_service_maintenance:s1"
	checks, err := ag.Checks()
	require.NoError(t, err)
	require.Contains(t, checks, maintID)
	require.Equal(t, api.HealthCritical, checks[maintID].Status)
	require.Equal(t, "s1", checks[maintID].ServiceID)
	waitCheck(t, c, a.Name, maintID, api.HealthCritical)
	poll(t, syncTimeout, func() error {
		ids := passingIDs(t, c, "smaint")
		if len(ids) != 1 || ids[0] != "s2" {
			return fmt.Errorf("passing: %v, want only s2", ids)
		}
		return nil
	})

	// Unknown service → error (404 in Consul).
	require.Error(t, ag.EnableServiceMaintenance("no-such-service", "x"))

	require.NoError(t, ag.DisableServiceMaintenance("s1"))
	poll(t, syncTimeout, func() error {
		if ids := passingIDs(t, c, "smaint"); len(ids) != 2 {
			return fmt.Errorf("passing after maintenance: %v", ids)
		}
		return nil
	})
}

func TestAgent_SelfMembersAndServerNode(t *testing.T) {
	t.Parallel()
	a := startDev(t)
	c := a.Client()

	self, err := c.Agent().Self()
	require.NoError(t, err)
	require.Contains(t, self, "Config")
	require.Equal(t, a.Name, self["Config"]["NodeName"])
	require.Equal(t, "dc1", self["Config"]["Datacenter"])
	require.Equal(t, true, self["Config"]["Server"])
	name, err := c.Agent().NodeName()
	require.NoError(t, err)
	require.Equal(t, a.Name, name)

	members, err := c.Agent().Members(false)
	require.NoError(t, err)
	require.Len(t, members, 1)
	require.Equal(t, a.Name, members[0].Name)
	require.Equal(t, 1, members[0].Status, "member must be alive (1)")
	require.Equal(t, "127.0.0.1", members[0].Addr)
	require.Equal(t, uint16(a.Ports.SerfLAN), members[0].Port)
	require.Equal(t, "consul", members[0].Tags["role"])
	require.Equal(t, "dc1", members[0].Tags["dc"])

	wan, err := c.Agent().Members(true)
	require.NoError(t, err)
	require.Len(t, wan, 1)
	require.Equal(t, a.Name+".dc1", wan[0].Name)

	// The server itself is in the catalog with serfHealth passing and the
	// consul service.
	n, _, err := c.Catalog().Node(a.Name, nil)
	require.NoError(t, err)
	require.NotNil(t, n)
	require.Equal(t, "127.0.0.1", n.Node.Address)
	require.Equal(t, "dc1", n.Node.Datacenter)
	require.Contains(t, n.Services, "consul")
	require.Equal(t, "consul", n.Services["consul"].Service)
	require.Equal(t, a.Ports.Server, n.Services["consul"].Port)
	waitCheck(t, c, a.Name, "serfHealth", api.HealthPassing)

	entries, _, err := c.Health().Service("consul", "", true, nil)
	require.NoError(t, err)
	require.Len(t, entries, 1)
	require.Equal(t, a.Name, entries[0].Node.Node)

	dcs, err := c.Catalog().Datacenters()
	require.NoError(t, err)
	require.Equal(t, []string{"dc1"}, dcs)
}

func TestStatus(t *testing.T) {
	t.Parallel()
	a := startDev(t)
	c := a.Client()
	leader, err := c.Status().Leader()
	require.NoError(t, err)
	require.Equal(t, a.ServerAddr(), leader)
	peers, err := c.Status().Peers()
	require.NoError(t, err)
	require.Equal(t, []string{a.ServerAddr()}, peers)
}
