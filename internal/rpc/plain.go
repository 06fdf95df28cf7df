package rpc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// Plain connections. A call that is not a blocking query goes over a TCP
// connection of its own (TypeRPC), one call at a time, framed exactly as on
// a yamux stream. Over loopback that is about half the cost of a stream:
// yamux hands every frame between a reader, a writer and the caller's
// goroutine, and a short call pays for those hand-offs on both ends. The
// forwarded write (follower to leader, client agent to server) is the call
// this is for.
//
// Blocking queries stay on the yamux session: thousands of them may wait at
// once, and one connection each would be too many.
//
// A server answers a new plain connection with plainAck. One that does not
// serve them (an older version) closes it unanswered; the pool then sends
// every call to that address over yamux for plainRefusedFor. Nothing was
// sent on the refused connection, so the fallback is safe for writes.
const (
	plainAck byte = 0xCA
	// maxPlainConns caps the plain connections to one server, in flight
	// and idle together; calls beyond it use the yamux session.
	maxPlainConns   = 32
	plainRefusedFor = time.Minute
)

// errPlainRefused marks a server that closed a plain connection before its
// ack: it does not serve them.
var errPlainRefused = errors.New("rpc: server does not serve plain connections")

// plainConn is one plain connection with its codec. As with poolStream its
// deadlines stay zero between calls, and one whose timer or cancel hook
// fired is never reused.
type plainConn struct {
	c        net.Conn
	enc      *encoder
	dec      *decoder
	timeout  *time.Timer
	idleFrom time.Time
}

// plainSet is the plain connections to one server address.
type plainSet struct {
	mu           sync.Mutex
	idle         []*plainConn // most recently used last
	open         map[*plainConn]struct{}
	reserved     int // dials in progress
	refusedUntil time.Time
	closed       bool // the pool shut down or the address was removed
}

// take returns an idle connection still usable, or reserves a slot for a
// new one (nil, true), or reports that the call should use yamux (nil,
// false).
func (s *plainSet) take(now time.Time, maxIdle time.Duration) (*plainConn, bool) {
	for {
		s.mu.Lock()
		if s.closed || now.Before(s.refusedUntil) {
			s.mu.Unlock()
			return nil, false
		}
		n := len(s.idle)
		if n == 0 {
			if len(s.open)+s.reserved >= maxPlainConns {
				s.mu.Unlock()
				return nil, false
			}
			s.reserved++
			s.mu.Unlock()
			return nil, true
		}
		pc := s.idle[n-1]
		s.idle[n-1] = nil
		s.idle = s.idle[:n-1]
		s.mu.Unlock()
		if now.Sub(pc.idleFrom) < maxIdle && pc.usable() {
			return pc, true
		}
		s.drop(pc)
	}
}

// added turns a reserved slot into pc; false (pc closed) when the set was
// closed meanwhile.
func (s *plainSet) added(pc *plainConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reserved--
	if s.closed {
		_ = pc.c.Close()
		return false
	}
	s.open[pc] = struct{}{}
	return true
}

// unreserve gives back a slot whose dial failed; refused marks the server
// as not serving plain connections.
func (s *plainSet) unreserve(refused bool, now time.Time) {
	s.mu.Lock()
	s.reserved--
	if refused {
		s.refusedUntil = now.Add(plainRefusedFor)
	}
	s.mu.Unlock()
}

// put keeps pc for another call.
func (s *plainSet) put(pc *plainConn, now time.Time) {
	pc.idleFrom = now
	s.mu.Lock()
	if !s.closed {
		s.idle = append(s.idle, pc)
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	s.drop(pc)
}

// drop closes pc and forgets it.
func (s *plainSet) drop(pc *plainConn) {
	_ = pc.c.Close()
	s.mu.Lock()
	delete(s.open, pc)
	s.mu.Unlock()
}

// trim closes idle connections unused since before cutoff.
func (s *plainSet) trim(cutoff time.Time) {
	s.mu.Lock()
	var old []*plainConn
	s.idle, old = splitIdle(s.idle, cutoff, func(pc *plainConn) time.Time { return pc.idleFrom })
	for _, pc := range old {
		delete(s.open, pc)
	}
	s.mu.Unlock()
	for _, pc := range old {
		_ = pc.c.Close()
	}
}

// closeIfUnused closes the set when it holds no connection, no dial and no
// refusal still in force; a call that finds it closed uses yamux once and
// the next one gets a new set.
func (s *plainSet) closeIfUnused(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.open) > 0 || s.reserved > 0 || now.Before(s.refusedUntil) {
		return false
	}
	s.closed = true
	return true
}

// close closes every connection, failing the calls in flight on them.
func (s *plainSet) close() {
	s.mu.Lock()
	s.closed = true
	all := make([]*plainConn, 0, len(s.open))
	for pc := range s.open {
		all = append(all, pc)
	}
	s.open = map[*plainConn]struct{}{}
	s.idle = nil
	s.mu.Unlock()
	for _, pc := range all {
		_ = pc.c.Close()
	}
}

// counts returns the open and idle connections (tests).
func (s *plainSet) counts() (open, idle int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.open), len(s.idle)
}

// plainSetFor returns addr's set, creating it; nil after Shutdown.
func (p *ConnPool) plainSetFor(key string) *plainSet {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shutdown {
		return nil
	}
	s := p.plain[key]
	if s == nil {
		s = &plainSet{open: map[*plainConn]struct{}{}}
		p.plain[key] = s
	}
	return s
}

// plainCounts returns the open and idle plain connections to addr (tests).
func (p *ConnPool) plainCounts(addr net.Addr) (open, idle int) {
	p.mu.Lock()
	s := p.plain[addr.String()]
	p.mu.Unlock()
	if s == nil {
		return 0, 0
	}
	return s.counts()
}

// plainRPC makes the call over a plain connection when one is free or may
// be opened. handled false means the caller should use the yamux session
// (cap reached, server refuses plain connections, pool shut down).
func (p *ConnPool) plainRPC(ctx context.Context, addr net.Addr, method string, args, reply any) (handled bool, err error) {
	set := p.plainSetFor(addr.String())
	if set == nil {
		return false, nil
	}
	freshOnly := false
	for {
		var pc *plainConn
		ok := true
		if freshOnly {
			ok = set.reserve()
		} else {
			pc, ok = set.take(time.Now(), p.cfg.IdleTimeout)
		}
		if !ok {
			return false, nil
		}
		reused := pc != nil
		if !reused {
			pc, err = p.dialPlain(ctx, addr)
			if err != nil {
				set.unreserve(errors.Is(err, errPlainRefused), time.Now())
				if errors.Is(err, errPlainRefused) && ctx.Err() == nil {
					return false, nil
				}
				return true, p.callError(ctx, method, addr, err)
			}
			if !set.added(pc) {
				return true, p.callError(ctx, method, addr, ErrPoolShutdown)
			}
			p.plainDialed.Add(1)
		}
		err = p.callPlain(ctx, set, pc, reused, method, args, reply)
		if err != nil {
			var remote *RemoteError
			if errors.As(err, &remote) {
				return true, err
			}
			// As on a reused stream: a reused connection that failed
			// before any byte of the request left never carried it.
			if errors.Is(err, errStreamStale) && !freshOnly && ctx.Err() == nil {
				freshOnly = true
				continue
			}
			return true, p.callError(ctx, method, addr, err)
		}
		return true, nil
	}
}

// reserve reserves a slot for a new connection, ignoring idle ones.
func (s *plainSet) reserve() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || len(s.open)+s.reserved >= maxPlainConns {
		return false
	}
	s.reserved++
	return true
}

// dialPlain opens a plain connection and waits for the server's ack.
func (p *ConnPool) dialPlain(ctx context.Context, addr net.Addr) (*plainConn, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.DialTimeout)
	defer cancel()
	conn, err := p.dialConn(ctx, addr)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := conn.Write([]byte{TypeRPC}); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("%w: handshake with %s: %w", ErrConnect, addr, err)
	}
	var ack [1]byte
	if _, err := conn.Read(ack[:]); err != nil || ack[0] != plainAck {
		_ = conn.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w: handshake with %s: %w", ErrConnect, addr, ctx.Err())
		}
		return nil, fmt.Errorf("%w: %s: %w", errPlainRefused, addr, ErrConnect)
	}
	if !stop() {
		// The hook ran (or is running): its deadline may land after any
		// reset, so this connection is not used.
		_ = conn.Close()
		return nil, fmt.Errorf("%w: handshake with %s: %w", ErrConnect, addr, ctx.Err())
	}
	return &plainConn{c: conn, enc: newEncoder(conn), dec: newDecoder(conn)}, nil
}

// callPlain runs one exchange on pc; it keeps pc for the next call only
// when the exchange completed cleanly, and closes it otherwise.
func (p *ConnPool) callPlain(ctx context.Context, set *plainSet, pc *plainConn, reused bool, method string, args, reply any) (err error) {
	conn := pc.c
	expire := func() { _ = conn.SetDeadline(time.Unix(1, 0)) }
	if pc.timeout == nil {
		pc.timeout = time.AfterFunc(p.cfg.RPCTimeout, expire)
	} else {
		pc.timeout.Reset(p.cfg.RPCTimeout)
	}
	stop := context.AfterFunc(ctx, expire)
	// keep: the reply was read whole from a server that reads on after it.
	// An error reply (a *RemoteError) leaves the connection in step too.
	var keep bool
	defer func() {
		stopped := stop()
		timerStopped := pc.timeout.Stop()
		if keep && stopped && timerStopped && ctx.Err() == nil {
			set.put(pc, time.Now())
			return
		}
		set.drop(pc)
	}()
	keep, err = p.exchange(pc.enc, pc.dec, reused, func(err error) bool { return !isDeadline(err) }, method, args, reply)
	return err
}
