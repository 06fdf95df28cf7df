package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"
)

// TestEvent_FireListBlocking: `cairn event` fires through the agent and
// prints the ID; the event comes back in /v1/event/list with its payload
// and the ID-derived index; a blocking list is woken by the next event;
// bad input gets 400/413 with a message.
func TestEvent_FireListBlocking(t *testing.T) {
	t.Parallel()
	a := startDev(t)
	c := a.Client()
	env := []string{"CONSUL_HTTP_ADDR=" + a.HTTPAddr()}

	res := runCLI(t, env, "event", "-name", "deploy", "v1.2.3")
	require.Equal(t, 0, res.code, res.stderr)
	id, ok := strings.CutPrefix(strings.TrimSpace(res.stdout), "Event ID: ")
	require.True(t, ok, "output %q", res.stdout)
	require.Len(t, id, 36)

	var (
		events []*api.UserEvent
		meta   *api.QueryMeta
	)
	poll(t, 5*time.Second, func() error {
		var err error
		events, meta, err = c.Event().List("deploy", nil)
		if err != nil {
			return err
		}
		if len(events) != 1 {
			return fmt.Errorf("%d events listed", len(events))
		}
		return nil
	})
	require.Equal(t, id, events[0].ID)
	require.Equal(t, []byte("v1.2.3"), events[0].Payload)
	require.Equal(t, 1, events[0].Version)
	require.Equal(t, c.Event().IDToIndex(id), meta.LastIndex)

	// Blocking on the current index waits for the next event of the name.
	type listed struct {
		evs []*api.UserEvent
		err error
	}
	done := make(chan listed, 1)
	go func() {
		evs, _, err := c.Event().List("deploy", &api.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: time.Minute})
		done <- listed{evs, err}
	}()
	// Let the request reach the agent before firing; an early event still
	// wakes it (the index differs), so this only makes the test stricter.
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	id2, _, err := c.Event().Fire(&api.UserEvent{Name: "deploy", Payload: []byte("v2")}, nil)
	require.NoError(t, err)
	select {
	case l := <-done:
		require.NoError(t, l.err)
		require.Len(t, l.evs, 2)
		require.Equal(t, id2, l.evs[1].ID)
		t.Logf("blocking list woke %s after the fire", time.Since(start).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("blocking event list was not woken by a new event")
	}

	// Raw wire shape of fire.
	r := doString(t, a, "PUT", "/v1/event/fire/raw?node=.*", "")
	require.Equal(t, 200, r.Status, r.Body)
	require.Contains(t, r.Body, `"Payload":null`)
	require.Contains(t, r.Body, `"NodeFilter":".*"`)
	require.Contains(t, r.Body, `"LTime":0`)

	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		msg                      string
	}{
		{"payload over the gossip limit", "PUT", "/v1/event/fire/big", strings.Repeat("x", 600), 413, "gossip limit"},
		{"bad node regexp", "PUT", "/v1/event/fire/x?node=(", "", 400, "node filter"},
		{"tag without service", "PUT", "/v1/event/fire/x?tag=v1", "", 400, "tag filter"},
		{"reserved name", "PUT", "/v1/event/fire/_x", "", 400, "underscore"},
		{"bad index", "GET", "/v1/event/list?index=abc", "", 400, "index"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := doString(t, a, tc.method, tc.path, tc.body)
			require.Equal(t, tc.status, r.Status, r.Body)
			require.Contains(t, r.Body, tc.msg)
		})
	}

	res = runCLI(t, env, "event", "-name", "x", "-tag", "v1")
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, "-tag needs -service")
}
