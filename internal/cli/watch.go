package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/cairn-io/cairn/internal/watch"
)

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// watchParams builds the watch definition from the flags that were set, so
// watch.Parse reports a flag that does not fit the type.
func watchParams(fs *flag.FlagSet, typ string, tags stringList, values map[string]*string, passingOnly bool) map[string]any {
	params := map[string]any{"type": typ}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for name, v := range values {
		if set[name] {
			params[name] = *v
		}
	}
	if set["tag"] {
		params["tag"] = []string(tags)
	}
	if set["passingonly"] {
		params["passingonly"] = passingOnly
	}
	return params
}

// runWatch implements `cairn watch -type T [params] [handler...]`: it
// follows a view with blocking queries and, on the first result and each
// change, prints the data as JSON or runs the handler with the data on
// stdin and CONSUL_INDEX set. It runs until interrupted.
func runWatch(u *ui, args []string) error {
	var hf httpFlags
	fs := newFlagSet(u, "watch")
	hf.register(fs)
	var (
		typ, key, prefix, service, state, name string
		tags                                   stringList
		passingOnly, shell                     bool
	)
	fs.StringVar(&typ, "type", "", "Type of watch: key, keyprefix, services, nodes, service, checks or event.")
	fs.StringVar(&key, "key", "", "Key to watch (type key).")
	fs.StringVar(&prefix, "prefix", "", "Key prefix to watch (type keyprefix).")
	fs.StringVar(&service, "service", "", "Service to watch (types service and checks).")
	fs.Var(&tags, "tag", "Service tag to filter on (type service); may be repeated.")
	fs.BoolVar(&passingOnly, "passingonly", false, "Only passing instances (type service).")
	fs.StringVar(&state, "state", "", "Check state to filter on (type checks): any, passing, warning, critical.")
	fs.StringVar(&name, "name", "", "Event name to watch (type event).")
	fs.BoolVar(&shell, "shell", true, "Run the handler with a shell (sh -c).")
	if err := parseFlags(u, fs, args); err != nil {
		return err
	}
	if typ == "" {
		return errors.New("watch type must be specified (-type)")
	}
	params := watchParams(fs, typ, tags, map[string]*string{
		"key": &key, "prefix": &prefix, "service": &service, "state": &state, "name": &name,
	}, passingOnly)
	if hf.datacenter != "" {
		params["datacenter"] = hf.datacenter
	}
	if hf.stale {
		params["stale"] = true
	}
	plan, err := watch.Parse(params)
	if err != nil {
		return err
	}

	var handler watch.HandlerFunc
	if fs.NArg() > 0 {
		cfg := watch.HandlerConfig{Type: watch.HandlerScript, Args: fs.Args()}
		if shell {
			cfg = watch.HandlerConfig{Type: watch.HandlerScript, Shell: strings.Join(fs.Args(), " ")}
		}
		logger := slog.New(slog.NewTextHandler(u.err, &slog.HandlerOptions{Level: slog.LevelError}))
		h, err := watch.NewHandler(cfg, watch.HandlerOptions{Stdout: u.out, Stderr: u.err, Logger: logger})
		if err != nil {
			return err
		}
		defer h.Close()
		handler = h.Func
	} else {
		handler = printHandler(u.out)
	}

	client, err := hf.client()
	if err != nil {
		return err
	}
	if _, err := client.Agent().NodeName(); err != nil {
		return fmt.Errorf("error querying Cairn agent: %w", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(u.err, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if err := plan.Run(ctx, client, handler, logger); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// printHandler writes each result as indented JSON, one document per change.
func printHandler(w io.Writer) watch.HandlerFunc {
	var mu sync.Mutex
	return func(_ context.Context, _ uint64, data []byte) {
		mu.Lock()
		defer mu.Unlock()
		_, _ = w.Write(append(watch.Indent(data), '\n'))
	}
}
