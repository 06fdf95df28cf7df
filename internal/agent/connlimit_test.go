package agent

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// holdConn opens a connection to addr and sends a request the server will
// not answer until released; the connection stays open until closed.
func holdConn(t *testing.T, addr, path string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	_, err = fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, addr)
	require.NoError(t, err)
	return c
}

// getOnce does one GET on a fresh connection and returns status and body.
func getOnce(t *testing.T, url string) (int, string) {
	t.Helper()
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// limitedServer serves /block (held until release closes or the client
// goes) and /ok behind a connLimiter with the given cap; it returns the
// limiter and the server's address.
func limitedServer(t *testing.T, limit int, release <-chan struct{}) (*connLimiter, string) {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/block", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	lim := newConnLimiter(limit, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	lim.install(srv)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return lim, ln.Addr().String()
}

func TestConnLimiter_RefusesOverTheCapAndReleases(t *testing.T) {
	release := make(chan struct{})
	lim, addr := limitedServer(t, 3, release)
	base := "http://" + addr

	held := []net.Conn{holdConn(t, addr, "/block"), holdConn(t, addr, "/block"), holdConn(t, addr, "/block")}
	waitFor(t, "3 counted connections", func() bool { return lim.open("127.0.0.1") == 3 })

	// Over the cap: a 429 that names the setting, and the connection is
	// closed; refusals are not counted, so the next one is refused too.
	for i := 0; i < 3; i++ {
		code, body := getOnce(t, base+"/ok")
		require.Equal(t, http.StatusTooManyRequests, code)
		require.Contains(t, body, "at most 3 (limits.http_max_conns_per_client)")
		require.Contains(t, body, "127.0.0.1")
	}
	require.Equal(t, 3, lim.open("127.0.0.1"))
	// The refused connection is closed after its answer.
	c := holdConn(t, addr, "/ok")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	require.True(t, resp.Close, "Connection: close")
	_, err = io.Copy(io.Discard, resp.Body)
	require.NoError(t, err)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = br.ReadByte()
	require.ErrorIs(t, err, io.EOF, "the server closes a refused connection")
	require.Equal(t, 3, lim.open("127.0.0.1"))

	// Closing a held connection frees its slot.
	require.NoError(t, held[0].Close())
	waitFor(t, "2 counted connections", func() bool { return lim.open("127.0.0.1") == 2 })
	code, body := getOnce(t, base+"/ok")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "ok", body)

	waitFor(t, "the /ok connection released", func() bool { return lim.open("127.0.0.1") == 2 })

	// A finished request on a kept-alive connection still holds its slot
	// until the connection closes: answer the held requests, then send one
	// more on each (so the server has seen them idle and active again).
	close(release)
	for _, c := range held[1:] {
		br := bufio.NewReader(c)
		for i := 0; i < 2; i++ {
			resp, err := http.ReadResponse(br, nil)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if i == 0 {
				_, err = fmt.Fprintf(c, "GET /ok HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
				require.NoError(t, err)
			}
		}
	}
	require.Equal(t, 2, lim.open("127.0.0.1"))
	for _, c := range held[1:] {
		require.NoError(t, c.Close())
	}
	waitFor(t, "no counted connections", func() bool { return lim.open("127.0.0.1") == 0 })
}

func TestConnLimiter_ZeroMeansNoCapAndChangesApplyToNewConnections(t *testing.T) {
	hold := make(chan struct{})
	defer close(hold)
	lim, addr := limitedServer(t, 0, hold)

	for i := 0; i < 50; i++ {
		holdConn(t, addr, "/block")
	}
	waitFor(t, "50 counted connections", func() bool { return lim.open("127.0.0.1") == 50 })
	code, _ := getOnce(t, "http://"+addr+"/ok")
	require.Equal(t, http.StatusOK, code, "0 is no cap")

	// Lowering the cap (a reload) refuses new connections; the open ones stay.
	lim.setLimit(10)
	code, body := getOnce(t, "http://"+addr+"/ok")
	require.Equal(t, http.StatusTooManyRequests, code)
	require.True(t, strings.Contains(body, "at most 10"), body)
	// The /ok connections are released when the server sees them close;
	// the 50 held ones stay.
	waitFor(t, "the 50 held connections, and only them", func() bool { return lim.open("127.0.0.1") == 50 })
}

// TestAgent_HTTPMaxConnsPerClient: the agent's HTTP server applies
// limits.http_max_conns_per_client to the API.
func TestAgent_HTTPMaxConnsPerClient(t *testing.T) {
	cfg := devConfig()
	cfg.HTTPMaxConnsPerClient = 2
	a, _ := startAgent(t, cfg, nil)
	addr := a.HTTPAddr()
	// Two blocking queries hold both slots.
	holdConn(t, addr, "/v1/kv/held?index=1000000&wait=30s")
	holdConn(t, addr, "/v1/kv/held?index=1000000&wait=30s")
	waitFor(t, "2 counted connections", func() bool { return a.httpLimit.open("127.0.0.1") == 2 })
	code, body := getOnce(t, "http://"+addr+"/v1/status/leader")
	require.Equal(t, http.StatusTooManyRequests, code)
	require.Contains(t, body, "limits.http_max_conns_per_client")
}
