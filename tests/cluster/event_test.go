package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"

	"github.com/cairn-io/cairn/internal/testutil"
)

// eventDeadline bounds how long gossip may take to bring an event to every
// member of a 5-node loopback cluster.
const eventDeadline = 5 * time.Second

// listEvents returns the IDs of the events named name that agent a holds.
func listEvents(a *testutil.Agent, name string) ([]*api.UserEvent, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	evs, _, err := a.Client().Event().List(name, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("event list on %s: %w", a.Name, err)
	}
	return evs, nil
}

// TestCluster_EventReachesEveryAgent: an event fired on a client agent of
// a 3-server, 2-client cluster shows up in /v1/event/list of all five
// agents within a few seconds, with its payload; one fired with a node
// filter only on the matching agent.
func TestCluster_EventReachesEveryAgent(t *testing.T) {
	skipShort(t)
	t.Parallel()
	c := testutil.StartCluster(t, testutil.ClusterOptions{Servers: 3, Clients: 2, LogLevel: "info"})
	c.WaitReady(readyTimeout)
	require.NoError(t, c.WaitMembers(5, readyTimeout))

	from := c.Clients[0]
	start := time.Now()
	id, _, err := from.Client().Event().Fire(&api.UserEvent{Name: "deploy", Payload: []byte("v42")}, nil)
	require.NoError(t, err)

	pending := map[string]*testutil.Agent{}
	for _, a := range c.Agents() {
		pending[a.Name] = a
	}
	deadline := time.Now().Add(eventDeadline)
	for len(pending) > 0 {
		for name, a := range pending {
			evs, err := listEvents(a, "deploy")
			if err != nil {
				continue
			}
			for _, ev := range evs {
				if ev.ID == id {
					require.Equal(t, []byte("v42"), ev.Payload, "payload on %s", name)
					delete(pending, name)
					t.Logf("event reached %s after %s", name, time.Since(start).Round(time.Millisecond))
				}
			}
		}
		if len(pending) > 0 {
			if time.Now().After(deadline) {
				t.Fatalf("event %s did not reach %d agents within %s: %v", id, len(pending), eventDeadline, agentNames(pending))
			}
			time.Sleep(25 * time.Millisecond)
		}
	}

	// A node filter selects one agent; fired from a server this time.
	target := c.Clients[1]
	id2, _, err := c.Servers[0].Client().Event().Fire(&api.UserEvent{Name: "only", NodeFilter: "^" + target.Name + "$"}, nil)
	require.NoError(t, err)
	testutil.Retry(t, eventDeadline, 25*time.Millisecond, func() error {
		evs, err := listEvents(target, "only")
		if err != nil {
			return err
		}
		if len(evs) != 1 || evs[0].ID != id2 {
			return fmt.Errorf("target %s has %d events named only", target.Name, len(evs))
		}
		return nil
	})
	// By now gossip has had the time it took to reach the target; the
	// others must have dropped it on receipt.
	for _, a := range c.Agents() {
		if a == target {
			continue
		}
		evs, err := listEvents(a, "only")
		require.NoError(t, err)
		require.Empty(t, evs, "agent %s kept an event filtered to %s", a.Name, target.Name)
	}
}

func agentNames(m map[string]*testutil.Agent) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
