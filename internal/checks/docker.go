package checks

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// DefaultDockerHost is the Docker API endpoint used when DOCKER_HOST is
// not set.
const DefaultDockerHost = "unix:///var/run/docker.sock"

// DockerConfig configures a Docker check.
type DockerConfig struct {
	ID          string
	ContainerID string
	// Args is the command run inside the container. With Shell set it is
	// run as Shell -c "<Args joined by spaces>".
	Args          []string
	Shell         string
	Interval      time.Duration
	Timeout       time.Duration // default DefaultScriptTimeout
	OutputMaxSize int           // default DefaultOutputMaxSize
	// Host is the Docker API endpoint, "unix:///path" or "tcp://host:port"
	// (the agent passes $DOCKER_HOST); default DefaultDockerHost.
	Host string
}

// Docker is a check that runs a command inside a container through the
// Docker Engine exec API every interval; exit codes count as for script
// checks (0 passing, 1 warning, else critical). Without a reachable Docker
// socket it is critical with an output saying so.
type Docker struct {
	*intervalRunner
}

// NewDocker returns a Docker check; it runs from Start until Stop.
func NewDocker(cfg DockerConfig, n Notifier) *Docker {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultScriptTimeout
	}
	if cfg.Host == "" {
		cfg.Host = DefaultDockerHost
	}
	dc, err := newDockerClient(cfg.Host)
	var p probe
	if err != nil {
		p = func(context.Context) (string, string) { return "critical", err.Error() }
	} else {
		p = func(ctx context.Context) (string, string) { return dc.probe(ctx, cfg) }
	}
	var onStop func()
	if dc != nil {
		onStop = dc.transport.CloseIdleConnections
	}
	return &Docker{newIntervalRunner(cfg.ID, cfg.Interval, p, n, onStop)}
}

type dockerClient struct {
	socket    string // unix socket path, or "" for TCP
	base      string // URL prefix of API calls
	transport *http.Transport
	client    *http.Client
}

func newDockerClient(host string) (*dockerClient, error) {
	u, err := url.Parse(host)
	if err != nil {
		return nil, fmt.Errorf("docker: invalid host %q: %w", host, err)
	}
	dc := &dockerClient{transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	switch u.Scheme {
	case "unix":
		dc.socket = u.Path
		dc.base = "http://docker"
		dc.transport.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", dc.socket)
		}
	case "tcp", "http":
		dc.base = "http://" + u.Host
	default:
		return nil, fmt.Errorf("docker: unsupported host %q (want unix:// or tcp://)", host)
	}
	dc.client = &http.Client{Transport: dc.transport}
	return dc, nil
}

func (dc *dockerClient) probe(ctx context.Context, cfg DockerConfig) (string, string) {
	if dc.socket != "" {
		if _, err := os.Stat(dc.socket); errors.Is(err, fs.ErrNotExist) {
			return "critical", fmt.Sprintf("docker: socket %s not available", dc.socket)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	cmd := cfg.Args
	if cfg.Shell != "" {
		cmd = []string{cfg.Shell, "-c", strings.Join(cfg.Args, " ")}
	}
	var created struct{ ID string }
	err := dc.call(ctx, http.MethodPost, "/containers/"+url.PathEscape(cfg.ContainerID)+"/exec", map[string]any{
		"AttachStdout": true, "AttachStderr": true, "Tty": false, "Cmd": cmd,
	}, &created)
	if err != nil {
		return "critical", fmt.Sprintf("docker: create exec in container %s: %v", cfg.ContainerID, err)
	}
	out := newTailBuffer(cfg.OutputMaxSize)
	if err := dc.start(ctx, created.ID, out); err != nil {
		if ctx.Err() != nil {
			return "critical", truncate(fmt.Sprintf("Timed out (%s) running check in container %s\n%s", cfg.Timeout, cfg.ContainerID, out), cfg.OutputMaxSize)
		}
		return "critical", fmt.Sprintf("docker: start exec in container %s: %v", cfg.ContainerID, err)
	}
	var inspect struct {
		Running  bool
		ExitCode int
	}
	if err := dc.call(ctx, http.MethodGet, "/exec/"+url.PathEscape(created.ID)+"/json", nil, &inspect); err != nil {
		return "critical", fmt.Sprintf("docker: inspect exec in container %s: %v", cfg.ContainerID, err)
	}
	if inspect.Running {
		return "critical", fmt.Sprintf("docker: exec in container %s still running after its output ended", cfg.ContainerID)
	}
	return exitStatus(inspect.ExitCode), out.String()
}

// call does one JSON API call.
func (dc *dockerClient) call(ctx context.Context, method, path string, body, reply any) error {
	resp, err := dc.do(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if reply == nil {
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(reply); err != nil {
		return fmt.Errorf("decode reply: %w", err)
	}
	return nil
}

func (dc *dockerClient) do(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, dc.base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := dc.client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		_ = resp.Body.Close()
		return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(msg)))
	}
	return resp, nil
}

// start runs the exec and copies its multiplexed stdout/stderr stream
// (8-byte frame headers: stream, 0, 0, 0, big-endian length) into out.
func (dc *dockerClient) start(ctx context.Context, execID string, out io.Writer) error {
	resp, err := dc.do(ctx, http.MethodPost, "/exec/"+url.PathEscape(execID)+"/start", map[string]any{"Detach": false, "Tty": false})
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(resp.Body, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read output: %w", err)
		}
		n := int64(binary.BigEndian.Uint32(hdr[4:]))
		if _, err := io.CopyN(out, resp.Body, n); err != nil {
			return fmt.Errorf("read output: %w", err)
		}
	}
}
