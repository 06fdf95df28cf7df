package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"

	"github.com/cairn-io/cairn/internal/config"
	"github.com/cairn-io/cairn/internal/httpapi"
	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
)

func TestEventRing_KeepsLast256InOrder(t *testing.T) {
	var r eventRing
	evs, ch := r.list()
	require.Empty(t, evs)
	for i := range 300 {
		require.True(t, r.add(&httpapi.UserEvent{ID: fmt.Sprintf("id-%d", i)}))
		select {
		case <-ch:
		default:
			t.Fatalf("add %d did not wake the reader", i)
		}
		_, ch = r.list()
	}
	evs, _ = r.list()
	require.Len(t, evs, eventBufferSize)
	require.Equal(t, "id-44", evs[0].ID)
	require.Equal(t, "id-299", evs[len(evs)-1].ID)
	for i := 1; i < len(evs); i++ {
		require.Equal(t, fmt.Sprintf("id-%d", 44+i), evs[i].ID)
	}

	t.Run("duplicates are dropped and do not wake", func(t *testing.T) {
		_, ch := r.list()
		require.False(t, r.add(&httpapi.UserEvent{ID: "id-299"}))
		select {
		case <-ch:
			t.Fatal("a duplicate woke the reader")
		default:
		}
	})
	t.Run("evicted IDs may come again", func(t *testing.T) {
		require.True(t, r.add(&httpapi.UserEvent{ID: "id-0"}))
	})
}

func TestEvent_Matches(t *testing.T) {
	services := map[string]*state.NodeService{
		"web1": {ID: "web1", Service: "web", Tags: []string{"v1", "blue"}},
		"db":   {ID: "db", Service: "db"},
	}
	for _, tc := range []struct {
		name               string
		node, service, tag string
		want               bool
	}{
		{"no filters", "", "", "", true},
		{"node matches", "^node1$", "", "", true},
		{"node regexp partial", "ode", "", "", true},
		{"node differs", "^other", "", "", false},
		{"service matches", "", "^web$", "", true},
		{"service missing", "", "cache", "", false},
		{"service and tag", "", "web", "^blue$", true},
		{"tag on another service", "", "db", "blue", false},
		{"tag missing", "", "web", "green", false},
		{"node and service", "node1", "db", "", true},
		{"bad regexp matches nothing", "(", "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := &wireEvent{NodeFilter: tc.node, ServiceFilter: tc.service, TagFilter: tc.tag}
			require.Equal(t, tc.want, eventMatches(ev, "node1", services))
		})
	}
}

func TestEvent_Validate(t *testing.T) {
	for _, tc := range []struct {
		name string
		ev   httpapi.UserEvent
		msg  string
	}{
		{"ok", httpapi.UserEvent{Name: "deploy", NodeFilter: "web-.*"}, ""},
		{"no name", httpapi.UserEvent{}, "missing event name"},
		{"reserved", httpapi.UserEvent{Name: "_x"}, "underscore"},
		{"tag without service", httpapi.UserEvent{Name: "x", TagFilter: "v1"}, "tag filter needs a service filter"},
		{"bad node regexp", httpapi.UserEvent{Name: "x", NodeFilter: "("}, "node filter"},
		{"bad service regexp", httpapi.UserEvent{Name: "x", ServiceFilter: "[a"}, "service filter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := validateEvent(&tc.ev)
			if tc.msg == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, rpc.ErrBadRequest)
			require.ErrorContains(t, err, tc.msg)
		})
	}
}

func TestEvent_EncodeRoundTrip(t *testing.T) {
	in := &wireEvent{ID: "b54fe110-7af5-cafc-d1fb-afc8ba432b1c", Name: "deploy", Payload: []byte{0, 1, 2, 'x'},
		NodeFilter: "n", ServiceFilter: "s", TagFilter: "t", Version: 1}
	b, err := encodeEvent(in)
	require.NoError(t, err)
	out, err := decodeEvent(b)
	require.NoError(t, err)
	require.Equal(t, in, out)
	_, err = decodeEvent([]byte{0xc1, 0xff})
	require.Error(t, err)
}

// TestAgent_EventFireAndList fires through a dev agent's HTTP API: the
// event comes back through gossip into /v1/event/list, filters apply on
// receipt, an oversized payload is refused with 413, and a blocking list
// wakes for the next event.
func TestAgent_EventFireAndList(t *testing.T) {
	a, client := startAgent(t, devConfig(), nil)
	require.NoError(t, client.Agent().ServiceRegister(&api.AgentServiceRegistration{Name: "web", Tags: []string{"v1"}}))

	id, _, err := client.Event().Fire(&api.UserEvent{Name: "deploy", Payload: []byte("v1.2.3")}, nil)
	require.NoError(t, err)
	// Filtered out here: another node, a missing service, a missing tag.
	for _, ev := range []*api.UserEvent{
		{Name: "skip", NodeFilter: "^nope$"},
		{Name: "skip", ServiceFilter: "^db$"},
		{Name: "skip", ServiceFilter: "web", TagFilter: "v2"},
	} {
		_, _, err := client.Event().Fire(ev, nil)
		require.NoError(t, err)
	}
	id2, _, err := client.Event().Fire(&api.UserEvent{Name: "deploy", ServiceFilter: "web", TagFilter: "v1"}, nil)
	require.NoError(t, err)

	var events []*api.UserEvent
	var meta *api.QueryMeta
	waitFor(t, "both deploy events listed", func() bool {
		events, meta, err = client.Event().List("", nil)
		return err == nil && len(events) == 2
	})
	require.Equal(t, id, events[0].ID)
	require.Equal(t, []byte("v1.2.3"), events[0].Payload)
	require.NotZero(t, events[0].LTime)
	require.Equal(t, id2, events[1].ID)
	require.Equal(t, client.Event().IDToIndex(id2), meta.LastIndex)

	_, _, err = client.Event().Fire(&api.UserEvent{Name: "big", Payload: []byte(strings.Repeat("x", 600))}, nil)
	require.ErrorContains(t, err, "413")
	require.ErrorContains(t, err, "gossip limit")
	_, _, err = client.Event().Fire(&api.UserEvent{Name: "bad", NodeFilter: "("}, nil)
	require.ErrorContains(t, err, "400")

	done := make(chan []*api.UserEvent, 1)
	go func() {
		evs, _, err := client.Event().List("deploy", &api.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: time.Minute})
		if err != nil {
			evs = nil
		}
		done <- evs
	}()
	id3, _, err := client.Event().Fire(&api.UserEvent{Name: "deploy", Payload: []byte("v2")}, nil)
	require.NoError(t, err)
	select {
	case evs := <-done:
		require.Len(t, evs, 3)
		require.Equal(t, id3, evs[2].ID)
	case <-time.After(10 * time.Second):
		t.Fatal("blocking event list did not wake")
	}
	_ = a
}

func TestAgent_EventWithoutGossip(t *testing.T) {
	cfg := devConfig()
	cfg.PortSerfLAN = -1
	a, _ := startAgent(t, cfg, nil)
	err := a.FireEvent(&httpapi.UserEvent{Name: "x"})
	require.True(t, errors.Is(err, ErrNoGossip), "%v", err)
}

// TestAgent_ConfigWatchReload: a config watch with a script handler fires
// with the current data at start and on each change; a reload that drops
// it stops it and one that adds another starts that one.
func TestAgent_ConfigWatchReload(t *testing.T) {
	dir := t.TempDir()
	out1, out2 := filepath.Join(dir, "w1"), filepath.Join(dir, "w2")
	scriptWatch := func(key, out string) map[string]any {
		return map[string]any{"type": "key", "key": key, "handler_type": "script",
			"args": []any{"/bin/sh", "-c", `cat >> "$0"; echo " idx=$CONSUL_INDEX" >> "$0"`, out}}
	}
	cfg := devConfig()
	cfg.Watches = []map[string]any{scriptWatch("w/one", out1)}
	next := devConfig()
	next.Watches = []map[string]any{scriptWatch("w/two", out2)}
	reloadCfg := cfg
	a, client := startAgent(t, cfg, func(a *Agent) {
		a.opts.Reload = func() (*config.RuntimeConfig, []string, error) { return reloadCfg, nil, nil }
	})
	lines := func(path string) []string {
		b, _ := os.ReadFile(path)
		return strings.FieldsFunc(string(b), func(r rune) bool { return r == '\n' })
	}
	waitFor(t, "first run of watch 1 (key missing: null)", func() bool {
		l := lines(out1)
		return len(l) == 1 && strings.HasPrefix(l[0], "null idx=")
	})
	_, err := client.KV().Put(&api.KVPair{Key: "w/one", Value: []byte("hello")}, nil)
	require.NoError(t, err)
	waitFor(t, "watch 1 sees the write", func() bool {
		l := lines(out1)
		return len(l) == 2 && strings.Contains(l[1], `"Value":"aGVsbG8="`)
	})

	reloadCfg = next
	require.NoError(t, a.Reload())
	waitFor(t, "watch 2 first run", func() bool { return len(lines(out2)) == 1 })
	_, err = client.KV().Put(&api.KVPair{Key: "w/one", Value: []byte("again")}, nil)
	require.NoError(t, err)
	_, err = client.KV().Put(&api.KVPair{Key: "w/two", Value: []byte("x")}, nil)
	require.NoError(t, err)
	waitFor(t, "watch 2 sees its write", func() bool { return len(lines(out2)) == 2 })
	require.Len(t, lines(out1), 2, "the removed watch must not fire any more")

	bad := devConfig()
	bad.Watches = []map[string]any{{"type": "key"}}
	reloadCfg = bad
	require.ErrorContains(t, a.Reload(), "key watch needs")
}
