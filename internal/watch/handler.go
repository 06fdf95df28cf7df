package watch

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strconv"
)

// maxHandlerOutput is how much of a script handler's output is logged.
const maxHandlerOutput = 4 << 10

// Handler is a runnable handler; Close releases what it holds (idle HTTP
// connections).
type Handler struct {
	Func  HandlerFunc
	close func()
}

// Close releases the handler's resources. It is safe to call more than once.
func (h *Handler) Close() {
	if h != nil && h.close != nil {
		h.close()
	}
}

// HandlerOptions tune NewHandler.
type HandlerOptions struct {
	// Stdout and Stderr receive a script's output; when nil the output is
	// logged instead.
	Stdout, Stderr io.Writer
	// Logger reports handler failures; nil discards.
	Logger *slog.Logger
}

// NewHandler builds the handler cfg describes. A script gets the data on
// stdin and CONSUL_INDEX in its environment; an HTTP endpoint gets the data
// as the body and the index in X-Consul-Index. Failures are logged, never
// returned: the watch goes on.
func NewHandler(cfg HandlerConfig, opts HandlerOptions) (*Handler, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	switch cfg.Type {
	case HandlerScript:
		var argv []string
		switch {
		case len(cfg.Args) > 0:
			argv = cfg.Args
		case cfg.Shell != "":
			argv = []string{"/bin/sh", "-c", cfg.Shell}
		default:
			return nil, invalid("a script handler needs args or a command line")
		}
		return &Handler{Func: scriptHandler(argv, opts, logger)}, nil
	case HandlerHTTP:
		return httpHandler(cfg.HTTP, logger), nil
	default:
		return nil, invalid("handler type %q is not script or http", cfg.Type)
	}
}

func scriptHandler(argv []string, opts HandlerOptions, logger *slog.Logger) HandlerFunc {
	return func(ctx context.Context, index uint64, data []byte) {
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Stdin = bytes.NewReader(data)
		cmd.Env = append(os.Environ(), "CONSUL_INDEX="+strconv.FormatUint(index, 10))
		var out limitedBuffer
		if opts.Stdout != nil {
			cmd.Stdout = opts.Stdout
		} else {
			cmd.Stdout = &out
		}
		if opts.Stderr != nil {
			cmd.Stderr = opts.Stderr
		} else {
			cmd.Stderr = &out
		}
		err := cmd.Run()
		switch {
		case err != nil && ctx.Err() == nil:
			logger.Error("watch handler failed", "handler", argv, "index", index, "error", err, "output", out.String())
		case err == nil:
			logger.Debug("watch handler ran", "handler", argv, "index", index, "output", out.String())
		}
	}
}

func httpHandler(cfg HTTPConfig, logger *slog.Logger) *Handler {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if cfg.TLSSkipVerify {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the operator asked for it (tls_skip_verify)
	}
	client := &http.Client{Transport: tr, Timeout: cfg.Timeout}
	fn := func(ctx context.Context, index uint64, data []byte) {
		req, err := http.NewRequestWithContext(ctx, cfg.Method, cfg.Path, bytes.NewReader(data))
		if err != nil {
			logger.Error("watch http handler failed", "path", cfg.Path, "error", err)
			return
		}
		for name, vals := range cfg.Header {
			for _, v := range vals {
				req.Header.Add(name, v)
			}
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Consul-Index", strconv.FormatUint(index, 10))
		resp, err := client.Do(req)
		if err != nil {
			if ctx.Err() == nil {
				logger.Error("watch http handler failed", "path", cfg.Path, "index", index, "error", err)
			}
			return
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxHandlerOutput))
		_ = resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			logger.Error("watch http handler failed", "path", cfg.Path, "index", index,
				"error", fmt.Errorf("status %d", resp.StatusCode), "body", string(body))
			return
		}
		logger.Debug("watch http handler ran", "path", cfg.Path, "index", index, "status", resp.StatusCode)
	}
	return &Handler{Func: fn, close: tr.CloseIdleConnections}
}

// limitedBuffer keeps the first maxHandlerOutput bytes written to it.
type limitedBuffer struct{ b bytes.Buffer }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := maxHandlerOutput - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string { return l.b.String() }
