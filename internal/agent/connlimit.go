package agent

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// connLimiter caps how many HTTP connections one client IP address may
// hold open at once (limits.http_max_conns_per_client, Consul's default
// 200; 0 means no cap). It decides when a connection is accepted
// (http.Server.ConnContext) and releases the slot when the connection
// closes or is hijacked (ConnState). A connection over the cap is not
// counted; its first request is read and answered 429 Too Many Requests,
// naming the setting, and the connection is closed. (Answering before the
// request is read would reach a Go client as a garbled "unsolicited
// response" error instead of a 429.) The cap can change at run time
// (reload); the change applies to new connections.
type connLimiter struct {
	limit  atomic.Int64
	logger *slog.Logger

	mu     sync.Mutex
	perIP  map[string]int
	conns  map[net.Conn]string // counted connections and their client IP
	denied int                 // refusals not yet logged
	logged time.Time           // when refusals were last logged
}

// connLimitLogEvery bounds the warnings a connection flood can cause.
const connLimitLogEvery = 10 * time.Second

// refusedKey marks, in a connection's context, that it is over the cap;
// the value is the message for the 429.
type refusedKey struct{}

func newConnLimiter(limit int, logger *slog.Logger) *connLimiter {
	l := &connLimiter{logger: logger, perIP: map[string]int{}, conns: map[net.Conn]string{}}
	l.setLimit(limit)
	return l
}

func (l *connLimiter) setLimit(n int) { l.limit.Store(int64(n)) }

// connContext counts a new connection against its client IP, or marks it
// refused when the IP is at the cap.
func (l *connLimiter) connContext(ctx context.Context, c net.Conn) context.Context {
	ip := clientIP(c.RemoteAddr())
	limit := l.limit.Load()
	l.mu.Lock()
	if limit <= 0 || int64(l.perIP[ip]) < limit {
		l.perIP[ip]++
		l.conns[c] = ip
		l.mu.Unlock()
		return ctx
	}
	l.denied++
	n, logNow := l.denied, time.Since(l.logged) >= connLimitLogEvery
	if logNow {
		l.denied, l.logged = 0, time.Now()
	}
	l.mu.Unlock()
	if logNow {
		l.logger.Warn("refused HTTP connections over the per-client limit",
			"client", ip, "limit", limit, "refused", n, "setting", "limits.http_max_conns_per_client")
	}
	msg := "too many concurrent connections from " + ip + ": at most " +
		strconv.FormatInt(limit, 10) + " (limits.http_max_conns_per_client)"
	return context.WithValue(ctx, refusedKey{}, msg)
}

// connState releases a counted connection's slot when it closes or is
// hijacked.
func (l *connLimiter) connState(c net.Conn, st http.ConnState) {
	if st != http.StateClosed && st != http.StateHijacked {
		return
	}
	l.mu.Lock()
	if ip, ok := l.conns[c]; ok {
		delete(l.conns, c)
		if l.perIP[ip]--; l.perIP[ip] <= 0 {
			delete(l.perIP, ip)
		}
	}
	l.mu.Unlock()
}

// wrap answers every request on a refused connection with 429 and closes
// the connection; other requests go to next.
func (l *connLimiter) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if msg, refused := r.Context().Value(refusedKey{}).(string); refused {
			w.Header().Set("Connection", "close")
			http.Error(w, msg, http.StatusTooManyRequests)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// open returns how many counted connections ip holds.
func (l *connLimiter) open(ip string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.perIP[ip]
}

// install puts the limiter in front of srv's handler.
func (l *connLimiter) install(srv *http.Server) {
	srv.Handler = l.wrap(srv.Handler)
	srv.ConnContext = l.connContext
	srv.ConnState = l.connState
}

// clientIP is the IP of a connection's remote address (the whole address
// when it has no port).
func clientIP(a net.Addr) string {
	if a == nil {
		return ""
	}
	if host, _, err := net.SplitHostPort(a.String()); err == nil {
		return host
	}
	return a.String()
}
