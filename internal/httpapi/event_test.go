package httpapi

import (
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"

	"github.com/cairn-io/cairn/internal/rpc"
)

// eventAgent adds an in-memory EventBackend to fakeAgent.
type eventAgent struct {
	*fakeAgent
	emu    sync.Mutex
	events []*UserEvent
	ch     chan struct{}
	seq    int
	fired  []*UserEvent
}

func newEventAgent() *eventAgent {
	return &eventAgent{fakeAgent: newFakeAgent(), ch: make(chan struct{})}
}

func (e *eventAgent) FireEvent(ev *UserEvent) error {
	if ev.Name == "big" {
		return fmt.Errorf("%w: too big", rpc.ErrTooLarge)
	}
	if ev.Name == "bad" {
		return fmt.Errorf("%w: bad filter", rpc.ErrBadRequest)
	}
	e.emu.Lock()
	e.seq++
	ev.ID = fmt.Sprintf("00000000-0000-0000-0000-%012d", e.seq)
	ev.Version = 1
	e.fired = append(e.fired, ev)
	e.emu.Unlock()
	e.deliver(ev)
	return nil
}

func (e *eventAgent) deliver(ev *UserEvent) {
	e.emu.Lock()
	defer e.emu.Unlock()
	cp := *ev
	e.events = append(e.events, &cp)
	close(e.ch)
	e.ch = make(chan struct{})
}

func (e *eventAgent) Events() ([]*UserEvent, <-chan struct{}) {
	e.emu.Lock()
	defer e.emu.Unlock()
	return append([]*UserEvent(nil), e.events...), e.ch
}

func TestEvent_IDToIndexMatchesClient(t *testing.T) {
	var e api.Event
	for _, id := range []string{
		"b54fe110-7af5-cafc-d1fb-afc8ba432b1c",
		"00000000-0000-0000-0000-000000000001",
		"ffffffff-ffff-ffff-ffff-ffffffffffff",
	} {
		require.Equal(t, e.IDToIndex(id), EventIDToIndex(id), id)
	}
	for _, bad := range []string{"", "nope", "b54fe110x7af5-cafc-d1fb-afc8ba432b1c", "g54fe110-7af5-cafc-d1fb-afc8ba432b1c"} {
		require.Zero(t, EventIDToIndex(bad), bad)
	}
}

func TestEvent_Fire(t *testing.T) {
	ea := newEventAgent()
	env := newTestEnv(t, func(c *Config) { c.Agent = ea })

	t.Run("payload and filters", func(t *testing.T) {
		rec := env.do("PUT", "/v1/event/fire/deploy?node=web-.*&service=api&tag=v1", "hello")
		require.Equal(t, 200, rec.Code, rec.Body.String())
		var out api.UserEvent
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &out))
		require.Equal(t, "deploy", out.Name)
		require.Equal(t, []byte("hello"), out.Payload)
		require.Equal(t, "web-.*", out.NodeFilter)
		require.Equal(t, "api", out.ServiceFilter)
		require.Equal(t, "v1", out.TagFilter)
		require.Equal(t, 1, out.Version)
		require.NotEmpty(t, out.ID)
	})
	t.Run("no payload is null", func(t *testing.T) {
		rec := env.do("PUT", "/v1/event/fire/empty", "")
		require.Equal(t, 200, rec.Code)
		var raw map[string]any
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &raw))
		require.Nil(t, raw["Payload"])
		require.Contains(t, raw, "LTime")
	})
	for _, tc := range []struct {
		name, target string
		code         int
	}{
		{"missing name", "/v1/event/fire/", 400},
		{"backend too large", "/v1/event/fire/big", 413},
		{"backend bad request", "/v1/event/fire/bad", 400},
		{"other datacenter", "/v1/event/fire/x?dc=dc9", 501},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := env.do("PUT", tc.target, "p")
			require.Equal(t, tc.code, rec.Code, rec.Body.String())
			require.NotEmpty(t, rec.Body.String())
		})
	}
	t.Run("huge body", func(t *testing.T) {
		rec := env.do("PUT", "/v1/event/fire/x", string(make([]byte, maxEventBody+1)))
		require.Equal(t, 413, rec.Code)
	})
	t.Run("wrong method", func(t *testing.T) {
		require.Equal(t, 405, env.do("GET", "/v1/event/fire/x", "").Code)
	})
}

func TestEvent_NoBackend(t *testing.T) {
	env := newTestEnv(t)
	require.Equal(t, 501, env.do("PUT", "/v1/event/fire/x", "").Code)
	require.Equal(t, 501, env.do("GET", "/v1/event/list", "").Code)
}

func TestEvent_ListAndBlocking(t *testing.T) {
	ea := newEventAgent()
	env := newTestEnv(t, func(c *Config) { c.Agent = ea })

	rec := env.do("GET", "/v1/event/list", "")
	require.Equal(t, 200, rec.Code)
	require.JSONEq(t, "[]", rec.Body.String())
	require.Equal(t, "1", rec.Header().Get("X-Consul-Index"))

	require.Equal(t, 200, env.do("PUT", "/v1/event/fire/a", "1").Code)
	require.Equal(t, 200, env.do("PUT", "/v1/event/fire/b", "2").Code)

	list := func(target string) ([]api.UserEvent, uint64) {
		rec := env.do("GET", target, "")
		require.Equal(t, 200, rec.Code, rec.Body.String())
		var out []api.UserEvent
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &out))
		idx, err := strconv.ParseUint(rec.Header().Get("X-Consul-Index"), 10, 64)
		require.NoError(t, err)
		return out, idx
	}
	all, idx := list("/v1/event/list")
	require.Len(t, all, 2)
	require.Equal(t, EventIDToIndex(all[1].ID), idx)
	onlyA, idxA := list("/v1/event/list?name=a")
	require.Len(t, onlyA, 1)
	require.Equal(t, EventIDToIndex(onlyA[0].ID), idxA)

	t.Run("different index answers at once", func(t *testing.T) {
		got, _ := list("/v1/event/list?index=12345&wait=1m")
		require.Len(t, got, 2)
	})
	t.Run("same index times out", func(t *testing.T) {
		start := time.Now()
		got, gotIdx := list(fmt.Sprintf("/v1/event/list?index=%d&wait=50ms", idx))
		require.GreaterOrEqual(t, time.Since(start), 50*time.Millisecond)
		require.Len(t, got, 2)
		require.Equal(t, idx, gotIdx)
	})
	t.Run("woken by a new event", func(t *testing.T) {
		done := make(chan []api.UserEvent, 1)
		go func() {
			got, _ := list(fmt.Sprintf("/v1/event/list?index=%d&wait=1m", idx))
			done <- got
		}()
		require.Equal(t, 200, env.do("PUT", "/v1/event/fire/c", "3").Code)
		select {
		case got := <-done:
			require.Len(t, got, 3)
			require.Equal(t, "c", got[2].Name)
		case <-time.After(10 * time.Second):
			t.Fatal("blocking list did not wake on a new event")
		}
	})
	t.Run("name filter blocks past other names", func(t *testing.T) {
		done := make(chan []api.UserEvent, 1)
		go func() {
			got, _ := list(fmt.Sprintf("/v1/event/list?name=a&index=%d&wait=1m", idxA))
			done <- got
		}()
		require.Equal(t, 200, env.do("PUT", "/v1/event/fire/other", "").Code)
		select {
		case <-done:
			t.Fatal("a list of name=a woke for an event of another name")
		case <-time.After(100 * time.Millisecond):
		}
		require.Equal(t, 200, env.do("PUT", "/v1/event/fire/a", "again").Code)
		select {
		case got := <-done:
			require.Len(t, got, 2)
		case <-time.After(10 * time.Second):
			t.Fatal("blocking list did not wake on a new event of its name")
		}
	})
}
