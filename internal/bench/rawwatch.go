package bench

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ErrBadAnswer marks a watcher's answer that a real client would reject:
// a status other than 200, a missing X-Consul-Index, a body that is not
// complete JSON holding the watched key.
var ErrBadAnswer = errors.New("bench: bad answer to a blocking query")

// rawWatchClient gives each watcher its own plain TCP connection on which
// it writes, byte for byte, the request consul/api v1.34.5 sends for
// KV().Get(key, &QueryOptions{WaitIndex: idx, WaitTime: 5m}) and parses the
// answer itself: a load generator that costs far less than net/http plus
// the api client per wake-up, so the figure is the servers' and not ours.
type rawWatchClient struct {
	cfg    Config
	path   string // escaped path of the watched key
	keyTag []byte // `"Key":"<key>"` as the JSON body must hold it
}

func newRawWatchClient(cfg Config, key string) (*rawWatchClient, error) {
	tag, err := json.Marshal(key)
	if err != nil {
		return nil, fmt.Errorf("bench: encoding the watched key: %w", err)
	}
	return &rawWatchClient{
		cfg:    cfg,
		path:   (&url.URL{Path: "/v1/kv/" + key}).EscapedPath(),
		keyTag: append([]byte(`"Key":`), tag...),
	}, nil
}

// request returns the request consul/api writes for a blocking KV get of
// the key past index on addr (with the bench's keep-alive transport). The
// query is encoded like the api client's (url.Values, keys sorted);
// net/http writes Host and User-Agent first, the headers the api client
// set (Content-Type, the token) next in key order, Accept-Encoding last.
func (c *rawWatchClient) request(addr string, index uint64) []byte {
	pre, post := c.template(addr)
	return appendRequest(nil, pre, post, index)
}

// template splits addr's request around the index value, so that each
// request is two copies and a number.
func (c *rawWatchClient) template(addr string) (pre, post []byte) {
	q := url.Values{}
	switch c.cfg.Consistency {
	case "stale":
		q.Set("stale", "")
	case "consistent":
		q.Set("consistent", "")
	}
	q.Set("index", "\x00")
	q.Set("wait", watchWaitMS)
	before, after, _ := strings.Cut(q.Encode(), "%00")
	pre = append(pre, "GET "...)
	pre = append(pre, c.path...)
	pre = append(pre, '?')
	pre = append(pre, before...)
	post = append(post, after...)
	post = append(post, " HTTP/1.1\r\nHost: "...)
	post = append(post, addr...)
	post = append(post, "\r\nUser-Agent: Go-http-client/1.1\r\nContent-Type: application/json; charset=utf-8\r\n"...)
	if c.cfg.Token != "" {
		post = append(post, "X-Consul-Token: "...)
		post = append(post, c.cfg.Token...)
		post = append(post, "\r\n"...)
	}
	post = append(post, "Accept-Encoding: gzip\r\n\r\n"...)
	return pre, post
}

func appendRequest(b, pre, post []byte, index uint64) []byte {
	b = append(b, pre...)
	b = strconv.AppendUint(b, index, 10)
	return append(b, post...)
}

// watcher returns watcher i's blocking query, on a connection to the
// i-th target (round-robin). The connection is dialled on first use and
// again after any error; closing it is how ctx cancels a parked query.
func (c *rawWatchClient) watcher(i int) watchFunc {
	w := &rawWatcher{c: c, addr: c.cfg.Addrs[i%len(c.cfg.Addrs)]}
	w.pre, w.post = c.template(w.addr)
	return w.wait
}

func (c *rawWatchClient) close() {}

// rawWatcher is one watcher's connection. Only its own goroutine uses it.
type rawWatcher struct {
	c    *rawWatchClient
	addr string
	pre  []byte // request up to the index value
	post []byte // request after the index value
	req  []byte // reused request buffer
	conn net.Conn
	rd   *bufio.Reader
	stop func() bool // unregisters the close-on-cancel hook of conn
	body []byte      // reused body buffer
}

func (w *rawWatcher) drop() {
	if w.conn == nil {
		return
	}
	w.stop()
	_ = w.conn.Close()
	w.conn, w.rd, w.stop = nil, nil, nil
}

// wait sends one blocking query past idx and returns the index of the
// answer. Any error drops the connection (the next call dials anew).
func (w *rawWatcher) wait(ctx context.Context, idx uint64, wrote func()) (uint64, error) {
	if w.conn == nil {
		conn, err := (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext(ctx, "tcp", w.addr)
		if err != nil {
			return 0, fmt.Errorf("bench: dialling %s: %w", w.addr, err)
		}
		w.conn, w.rd = conn, bufio.NewReaderSize(conn, 4096)
		w.stop = context.AfterFunc(ctx, func() { _ = conn.Close() })
	}
	w.req = appendRequest(w.req[:0], w.pre, w.post, idx)
	if _, err := w.conn.Write(w.req); err != nil {
		w.drop()
		return 0, fmt.Errorf("bench: sending a blocking query to %s: %w", w.addr, err)
	}
	wrote()
	got, keep, err := w.read()
	if err != nil || !keep {
		w.drop()
	}
	if err != nil {
		return 0, fmt.Errorf("bench: blocking query to %s: %w", w.addr, err)
	}
	return got, nil
}

// read reads and checks one answer as a client must: status line, headers
// (X-Consul-Index required; Content-Length or chunked; gzip if the server
// chose it), the whole body, which must be valid JSON holding the watched
// key. keep is false when the server asked to close the connection.
func (w *rawWatcher) read() (index uint64, keep bool, err error) {
	line, err := w.rd.ReadSlice('\n')
	if err != nil {
		return 0, false, fmt.Errorf("reading the status line: %w", err)
	}
	status := bytes.TrimRight(line, "\r\n")
	proto, rest, _ := bytes.Cut(status, []byte(" "))
	code, _, _ := bytes.Cut(rest, []byte(" "))
	if !bytes.HasPrefix(proto, []byte("HTTP/1.")) {
		return 0, false, fmt.Errorf("%w: status line %q", ErrBadAnswer, status)
	}
	if string(code) != "200" {
		return 0, false, fmt.Errorf("%w: status %q", ErrBadAnswer, status)
	}
	keep = string(proto) == "HTTP/1.1"
	length := int64(-1)
	chunked, gz, haveIndex := false, false, false
	for {
		line, err := w.rd.ReadSlice('\n')
		if err != nil {
			return 0, false, fmt.Errorf("reading the headers: %w", err)
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return 0, false, fmt.Errorf("%w: header line %q", ErrBadAnswer, line)
		}
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(k, []byte("X-Consul-Index")):
			index, err = strconv.ParseUint(string(v), 10, 64)
			if err != nil || index == 0 {
				return 0, false, fmt.Errorf("%w: X-Consul-Index %q", ErrBadAnswer, v)
			}
			haveIndex = true
		case bytes.EqualFold(k, []byte("Content-Length")):
			length, err = strconv.ParseInt(string(v), 10, 64)
			if err != nil || length < 0 {
				return 0, false, fmt.Errorf("%w: Content-Length %q", ErrBadAnswer, v)
			}
		case bytes.EqualFold(k, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(v, []byte("chunked"))
			if !chunked {
				return 0, false, fmt.Errorf("%w: Transfer-Encoding %q", ErrBadAnswer, v)
			}
		case bytes.EqualFold(k, []byte("Content-Encoding")):
			gz = bytes.EqualFold(v, []byte("gzip"))
			if !gz {
				return 0, false, fmt.Errorf("%w: Content-Encoding %q", ErrBadAnswer, v)
			}
		case bytes.EqualFold(k, []byte("Connection")):
			if bytes.EqualFold(v, []byte("close")) {
				keep = false
			}
		}
	}
	if !haveIndex {
		return 0, false, fmt.Errorf("%w: no X-Consul-Index header", ErrBadAnswer)
	}
	var body []byte
	switch {
	case chunked:
		b := bytes.NewBuffer(w.body[:0])
		if _, err := b.ReadFrom(httputil.NewChunkedReader(w.rd)); err != nil {
			return 0, false, fmt.Errorf("reading a chunked body: %w", err)
		}
		// The chunked reader stops at the last chunk; the (empty) trailer
		// section and its blank line follow.
		for {
			line, err := w.rd.ReadSlice('\n')
			if err != nil {
				return 0, false, fmt.Errorf("reading the trailer: %w", err)
			}
			if len(bytes.TrimRight(line, "\r\n")) == 0 {
				break
			}
		}
		body = b.Bytes()
	case length >= 0:
		if length > 64<<20 {
			return 0, false, fmt.Errorf("%w: Content-Length %d too large", ErrBadAnswer, length)
		}
		if int64(cap(w.body)) < length {
			w.body = make([]byte, length)
		}
		body = w.body[:length]
		if _, err := io.ReadFull(w.rd, body); err != nil {
			return 0, false, fmt.Errorf("reading a %d-byte body: %w", length, err)
		}
	default:
		return 0, false, fmt.Errorf("%w: neither Content-Length nor chunked", ErrBadAnswer)
	}
	if cap(body) > cap(w.body) {
		w.body = body[:0]
	}
	if gz {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return 0, false, fmt.Errorf("%w: gzip body: %v", ErrBadAnswer, err)
		}
		if body, err = io.ReadAll(zr); err != nil {
			return 0, false, fmt.Errorf("%w: gzip body: %v", ErrBadAnswer, err)
		}
	}
	if !json.Valid(body) || !bytes.Contains(body, w.c.keyTag) {
		return 0, false, fmt.Errorf("%w: body is not a JSON answer for the watched key: %.120q", ErrBadAnswer, body)
	}
	return index, keep, nil
}

// RawWatcher returns one lean watcher of key on addr, the client of
// `watch-fanout -watch-client raw`: each call sends, on the watcher's own
// connection, the blocking query consul/api sends for the key past idx,
// checks the answer as rawWatcher.read does and returns its index. A
// RawWatcher is for one goroutine; cancelling ctx closes its connection.
func RawWatcher(addr, key string) (func(ctx context.Context, idx uint64) (uint64, error), error) {
	c, err := newRawWatchClient(Config{Addrs: []string{addr}}, key)
	if err != nil {
		return nil, err
	}
	w := c.watcher(0)
	return func(ctx context.Context, idx uint64) (uint64, error) { return w(ctx, idx, func() {}) }, nil
}
