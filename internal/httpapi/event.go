package httpapi

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-io/cairn/internal/acl"
)

// UserEvent is a user event as /v1/event/fire returns it and /v1/event/list
// lists it (the official client's api.UserEvent). Payload is sent as
// base64 by encoding/json, as Consul does.
type UserEvent struct {
	ID            string
	Name          string
	Payload       []byte
	NodeFilter    string
	ServiceFilter string
	TagFilter     string
	Version       int
	LTime         uint64
}

// EventBackend is implemented by agents that carry user events over gossip.
// The /v1/event/* endpoints use it through a type assertion on the
// AgentBackend; an agent without it answers 501. Methods are safe for
// concurrent use.
type EventBackend interface {
	// FireEvent validates ev (name, filter regexps, size), fills in its ID
	// and Version and broadcasts it. Validation failures wrap
	// rpc.ErrBadRequest, an event over the gossip size limit wraps
	// rpc.ErrTooLarge.
	FireEvent(ev *UserEvent) error
	// Events returns the events this agent received, oldest first, and a
	// channel that is closed when the next one arrives. The returned slice
	// and events must not be modified.
	Events() ([]*UserEvent, <-chan struct{})
}

// eventAuthorizer is the optional part of an acl.Authorizer that knows
// Consul's event rules. Authorizers without it fall back to the agent
// rules of this node (agent:write to fire, agent:read to list).
type eventAuthorizer interface {
	EventRead(name string) bool
	EventWrite(name string) bool
}

// maxEventBody bounds what a fire request may upload; anything this large is
// far over the gossip limit, which the backend reports precisely.
const maxEventBody = 64 << 10

var errNoEvents = &httpError{code: http.StatusNotImplemented, msg: "this agent does not take part in gossip: user events are unavailable"}

func (h *handler) eventBackend() (EventBackend, error) {
	eb, ok := h.cfg.Agent.(EventBackend)
	if !ok {
		return nil, errNoEvents
	}
	return eb, nil
}

func (h *handler) canFireEvent(a acl.Authorizer, name string) bool {
	if ea, ok := a.(eventAuthorizer); ok {
		return ea.EventWrite(name)
	}
	return a.AgentWrite(h.cfg.NodeName)
}

func (h *handler) canReadEvent(a acl.Authorizer, name string) bool {
	if ea, ok := a.(eventAuthorizer); ok {
		return ea.EventRead(name)
	}
	return a.AgentRead(h.cfg.NodeName)
}

// eventFire serves PUT /v1/event/fire/:name (?node, ?service, ?tag
// regexps; the body is the payload).
func (h *handler) eventFire(w http.ResponseWriter, r *http.Request, rest string) error {
	name, err := url.PathUnescape(rest)
	if err != nil || name == "" {
		return badRequest("Missing name: the event name goes in the path, /v1/event/fire/<name>")
	}
	q := queryParams(r)
	if dc := q.Get("dc"); dc != "" && dc != h.cfg.Datacenter {
		return &httpError{code: http.StatusNotImplemented,
			msg: fmt.Sprintf("firing events in another datacenter (%q) is not supported", dc)}
	}
	if err := authorize(r, func(a acl.Authorizer) bool { return h.canFireEvent(a, name) }); err != nil {
		return err
	}
	eb, err := h.eventBackend()
	if err != nil {
		return err
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxEventBody))
	if err != nil {
		if isMaxBytes(err) {
			return tooLarge("Event payload too large: over %d bytes (user events travel by gossip; keep the payload under ~100 bytes)", maxEventBody)
		}
		return badRequest("Failed to read the event payload: %v", err)
	}
	ev := &UserEvent{
		Name:          name,
		NodeFilter:    q.Get("node"),
		ServiceFilter: q.Get("service"),
		TagFilter:     q.Get("tag"),
	}
	if len(body) > 0 {
		ev.Payload = body
	}
	if err := eb.FireEvent(ev); err != nil {
		return err
	}
	return writeJSON(w, r, ev)
}

// eventList serves GET /v1/event/list (?name; blocking on ?index with the
// ID-derived index Consul uses: the index is not monotonic, so a request
// blocks while the current index equals the given one).
func (h *handler) eventList(w http.ResponseWriter, r *http.Request, _ string) error {
	opts, err := h.queryOptions(r)
	if err != nil {
		return err
	}
	authz, err := authorizerOf(r)
	if err != nil {
		return err
	}
	eb, err := h.eventBackend()
	if err != nil {
		return err
	}
	name := queryParams(r).Get("name")

	var timeout <-chan time.Time
	if opts.MinQueryIndex > 0 {
		wait := opts.MaxQueryTime
		// Spread the wake-ups of many blocked callers, as Consul does.
		wait += rand.N(wait/16 + 1)
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	for {
		all, changed := eb.Events()
		out := make([]*UserEvent, 0, len(all))
		for _, ev := range all {
			if name != "" && ev.Name != name {
				continue
			}
			if !h.canReadEvent(authz, ev.Name) {
				continue
			}
			out = append(out, ev)
		}
		idx := uint64(1)
		if len(out) > 0 {
			if v := EventIDToIndex(out[len(out)-1].ID); v > 0 {
				idx = v
			}
		}
		if opts.MinQueryIndex == 0 || idx != opts.MinQueryIndex {
			w.Header().Set("X-Consul-Index", strconv.FormatUint(idx, 10))
			return writeJSON(w, r, out)
		}
		select {
		case <-changed:
		case <-timeout:
			opts.MinQueryIndex = 0 // answer with what there is
		case <-r.Context().Done():
			return r.Context().Err()
		}
	}
}

// errBadEventID is returned by parseEventID for a malformed event ID.
var errBadEventID = errors.New("httpapi: malformed event ID")

// EventIDToIndex converts an event ID (a UUID) into the index that
// /v1/event/list reports, the same way the official client's
// Event.IDToIndex does: the first and last 64 bits XORed. A malformed ID
// gives 0.
func EventIDToIndex(id string) uint64 {
	hi, lo, err := parseEventID(id)
	if err != nil {
		return 0
	}
	return hi ^ lo
}

// parseEventID returns the two 64-bit halves of a UUID-formatted event ID.
func parseEventID(id string) (hi, lo uint64, err error) {
	if len(id) != 36 || id[8] != '-' || id[13] != '-' || id[18] != '-' || id[23] != '-' {
		return 0, 0, fmt.Errorf("%w: %q", errBadEventID, id)
	}
	hex := strings.ReplaceAll(id, "-", "")
	hi, err1 := strconv.ParseUint(hex[:16], 16, 64)
	lo, err2 := strconv.ParseUint(hex[16:], 16, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("%w: %q", errBadEventID, id)
	}
	return hi, lo, nil
}
