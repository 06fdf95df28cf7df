package gossip

import (
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/hashicorp/serf/serf"
)

// MemberEvent is one member's change as serf reported it: Type is one of
// serf.EventMemberJoin, EventMemberLeave, EventMemberFailed,
// EventMemberUpdate or EventMemberReap.
type MemberEvent struct {
	Type   serf.EventType
	Member serf.Member
}

// dropQueue is a buffered channel with a single producer that never blocks:
// when the buffer is full the oldest entry is dropped (and counted) to make
// room, so a slow consumer sees the newest state rather than stalling serf.
type dropQueue[T any] struct {
	ch      chan T
	name    string
	logger  *slog.Logger
	dropped atomic.Uint64
	lastLog time.Time
}

func newDropQueue[T any](size int, name string, logger *slog.Logger) *dropQueue[T] {
	return &dropQueue[T]{ch: make(chan T, size), name: name, logger: logger}
}

// push must only be called from the single producer goroutine.
func (q *dropQueue[T]) push(v T) {
	for {
		select {
		case q.ch <- v:
			return
		default:
		}
		select {
		case <-q.ch:
			n := q.dropped.Add(1)
			// Log the first drop and then at most every 10 s.
			if now := time.Now(); n == 1 || now.Sub(q.lastLog) > 10*time.Second {
				q.lastLog = now
				q.logger.Warn("gossip event queue full, dropped oldest event",
					"queue", q.name, "dropped_total", n)
			}
		default:
		}
	}
}

// close must only be called by the producer once it has stopped pushing.
func (q *dropQueue[T]) close() { close(q.ch) }

// eventLoop drains serf's event channel until the pool shuts down. It is
// the only producer of the Events and UserEvents queues.
func (p *Pool) eventLoop(s *serf.Serf) {
	defer p.wg.Done()
	defer p.events.close()
	defer p.userEvents.close()
	for {
		select {
		case e := <-p.serfEvents:
			p.dispatch(e)
		case <-p.stopCh:
			return
		case <-s.ShutdownCh():
			return
		}
	}
}

func (p *Pool) dispatch(e serf.Event) {
	switch ev := e.(type) {
	case serf.MemberEvent:
		for _, m := range ev.Members {
			p.logger.Debug("gossip member event", "event", ev.Type.String(), "member", m.Name, "status", m.Status.String())
			p.events.push(MemberEvent{Type: ev.Type, Member: m})
		}
	case serf.UserEvent:
		p.userEvents.push(ev)
	case *serf.Query:
		// Nothing answers custom queries yet; serf times them out.
		p.logger.Debug("gossip query ignored", "name", ev.Name)
	default:
		p.logger.Debug("gossip event ignored", "event", e.String())
	}
}
