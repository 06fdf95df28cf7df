package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"

	"github.com/hashicorp/consul/api"

	"github.com/cairn-io/cairn/internal/watch"
)

// watchSet holds the running config watches keyed by their definition (as
// canonical JSON), so a reload can stop the removed ones and start the new
// ones while leaving unchanged ones alone. The zero value is ready to use.
type watchSet struct {
	mu      sync.Mutex // guards the fields below; held while starting and stopping
	running map[string]*runningWatch
	stopped bool // set by stopWatches at shutdown: no more watches start
}

// runningWatch is one watch goroutine and how to stop it.
type runningWatch struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// parsedWatch is a validated config watch.
type parsedWatch struct {
	key  string
	plan *watch.Plan
}

// parseWatches validates every config watch; config watches need a handler.
func parseWatches(defs []map[string]any) ([]parsedWatch, error) {
	out := make([]parsedWatch, 0, len(defs))
	seen := map[string]bool{}
	for i, def := range defs {
		p, err := watch.Parse(def)
		if err != nil {
			return nil, fmt.Errorf("%w: watches[%d]: %w", ErrInvalidOptions, i, err)
		}
		if p.Handler.Type == "" {
			return nil, fmt.Errorf("%w: watches[%d]: a watch in the agent config needs a handler (args, handler or http_handler_config)",
				ErrInvalidOptions, i)
		}
		b, err := json.Marshal(def)
		if err != nil {
			return nil, fmt.Errorf("%w: watches[%d]: %w", ErrInvalidOptions, i, err)
		}
		if seen[string(b)] {
			continue // an identical definition runs once
		}
		seen[string(b)] = true
		out = append(out, parsedWatch{key: string(b), plan: p})
	}
	return out, nil
}

// reloadWatches makes the running config watches those defined in defs:
// it stops the ones no longer defined and starts the new ones (Start and
// Reload call it). Nothing changes when a definition is invalid. Watches query this agent's own HTTP API, so they need it enabled. Script
// handlers from config files are allowed without enable_script_checks: the
// files are the operator's, and no API adds watches.
func (a *Agent) reloadWatches(defs []map[string]any) error {
	parsed, err := parseWatches(defs)
	if err != nil {
		return err
	}
	if len(parsed) > 0 && a.HTTPAddr() == "" {
		return fmt.Errorf("%w: watches need the HTTP API (ports.http is -1)", ErrInvalidOptions)
	}
	ws := &a.watches
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.stopped {
		return ErrShutdown
	}
	if ws.running == nil {
		ws.running = map[string]*runningWatch{}
	}
	want := make(map[string]bool, len(parsed))
	for _, pw := range parsed {
		want[pw.key] = true
	}
	for key, rw := range ws.running {
		if !want[key] {
			rw.cancel()
			<-rw.done
			delete(ws.running, key)
			a.logger.Info("watch stopped", "watch", key)
		}
	}
	for _, pw := range parsed {
		if _, ok := ws.running[pw.key]; ok {
			continue
		}
		rw, err := a.startWatch(pw)
		if err != nil {
			return err
		}
		ws.running[pw.key] = rw
		a.logger.Info("watch started", "watch", pw.key)
	}
	return nil
}

// startWatch runs one plan against this agent's HTTP API until its context
// (a child of the agent's stop context) ends.
func (a *Agent) startWatch(pw parsedWatch) (*runningWatch, error) {
	logger := a.logger.With("component", "watch", "type", pw.plan.Type)
	h, err := watch.NewHandler(pw.plan.Handler, watch.HandlerOptions{Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("%w: watch %s: %w", ErrInvalidOptions, pw.key, err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	token := pw.plan.Token
	if token == "" {
		token = a.cfg.ACL.Tokens.Default
	}
	client, err := api.NewClient(&api.Config{
		Address:    a.HTTPAddr(),
		Scheme:     "http",
		Token:      token,
		HttpClient: &http.Client{Transport: tr},
	})
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("agent: watch client: %w", err)
	}
	ctx, cancel := context.WithCancel(a.stopCtx)
	rw := &runningWatch{cancel: cancel, done: make(chan struct{})}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		defer close(rw.done)
		defer tr.CloseIdleConnections()
		defer h.Close()
		_ = pw.plan.Run(ctx, client, h.Func, logger)
	}()
	return rw, nil
}

// stopWatches stops every config watch and waits for them.
func (a *Agent) stopWatches() {
	ws := &a.watches
	ws.mu.Lock()
	defer ws.mu.Unlock()
	ws.stopped = true
	for key, rw := range ws.running {
		rw.cancel()
		<-rw.done
		delete(ws.running, key)
	}
}
