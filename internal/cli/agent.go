package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/cairn-io/cairn/internal/agent"
	"github.com/cairn-io/cairn/internal/config"
	"github.com/cairn-io/cairn/internal/version"
)

// shutdownTimeout bounds a graceful stop; a second signal stops at once.
const shutdownTimeout = 15 * time.Second

func newLogger(w io.Writer, level string, asJSON bool) *slog.Logger {
	var lvl slog.Level
	switch strings.ToLower(level) {
	case "trace":
		lvl = slog.LevelDebug - 4
	case "debug":
		lvl = slog.LevelDebug
	case "warn", "warning":
		lvl = slog.LevelWarn
	case "err", "error":
		lvl = slog.LevelError
	default:
		lvl = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if asJSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func runAgent(u *ui, args []string) error {
	fs := newFlagSet(u, "agent")
	flags := config.AddAgentFlags(fs)
	if err := parseFlags(u, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	load := func() (*config.RuntimeConfig, []string, error) {
		return config.Load(config.LoadOptions{Flags: flags})
	}
	rc, warnings, err := load()
	if err != nil {
		return err
	}
	logger := newLogger(u.out, rc.LogLevel, rc.LogJSON)
	for _, w := range warnings {
		logger.Warn("config warning", "warning", w)
	}
	a, err := agent.New(agent.Options{Config: rc, Reload: load, Logger: logger, Version: version.Human()})
	if err != nil {
		return err
	}

	sigCh := make(chan os.Signal, 4)
	signal.Notify(sigCh, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigCh)

	if err := a.Start(context.Background()); err != nil {
		shutdown(a, logger)
		return fmt.Errorf("starting agent: %w", err)
	}
	mode := "client"
	if rc.Server {
		mode = "server"
	}
	if rc.Dev {
		mode = "server (dev, in-memory)"
	}
	u.Printf("==> Cairn agent running!\n")
	u.Printf("           Version: '%s'\n", version.Human())
	u.Printf("         Node name: '%s'\n", rc.NodeName)
	u.Printf("        Datacenter: '%s'\n", rc.Datacenter)
	u.Printf("            Server: %s\n", mode)
	u.Printf("         HTTP addr: %s\n", a.HTTPAddr())
	u.Printf("\n==> Log data will now stream in as it occurs:\n\n")

	for {
		select {
		case <-a.Done():
			return nil
		case sig := <-sigCh:
			switch sig {
			case syscall.SIGHUP:
				logger.Info("caught signal", "signal", sig.String())
				if err := a.Reload(); err != nil {
					logger.Error("reload failed", "error", err)
				}
				continue
			case syscall.SIGINT:
				logger.Info("caught signal", "signal", sig.String())
				if !rc.SkipLeaveOnInterrupt {
					leave(a, logger)
				}
			case syscall.SIGTERM:
				logger.Info("caught signal", "signal", sig.String())
				if rc.LeaveOnTerminate {
					leave(a, logger)
				}
			}
			go func() {
				// A second signal aborts a slow graceful stop.
				<-sigCh
				logger.Warn("second signal received, exiting now")
				os.Exit(1)
			}()
			shutdown(a, logger)
			return nil
		}
	}
}

func leave(a *agent.Agent, logger *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	logger.Info("gracefully leaving cluster")
	if err := a.Leave(ctx); err != nil {
		logger.Error("leave failed", "error", err)
	}
}

func shutdown(a *agent.Agent, logger *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil {
		logger.Error("shutdown failed", "error", err)
	}
}
