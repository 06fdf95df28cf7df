package watch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/hashicorp/consul/api"
)

// HandlerFunc receives the watched data as JSON and the index it was read
// at. It is called from Run's goroutine, never concurrently, once for the
// first result and then once per change.
type HandlerFunc func(ctx context.Context, index uint64, data []byte)

// Retry backoff after a failed query.
const (
	retryMin = 500 * time.Millisecond
	retryMax = 15 * time.Second
)

// fetchFunc runs one (blocking) query: index is the view's index, result
// the whole view (for change detection) and deliver what the handler gets.
type fetchFunc func(c *api.Client, q *api.QueryOptions, last uint64) (index uint64, result, deliver any, err error)

// Run follows the plan with blocking queries through client until ctx is
// done, calling handler with the first result and then each time the view
// changes: a new index whose data differs from the last delivered one (a
// blocking query can return for writes that leave this view unchanged;
// those do not fire). Query errors are logged and retried with backoff.
// Run returns ctx's error.
func (p *Plan) Run(ctx context.Context, client *api.Client, handler HandlerFunc, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	fetch := p.fetcher()
	var (
		last     uint64
		lastHash [sha256.Size]byte
		fired    bool
		backoff  = retryMin
	)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		q := (&api.QueryOptions{
			Datacenter: p.Datacenter,
			Token:      p.Token,
			AllowStale: p.Stale,
			WaitIndex:  last,
		}).WithContext(ctx)
		index, result, deliver, err := fetch(client, q, last)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			logger.Warn("watch query failed", "type", p.Type, "error", err, "retry_in", backoff)
			if !sleep(ctx, backoff) {
				return ctx.Err()
			}
			backoff = min(backoff*2, retryMax)
			continue
		}
		backoff = retryMin
		if index == 0 {
			// Never block on index 0 in a tight loop.
			if !sleep(ctx, time.Second) {
				return ctx.Err()
			}
		}
		if fired && index == last {
			continue
		}
		last = index
		whole, err := json.Marshal(result)
		if err != nil {
			return fmt.Errorf("watch: encode result: %w", err)
		}
		h := sha256.Sum256(whole)
		if fired && h == lastHash {
			continue
		}
		data, err := json.Marshal(deliver)
		if err != nil {
			return fmt.Errorf("watch: encode result: %w", err)
		}
		lastHash, fired = h, true
		handler(ctx, index, data)
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Indent formats handler data for people (as `cairn watch` prints it).
func Indent(data []byte) []byte {
	var b bytes.Buffer
	if err := json.Indent(&b, data, "", "    "); err != nil {
		return data
	}
	return b.Bytes()
}

func (p *Plan) fetcher() fetchFunc {
	switch p.Type {
	case TypeKey:
		return func(c *api.Client, q *api.QueryOptions, _ uint64) (uint64, any, any, error) {
			pair, meta, err := c.KV().Get(p.Key, q)
			if err != nil {
				return 0, nil, nil, err
			}
			return meta.LastIndex, pair, pair, nil
		}
	case TypeKeyPrefix:
		return func(c *api.Client, q *api.QueryOptions, _ uint64) (uint64, any, any, error) {
			pairs, meta, err := c.KV().List(p.Prefix, q)
			if err != nil {
				return 0, nil, nil, err
			}
			if pairs == nil {
				pairs = api.KVPairs{}
			}
			return meta.LastIndex, pairs, pairs, nil
		}
	case TypeServices:
		return func(c *api.Client, q *api.QueryOptions, _ uint64) (uint64, any, any, error) {
			svcs, meta, err := c.Catalog().Services(q)
			if err != nil {
				return 0, nil, nil, err
			}
			return meta.LastIndex, svcs, svcs, nil
		}
	case TypeNodes:
		return func(c *api.Client, q *api.QueryOptions, _ uint64) (uint64, any, any, error) {
			nodes, meta, err := c.Catalog().Nodes(q)
			if err != nil {
				return 0, nil, nil, err
			}
			return meta.LastIndex, nodes, nodes, nil
		}
	case TypeService:
		return func(c *api.Client, q *api.QueryOptions, _ uint64) (uint64, any, any, error) {
			entries, meta, err := c.Health().ServiceMultipleTags(p.Service, p.Tags, p.PassingOnly, q)
			if err != nil {
				return 0, nil, nil, err
			}
			return meta.LastIndex, entries, entries, nil
		}
	case TypeChecks:
		return func(c *api.Client, q *api.QueryOptions, _ uint64) (uint64, any, any, error) {
			var (
				checks api.HealthChecks
				meta   *api.QueryMeta
				err    error
			)
			if p.Service != "" {
				checks, meta, err = c.Health().Checks(p.Service, q)
			} else {
				state := p.State
				if state == "" {
					state = "any"
				}
				checks, meta, err = c.Health().State(state, q)
			}
			if err != nil {
				return 0, nil, nil, err
			}
			return meta.LastIndex, checks, checks, nil
		}
	case TypeEvent:
		return p.fetchEvents
	default:
		return func(*api.Client, *api.QueryOptions, uint64) (uint64, any, any, error) {
			return 0, nil, nil, fmt.Errorf("%w: unknown watch type %q", ErrInvalid, p.Type)
		}
	}
}

// fetchEvents lists the events; the handler gets only those after the last
// one it saw (all of them the first time), as Consul's event watch does.
func (p *Plan) fetchEvents(c *api.Client, q *api.QueryOptions, last uint64) (uint64, any, any, error) {
	events, meta, err := c.Event().List(p.Name, q)
	if err != nil {
		return 0, nil, nil, err
	}
	if events == nil {
		events = []*api.UserEvent{}
	}
	deliver := events
	if last != 0 {
		for i, ev := range events {
			if eventIndex(ev.ID) == last {
				deliver = events[i+1:]
				break
			}
		}
	}
	return meta.LastIndex, events, deliver, nil
}

// eventIndex is api.Event.IDToIndex without its panic on a malformed ID.
func eventIndex(id string) (idx uint64) {
	defer func() {
		if recover() != nil {
			idx = 0
		}
	}()
	if len(id) != 36 {
		return 0
	}
	return (&api.Event{}).IDToIndex(id)
}
