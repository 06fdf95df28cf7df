package checks

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"time"
)

// ScriptConfig configures a script check.
type ScriptConfig struct {
	ID       string
	Args     []string // the command and its arguments; no shell is involved
	Interval time.Duration
	Timeout  time.Duration // default DefaultScriptTimeout
	// OutputMaxSize caps the kept output (the last bytes of stdout and
	// stderr combined); default DefaultOutputMaxSize.
	OutputMaxSize int
}

// Script is a check that runs a command every interval: exit code 0 is
// passing, 1 warning, anything else critical. A command still running at
// the timeout is killed with its whole process group and is critical.
type Script struct {
	*intervalRunner
}

// NewScript returns a script check; it runs from Start until Stop. Whether
// script checks are allowed at all is the agent's decision.
func NewScript(cfg ScriptConfig, n Notifier) *Script {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultScriptTimeout
	}
	p := func(ctx context.Context) (string, string) { return probeScript(ctx, cfg) }
	return &Script{newIntervalRunner(cfg.ID, cfg.Interval, p, n, nil)}
}

func probeScript(ctx context.Context, cfg ScriptConfig) (string, string) {
	if len(cfg.Args) == 0 {
		return "critical", "script: no command to run (Args is empty)"
	}
	out := newTailBuffer(cfg.OutputMaxSize)
	cmd := exec.Command(cfg.Args[0], cfg.Args[1:]...) //nolint:gosec // running the configured command is the point
	cmd.Stdout = out
	cmd.Stderr = out
	// A grandchild that escaped the process group may keep the output pipe
	// open; do not wait for it past this once the script itself exited.
	cmd.WaitDelay = time.Second
	setProcessGroup(cmd)
	if err := cmd.Start(); err != nil {
		return "critical", fmt.Sprintf("script: start %q: %v", cfg.Args[0], err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	timer := time.NewTimer(cfg.Timeout)
	defer timer.Stop()
	var err error
	select {
	case err = <-done:
	case <-timer.C:
		killProcessGroup(cmd)
		<-done
		return "critical", truncate(fmt.Sprintf("Timed out (%s) running check %q\n%s", cfg.Timeout, cfg.Args[0], out.String()), cfg.OutputMaxSize)
	case <-ctx.Done():
		killProcessGroup(cmd)
		<-done
		return "critical", "script: check stopped"
	}
	code := 0
	if err != nil {
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			code = ee.ExitCode()
		case errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState != nil:
			code = cmd.ProcessState.ExitCode()
		default:
			return "critical", truncate(fmt.Sprintf("script: run %q: %v\n%s", cfg.Args[0], err, out.String()), cfg.OutputMaxSize)
		}
	}
	return exitStatus(code), out.String()
}
