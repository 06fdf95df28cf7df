package agent

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/serf/serf"

	"github.com/cairn-io/cairn/internal/gossip"
	"github.com/cairn-io/cairn/internal/httpapi"
	"github.com/cairn-io/cairn/internal/rpc"
	"github.com/cairn-io/cairn/internal/state"
)

var _ httpapi.EventBackend = (*Agent)(nil)

// User events travel as serf user events named eventPrefix+name whose
// payload is the msgpack-encoded wireEvent (Consul's naming, so a Cairn
// event is recognisable in a mixed pool's logs).
const eventPrefix = "consul:event:"

// eventBufferSize is how many received events an agent keeps for
// /v1/event/list (Consul keeps the last 256).
const eventBufferSize = 256

// eventSizeLimit is serf's default UserEventSizeLimit: name plus encoded
// event must fit, after serf adds its own framing (serfFraming bytes at
// most for a short name).
const (
	eventSizeLimit = 512
	serfFraming    = 32
)

// Errors of user events.
var (
	ErrEventTooLarge = fmt.Errorf("agent: user event too large: %w", rpc.ErrTooLarge)
	ErrEventInvalid  = fmt.Errorf("agent: invalid user event: %w", rpc.ErrBadRequest)
)

// wireEvent is what goes inside the serf payload. LTime is serf's.
type wireEvent struct {
	ID            string
	Name          string
	Payload       []byte
	NodeFilter    string
	ServiceFilter string
	TagFilter     string
	Version       int
}

var msgpackHandle = &codec.MsgpackHandle{}

func encodeEvent(ev *wireEvent) ([]byte, error) {
	var b []byte
	if err := codec.NewEncoderBytes(&b, msgpackHandle).Encode(ev); err != nil {
		return nil, fmt.Errorf("agent: encode user event: %w", err)
	}
	return b, nil
}

func decodeEvent(b []byte) (*wireEvent, error) {
	var ev wireEvent
	if err := codec.NewDecoderBytes(b, msgpackHandle).Decode(&ev); err != nil {
		return nil, fmt.Errorf("agent: decode user event: %w", err)
	}
	return &ev, nil
}

// validateEvent checks the name and compiles the filters, as firing and
// receiving agents must agree on them.
func validateEvent(ev *httpapi.UserEvent) error {
	switch {
	case ev.Name == "":
		return fmt.Errorf("%w: missing event name", ErrEventInvalid)
	case strings.HasPrefix(ev.Name, "_"):
		return fmt.Errorf("%w: event name %q starts with an underscore, which is reserved", ErrEventInvalid, ev.Name)
	case ev.TagFilter != "" && ev.ServiceFilter == "":
		return fmt.Errorf("%w: a tag filter needs a service filter", ErrEventInvalid)
	}
	for _, f := range []struct{ what, expr string }{
		{"node", ev.NodeFilter}, {"service", ev.ServiceFilter}, {"tag", ev.TagFilter},
	} {
		if f.expr == "" {
			continue
		}
		if _, err := regexp.Compile(f.expr); err != nil {
			return fmt.Errorf("%w: %s filter %q is not a valid regular expression: %v", ErrEventInvalid, f.what, f.expr, err)
		}
	}
	return nil
}

// eventMatches reports whether this node should keep ev: the node filter
// must match the node name, the service filter the name of one of the
// local services and, with a tag filter, one of that service's tags.
// A filter that does not compile matches nothing.
func eventMatches(ev *wireEvent, node string, services map[string]*state.NodeService) bool {
	if ev.NodeFilter != "" {
		re, err := regexp.Compile(ev.NodeFilter)
		if err != nil || !re.MatchString(node) {
			return false
		}
	}
	if ev.ServiceFilter == "" {
		return true
	}
	svcRe, err := regexp.Compile(ev.ServiceFilter)
	if err != nil {
		return false
	}
	var tagRe *regexp.Regexp
	if ev.TagFilter != "" {
		if tagRe, err = regexp.Compile(ev.TagFilter); err != nil {
			return false
		}
	}
	for _, svc := range services {
		if svc == nil || !svcRe.MatchString(svc.Service) {
			continue
		}
		if tagRe == nil {
			return true
		}
		for _, tag := range svc.Tags {
			if tagRe.MatchString(tag) {
				return true
			}
		}
	}
	return false
}

// eventRing keeps the last eventBufferSize events, oldest first, and wakes
// blocked readers when one arrives. The zero value is ready to use.
type eventRing struct {
	mu     sync.Mutex
	buf    []*httpapi.UserEvent // ring storage, len <= eventBufferSize
	next   int                  // where the next event goes once buf is full
	ids    map[string]struct{}  // IDs in buf, to drop gossip duplicates
	notify chan struct{}        // closed and replaced on every add
}

// add stores ev unless an event with its ID is already held; it reports
// whether it was added.
func (r *eventRing) add(ev *httpapi.UserEvent) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ids == nil {
		r.ids = make(map[string]struct{}, eventBufferSize)
	}
	if _, dup := r.ids[ev.ID]; dup {
		return false
	}
	if len(r.buf) < eventBufferSize {
		r.buf = append(r.buf, ev)
	} else {
		delete(r.ids, r.buf[r.next].ID)
		r.buf[r.next] = ev
		r.next = (r.next + 1) % eventBufferSize
	}
	r.ids[ev.ID] = struct{}{}
	if r.notify != nil {
		close(r.notify)
		r.notify = nil
	}
	return true
}

// list returns the events oldest first and a channel closed by the next add.
func (r *eventRing) list() ([]*httpapi.UserEvent, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*httpapi.UserEvent, 0, len(r.buf))
	out = append(out, r.buf[r.next:]...)
	out = append(out, r.buf[:r.next]...)
	if r.notify == nil {
		r.notify = make(chan struct{})
	}
	return out, r.notify
}

// FireEvent validates ev, gives it an ID and broadcasts it on the LAN
// gossip pool; this agent receives it like every other one.
func (a *Agent) FireEvent(ev *httpapi.UserEvent) error {
	if err := validateEvent(ev); err != nil {
		return err
	}
	if a.lan == nil {
		return fmt.Errorf("agent: user events need the LAN gossip pool (ports.serf_lan is -1): %w", ErrNoGossip)
	}
	s := a.lan.Serf()
	if s == nil {
		return fmt.Errorf("agent: fire user event: %w", gossip.ErrNotStarted)
	}
	id, err := newUUID()
	if err != nil {
		return fmt.Errorf("agent: fire user event: %w", err)
	}
	ev.ID, ev.Version, ev.LTime = id, 1, 0
	w := &wireEvent{ID: ev.ID, Name: ev.Name, Payload: ev.Payload, NodeFilter: ev.NodeFilter,
		ServiceFilter: ev.ServiceFilter, TagFilter: ev.TagFilter, Version: ev.Version}
	raw, err := encodeEvent(w)
	if err != nil {
		return err
	}
	name := eventPrefix + ev.Name
	if size := len(name) + len(raw) + serfFraming; size > eventSizeLimit {
		return fmt.Errorf("%w: name, filters and a %d-byte payload encode to about %d bytes, over the gossip limit of %d (keep payloads under ~100 bytes)",
			ErrEventTooLarge, len(ev.Payload), size, eventSizeLimit)
	}
	if err := s.UserEvent(name, raw, false); err != nil {
		if strings.Contains(err.Error(), "limit") {
			return fmt.Errorf("%w: %v", ErrEventTooLarge, err)
		}
		return fmt.Errorf("agent: fire user event: %w", err)
	}
	a.logger.Debug("user event fired", "name", ev.Name, "id", ev.ID)
	return nil
}

// Events returns the events this agent received, oldest first, and a
// channel closed when the next one arrives.
func (a *Agent) Events() ([]*httpapi.UserEvent, <-chan struct{}) { return a.events.list() }

// userEventLoop consumes the LAN pool's user events until shutdown.
func (a *Agent) userEventLoop(pool *gossip.Pool) {
	defer a.wg.Done()
	ch := pool.UserEvents()
	for {
		select {
		case <-a.stopCh:
			return
		case ue, ok := <-ch:
			if !ok {
				return
			}
			a.handleUserEvent(ue)
		}
	}
}

// handleUserEvent decodes one serf user event and keeps it when its
// filters select this node.
func (a *Agent) handleUserEvent(ue serf.UserEvent) {
	name, ok := strings.CutPrefix(ue.Name, eventPrefix)
	if !ok {
		a.logger.Debug("unknown user event ignored", "name", ue.Name)
		return
	}
	w, err := decodeEvent(ue.Payload)
	if err != nil {
		a.logger.Warn("malformed user event dropped", "name", name, "error", err)
		return
	}
	if w.Name != name || w.ID == "" {
		a.logger.Warn("malformed user event dropped", "name", name, "error", errors.New("name or ID mismatch"))
		return
	}
	var services map[string]*state.NodeService
	if w.ServiceFilter != "" && a.local != nil {
		services = a.local.Services()
	}
	if !eventMatches(w, a.cfg.NodeName, services) {
		a.logger.Debug("user event filtered out", "name", name, "id", w.ID)
		return
	}
	ev := &httpapi.UserEvent{ID: w.ID, Name: w.Name, Payload: w.Payload, NodeFilter: w.NodeFilter,
		ServiceFilter: w.ServiceFilter, TagFilter: w.TagFilter, Version: w.Version, LTime: uint64(ue.LTime)}
	if a.events.add(ev) {
		a.logger.Debug("user event received", "name", name, "id", w.ID, "ltime", ev.LTime)
	}
}
