package checks

import (
	"crypto/tls"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// kindCase starts a real target for one check kind and returns a
// constructor of the check and a way to switch the target's mode.
type kindCase struct {
	name       string
	hasWarning bool
	// changeOnly kinds report only changes (alias): the failure-count
	// thresholds do not apply to them.
	changeOnly bool
	start      func(t *testing.T) (mk func(Notifier) Check, set func(mode string))
}

func kindCases() []kindCase {
	return []kindCase{
		{name: "http", hasWarning: true, start: func(t *testing.T) (func(Notifier) Check, func(string)) {
			srv, mode := startHTTPTarget(t)
			return func(n Notifier) Check {
				return NewHTTP(HTTPConfig{ID: "c", URL: srv.URL + "/health", Interval: testInterval, Timeout: time.Second}, n)
			}, func(m string) { mode.Store(m) }
		}},
		{name: "tcp", start: func(t *testing.T) (func(Notifier) Check, func(string)) {
			tt := startTCPTarget(t, nil)
			return func(n Notifier) Check {
					return NewTCP(TCPConfig{ID: "c", Address: tt.addr(), Interval: testInterval, Timeout: time.Second}, n)
				}, func(m string) {
					if m == modeFail {
						tt.close()
					}
				}
		}},
		{name: "tcp+tls", start: func(t *testing.T) (func(Notifier) Check, func(string)) {
			tt := startTCPTarget(t, &tls.Config{Certificates: []tls.Certificate{selfSignedCert(t)}, MinVersion: tls.VersionTLS12})
			return func(n Notifier) Check {
					return NewTCP(TCPConfig{ID: "c", Address: tt.addr(), Interval: testInterval, Timeout: time.Second, UseTLS: true, TLSSkipVerify: true}, n)
				}, func(m string) {
					if m == modeFail {
						tt.close()
					}
				}
		}},
		{name: "udp", start: func(t *testing.T) (func(Notifier) Check, func(string)) {
			ut := startUDPTarget(t, false)
			return func(n Notifier) Check {
					return NewUDP(UDPConfig{ID: "c", Address: ut.addr(), Interval: testInterval, Timeout: time.Second}, n)
				}, func(m string) {
					if m == modeFail {
						ut.close() // the closed port answers with ICMP port unreachable
					}
				}
		}},
		{name: "script", hasWarning: true, start: func(t *testing.T) (func(Notifier) Check, func(string)) {
			args, set := startScriptTarget(t)
			return func(n Notifier) Check {
					return NewScript(ScriptConfig{ID: "c", Args: args, Interval: testInterval, Timeout: 5 * time.Second}, n)
				}, func(m string) {
					set(map[string]int{modePass: 0, modeWarn: 1, modeFail: 2}[m])
				}
		}},
		{name: "grpc", start: func(t *testing.T) (func(Notifier) Check, func(string)) {
			g := startGRPCTarget(t, nil)
			return func(n Notifier) Check {
					return NewGRPC(GRPCConfig{ID: "c", Target: g.addr + "/my.Svc", Interval: testInterval, Timeout: time.Second}, n)
				}, func(m string) {
					st := healthpb.HealthCheckResponse_SERVING
					if m == modeFail {
						st = healthpb.HealthCheckResponse_NOT_SERVING
					}
					g.health.SetServingStatus("my.Svc", st)
				}
		}},
		{name: "h2ping tls", start: func(t *testing.T) (func(Notifier) Check, func(string)) {
			srv := startH2TLSServer(t)
			addr := srv.Listener.Addr().String()
			return func(n Notifier) Check {
					return NewH2Ping(H2PingConfig{ID: "c", Address: addr, Interval: testInterval, Timeout: time.Second, UseTLS: true, TLSSkipVerify: true}, n)
				}, func(m string) {
					if m == modeFail {
						srv.Close()
					}
				}
		}},
		{name: "h2ping h2c", start: func(t *testing.T) (func(Notifier) Check, func(string)) {
			addr, stop := startH2CServer(t)
			return func(n Notifier) Check {
					return NewH2Ping(H2PingConfig{ID: "c", Address: addr, Interval: testInterval, Timeout: time.Second}, n)
				}, func(m string) {
					if m == modeFail {
						stop()
					}
				}
		}},
		{name: "docker", hasWarning: true, start: func(t *testing.T) (func(Notifier) Check, func(string)) {
			fd := startFakeDocker(t)
			return func(n Notifier) Check {
					return NewDocker(DockerConfig{ID: "c", ContainerID: "web1", Args: []string{"/check"}, Interval: testInterval, Timeout: time.Second, Host: "unix://" + fd.socket}, n)
				}, func(m string) {
					fd.exitCode.Store(map[string]int32{modePass: 0, modeWarn: 1, modeFail: 2}[m])
				}
		}},
		{name: "alias", hasWarning: true, changeOnly: true, start: func(t *testing.T) (func(Notifier) Check, func(string)) {
			fl := newFakeLocal()
			fl.setService("web")
			fl.setCheck("web-check", "web", "passing")
			return func(n Notifier) Check {
					return NewAlias(AliasConfig{ID: "c", ServiceID: "web", LocalNode: "n1", Local: fl}, n)
				}, func(m string) {
					fl.setCheck("web-check", "web", modeStatus(m))
				}
		}},
	}
}

// event is one result passed on to the final notifier, with the run of raw
// results that led to it.
type event struct {
	status        string
	output        string
	succ, failure int // consecutive raw successes / failures at that moment
}

// tap counts raw results before passing them on, and records what comes
// out at the end of the chain.
type tap struct {
	next Notifier

	mu     sync.Mutex
	succ   int
	fail   int
	events []event
}

func (tp *tap) UpdateCheck(id, status, output string) {
	tp.mu.Lock()
	if status == "critical" {
		tp.fail++
		tp.succ = 0
	} else {
		tp.succ++
		tp.fail = 0
	}
	tp.mu.Unlock()
	tp.next.UpdateCheck(id, status, output) // synchronous: the sink sees these counters
}

// sink records events with the tap's counters.
type sink struct{ tp *tap }

func (s sink) UpdateCheck(_, status, output string) {
	s.tp.mu.Lock()
	defer s.tp.mu.Unlock()
	s.tp.events = append(s.tp.events, event{status: status, output: output, succ: s.tp.succ, failure: s.tp.fail})
}

func (tp *tap) waitEvent(t *testing.T, what string, cond func(event) bool) event {
	t.Helper()
	var found event
	require.Eventually(t, func() bool {
		tp.mu.Lock()
		defer tp.mu.Unlock()
		for _, e := range tp.events {
			if cond(e) {
				found = e
				return true
			}
		}
		return false
	}, 10*time.Second, 5*time.Millisecond, "no %s event; events so far: %+v", what, tp.snapshot())
	return found
}

func (tp *tap) snapshot() []event {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return append([]event(nil), tp.events...)
}

func (tp *tap) reset() {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	tp.events = nil
}

// TestKinds_PassingWarningCritical runs every check kind against a real
// local target that moves from healthy through warning (where the kind
// has one) to failing, first without thresholds and then with
// success_before_passing=2, failures_before_warning=2,
// failures_before_critical=3.
func TestKinds_PassingWarningCritical(t *testing.T) {
	for _, kc := range kindCases() {
		for _, thresholds := range []bool{false, true} {
			if thresholds && kc.changeOnly {
				continue
			}
			name := kc.name
			if thresholds {
				name += "/thresholds"
			}
			t.Run(name, func(t *testing.T) {
				mk, set := kc.start(t)
				tp := &tap{}
				tp.next = sink{tp}
				if thresholds {
					tp.next = NewStatusHandler(sink{tp}, 2, 2, 3)
				}
				c := mk(tp)
				c.Start()
				defer c.Stop()

				e := tp.waitEvent(t, "passing", func(e event) bool { return e.status == "passing" })
				if thresholds {
					require.GreaterOrEqual(t, e.succ, 2, "passing before success_before_passing")
				}
				if kc.hasWarning {
					set(modeWarn)
					tp.waitEvent(t, "warning", func(e event) bool { return e.status == "warning" })
				}
				tp.reset()
				set(modeFail)
				crit := tp.waitEvent(t, "critical", func(e event) bool { return e.status == "critical" })
				if !thresholds {
					return
				}
				require.GreaterOrEqual(t, crit.failure, 3, "critical before failures_before_critical")
				events := tp.snapshot()
				for _, e := range events {
					require.False(t, e.failure == 1, "a single failure was passed on: %+v", e)
					if e.failure == 2 {
						require.Equal(t, "warning", e.status, "second failure must be a warning: %+v", e)
					}
				}
				require.True(t, func() bool {
					for _, e := range events {
						if e.failure == 2 {
							return true
						}
					}
					return false
				}(), "no warning at failures_before_warning: %+v", events)
			})
		}
	}
}
