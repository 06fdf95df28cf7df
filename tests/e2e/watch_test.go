package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"

	"github.com/cairn-io/cairn/internal/testutil"
)

// syncBuffer is a bytes.Buffer safe for a writer process and a reader test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startWatchCmd runs `cairn watch args...` against agent a until the test
// ends (then SIGINT, which must exit 0).
func startWatchCmd(t *testing.T, a *testutil.Agent, args ...string) (stdout, stderr *syncBuffer) {
	t.Helper()
	stdout, stderr = &syncBuffer{}, &syncBuffer{}
	cmd := exec.Command(testutil.BuildBinary(t), append([]string{"watch"}, args...)...)
	cmd.Env = append(cleanEnv(), "CONSUL_HTTP_ADDR="+a.HTTPAddr())
	cmd.Stdout, cmd.Stderr = stdout, stderr
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("cairn watch exited with %v after SIGINT; stderr: %s", err, stderr.String())
			}
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Errorf("cairn watch did not stop on SIGINT")
		}
	})
	return stdout, stderr
}

// jsonDocs decodes a stream of JSON documents.
func jsonDocs(s string) ([]json.RawMessage, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	var out []json.RawMessage
	for {
		var m json.RawMessage
		err := dec.Decode(&m)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, m)
	}
}

// waitDocs waits until the stream holds at least n complete documents.
func waitDocs(t *testing.T, out, errOut *syncBuffer, n int) []json.RawMessage {
	t.Helper()
	var docs []json.RawMessage
	poll(t, 10*time.Second, func() error {
		var err error
		docs, err = jsonDocs(out.String())
		if err == nil && len(docs) >= n {
			return nil
		}
		return fmt.Errorf("want %d documents, have %d (err %v); stdout %q stderr %q", n, len(docs), err, out.String(), errOut.String())
	})
	return docs
}

func kvValue(t *testing.T, doc json.RawMessage) string {
	t.Helper()
	if string(doc) == "null" {
		return "<missing>"
	}
	var p api.KVPair
	require.NoError(t, json.Unmarshal(doc, &p))
	return string(p.Value)
}

// TestWatchCommand_KeyOncePerChange: `cairn watch -type key` prints the
// current value first and then exactly one document per change of the key;
// writes to other keys (which move the KV index) print nothing. A final
// sentinel write proves no extra document slipped in before it.
func TestWatchCommand_KeyOncePerChange(t *testing.T) {
	t.Parallel()
	a := startDev(t)
	kv := a.Client().KV()
	put := func(k, v string) {
		_, err := kv.Put(&api.KVPair{Key: k, Value: []byte(v)}, nil)
		require.NoError(t, err)
	}
	out, errOut := startWatchCmd(t, a, "-type", "key", "-key", "app/config")
	waitDocs(t, out, errOut, 1)

	for _, v := range []string{"v1", "v2", "v3"} {
		put("app/other", "noise-"+v) // same view, new index: no output
		put("app/config", v)
		waitDocs(t, out, errOut, 2+int(v[1]-'1'))
	}
	put("app/other", "more noise")
	put("app/config", "sentinel")
	docs := waitDocs(t, out, errOut, 5)
	var got []string
	for _, d := range docs {
		got = append(got, kvValue(t, d))
	}
	require.Equal(t, []string{"<missing>", "v1", "v2", "v3", "sentinel"}, got)
}

// TestWatchCommand_HandlerAndEvents: with a handler the data goes to its
// stdin with CONSUL_INDEX set; an event watch hands each event over once.
func TestWatchCommand_HandlerAndEvents(t *testing.T) {
	t.Parallel()
	a := startDev(t)
	c := a.Client()

	dir := t.TempDir()
	outFile := filepath.Join(dir, "handler.out")
	// The handler words are joined and run with sh -c, as Consul does.
	_, errOut := startWatchCmd(t, a, "-type", "keyprefix", "-prefix", "h/",
		`{ echo "index=$CONSUL_INDEX"; cat; echo; } >>`, outFile)
	read := func() string { b, _ := os.ReadFile(outFile); return string(b) }
	poll(t, 10*time.Second, func() error {
		if !strings.Contains(read(), "index=") {
			return fmt.Errorf("handler not run yet; stderr %q", errOut.String())
		}
		return nil
	})
	_, err := c.KV().Put(&api.KVPair{Key: "h/a", Value: []byte("x")}, nil)
	require.NoError(t, err)
	poll(t, 10*time.Second, func() error {
		if !strings.Contains(read(), `"Key":"h/a"`) {
			return fmt.Errorf("handler did not see h/a: %q", read())
		}
		return nil
	})
	require.Equal(t, 2, strings.Count(read(), "index="), read())
	require.NotContains(t, read(), "index=\n", "CONSUL_INDEX must be set")

	out, errOut2 := startWatchCmd(t, a, "-type", "event", "-name", "deploy")
	waitDocs(t, out, errOut2, 1) // no events yet: []
	var ids []string
	for i := range 3 {
		id, _, err := c.Event().Fire(&api.UserEvent{Name: "deploy", Payload: []byte(fmt.Sprint(i))}, nil)
		require.NoError(t, err)
		ids = append(ids, id)
		_, _, err = c.Event().Fire(&api.UserEvent{Name: "other"}, nil)
		require.NoError(t, err)
	}
	var seen []string
	poll(t, 10*time.Second, func() error {
		docs, err := jsonDocs(out.String())
		if err != nil {
			return err
		}
		seen = nil
		for _, d := range docs {
			var evs []api.UserEvent
			if err := json.Unmarshal(d, &evs); err != nil {
				return err
			}
			for _, ev := range evs {
				seen = append(seen, ev.ID)
			}
		}
		if len(seen) < len(ids) {
			return fmt.Errorf("saw %d of %d events", len(seen), len(ids))
		}
		return nil
	})
	require.Equal(t, ids, seen, "each event exactly once, in order")
}

// TestWatch_ConfigWatches: watches in the agent config run with the agent:
// a script handler gets the data on stdin from the start; after the config
// file changes and the agent reloads, the removed watch stops and the new
// one (an HTTP handler here) starts.
func TestWatch_ConfigWatches(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	outFile := filepath.Join(dir, "script.out")
	cfgFile := filepath.Join(dir, "watches.json")
	writeCfg := func(watches ...map[string]any) {
		b, err := json.Marshal(map[string]any{"watches": watches})
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(cfgFile, b, 0o600))
	}
	writeCfg(map[string]any{"type": "key", "key": "cfg/one", "handler_type": "script",
		"args": []string{"/bin/sh", "-c", `cat >> "$0"; echo >> "$0"`, outFile}})
	a := startDev(t, "-config-file", cfgFile)
	c := a.Client()
	read := func() string { b, _ := os.ReadFile(outFile); return string(b) }

	poll(t, 10*time.Second, func() error {
		if !strings.HasPrefix(read(), "null\n") {
			return fmt.Errorf("script handler output %q", read())
		}
		return nil
	})
	_, err := c.KV().Put(&api.KVPair{Key: "cfg/one", Value: []byte("hello")}, nil)
	require.NoError(t, err)
	poll(t, 10*time.Second, func() error {
		if !strings.Contains(read(), `"Value":"aGVsbG8="`) {
			return fmt.Errorf("script handler output %q", read())
		}
		return nil
	})

	// Swap the watch for an HTTP one posting to a local listener.
	posts := make(chan string, 16)
	srv := newPostServer(t, posts)
	writeCfg(map[string]any{"type": "key", "key": "cfg/two", "handler_type": "http",
		"http_handler_config": map[string]any{"path": srv + "/hook", "method": "POST", "timeout": "5s"}})
	require.NoError(t, c.Agent().Reload())
	select {
	case body := <-posts:
		require.Equal(t, "null", body)
	case <-time.After(10 * time.Second):
		t.Fatal("http handler of the reloaded watch not called")
	}
	before := read()
	_, err = c.KV().Put(&api.KVPair{Key: "cfg/one", Value: []byte("after-reload")}, nil)
	require.NoError(t, err)
	_, err = c.KV().Put(&api.KVPair{Key: "cfg/two", Value: []byte("two")}, nil)
	require.NoError(t, err)
	select {
	case body := <-posts:
		require.Contains(t, body, `"Key":"cfg/two"`)
	case <-time.After(10 * time.Second):
		t.Fatal("http handler not called for the change")
	}
	require.Equal(t, before, read(), "the removed script watch must not run after the reload")
}

// newPostServer is a local HTTP server that forwards request bodies to
// posts; it stops at test end.
func newPostServer(t *testing.T, posts chan<- string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Header.Get("X-Consul-Index") == "" {
			posts <- "missing X-Consul-Index"
			return
		}
		posts <- string(b)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}
