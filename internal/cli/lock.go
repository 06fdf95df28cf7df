package cli

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/consul/api"
)

// Child process termination: SIGTERM, then SIGKILL after this grace period
// (Consul's 5 s).
const lockKillGrace = 5 * time.Second

// lockMonitorRetryTime is the wait between monitor retries (-monitor-retry).
const lockMonitorRetryTime = time.Second

// lockHolder is what runLock needs of api.Lock and api.Semaphore.
type lockHolder interface {
	acquire(stopCh <-chan struct{}) (<-chan struct{}, error)
	release() error
	destroy() error
}

type mutexHolder struct{ l *api.Lock }

func (m mutexHolder) acquire(stopCh <-chan struct{}) (<-chan struct{}, error) {
	return m.l.Lock(stopCh)
}
func (m mutexHolder) release() error { return m.l.Unlock() }
func (m mutexHolder) destroy() error { return m.l.Destroy() }

type semaphoreHolder struct{ s *api.Semaphore }

func (s semaphoreHolder) acquire(stopCh <-chan struct{}) (<-chan struct{}, error) {
	return s.s.Acquire(stopCh)
}
func (s semaphoreHolder) release() error { return s.s.Release() }
func (s semaphoreHolder) destroy() error { return s.s.Destroy() }

// lockOptions are the parsed flags of `cairn lock`.
type lockOptions struct {
	limit         int
	name          string
	timeout       time.Duration
	monitorRetry  int
	childExitCode bool
	shell         bool
	passStdin     bool
	verbose       bool
	prefix        string
	child         []string
}

// runLock implements `cairn lock [options] prefix child...`: it takes the
// lock at prefix (a semaphore slot when -n > 1), runs the child with
// CONSUL_LOCK_HELD=true while it is held, stops the child when the lock is
// lost or the command is interrupted, and releases the lock when the child
// ends. Exit codes follow Consul: 0 once the child ran (2 for a failed
// child with -child-exit-code), 1 when the lock could not be set up or
// taken.
func runLock(u *ui, args []string) error {
	var hf httpFlags
	fs := newFlagSet(u, "lock")
	hf.register(fs)
	var o lockOptions
	fs.IntVar(&o.limit, "n", 1, "Optional limit on the number of concurrent lock holders.")
	fs.StringVar(&o.name, "name", "", "Optional name to associate with the lock session.")
	fs.DurationVar(&o.timeout, "timeout", 0, "Maximum amount of time to wait to acquire the lock.")
	fs.DurationVar(&o.timeout, "try", 0, "DEPRECATED: use -timeout.")
	fs.IntVar(&o.monitorRetry, "monitor-retry", 3, "Number of times to retry if Cairn returns a 500 while monitoring the lock.")
	fs.BoolVar(&o.childExitCode, "child-exit-code", false, "Exit 2 if the child process exited with an error.")
	fs.BoolVar(&o.shell, "shell", true, "Use a shell to run the command ($SHELL, else /bin/sh).")
	fs.BoolVar(&o.passStdin, "pass-stdin", false, "Pass stdin to the child process.")
	fs.BoolVar(&o.verbose, "verbose", false, "Enable verbose output.")
	if err := parseFlags(u, fs, args); err != nil {
		return err
	}
	if fs.NArg() < 2 {
		return errors.New("key prefix and child command must be specified")
	}
	if o.limit <= 0 {
		return fmt.Errorf("lock holder limit must be positive, got %d", o.limit)
	}
	if o.timeout < 0 {
		return fmt.Errorf("timeout must be positive, got %v", o.timeout)
	}
	if o.monitorRetry < 0 {
		return fmt.Errorf("monitor-retry must be zero or positive, got %d", o.monitorRetry)
	}
	o.prefix = strings.TrimPrefix(fs.Arg(0), "/")
	o.child = fs.Args()[1:]
	if o.name == "" {
		o.name = fmt.Sprintf("Consul lock for '%s' at '%s'", strings.Join(o.child, " "), o.prefix)
	}
	client, err := hf.client()
	if err != nil {
		return err
	}
	holder, err := newLockHolder(client, &o)
	if err != nil {
		return err
	}
	return lockAndRun(u, holder, &o)
}

func newLockHolder(client *api.Client, o *lockOptions) (lockHolder, error) {
	if o.limit == 1 {
		opts := &api.LockOptions{
			Key:              path.Join(o.prefix, ".lock"),
			SessionName:      o.name,
			MonitorRetries:   o.monitorRetry,
			MonitorRetryTime: lockMonitorRetryTime,
		}
		if o.timeout > 0 {
			opts.LockWaitTime, opts.LockTryOnce = o.timeout, true
		}
		l, err := client.LockOpts(opts)
		if err != nil {
			return nil, fmt.Errorf("setting up the lock: %w", err)
		}
		return mutexHolder{l}, nil
	}
	opts := &api.SemaphoreOptions{
		Prefix:           o.prefix,
		Limit:            o.limit,
		SessionName:      o.name,
		MonitorRetries:   o.monitorRetry,
		MonitorRetryTime: lockMonitorRetryTime,
	}
	if o.timeout > 0 {
		opts.SemaphoreWaitTime, opts.SemaphoreTryOnce = o.timeout, true
	}
	s, err := client.SemaphoreOpts(opts)
	if err != nil {
		return nil, fmt.Errorf("setting up the semaphore: %w", err)
	}
	return semaphoreHolder{s}, nil
}

func lockAndRun(u *ui, holder lockHolder, o *lockOptions) error {
	sigCh := make(chan os.Signal, 1)
	signal.Notify(sigCh, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigCh)

	// stopCh aborts the acquisition on a signal.
	stopCh := make(chan struct{})
	acquired := make(chan struct{})
	watchDone := make(chan struct{})
	var interrupted bool
	go func() {
		defer close(watchDone)
		select {
		case <-sigCh:
			interrupted = true
			close(stopCh)
		case <-acquired:
		}
	}()
	if o.verbose {
		fmt.Fprintf(u.err, "Attempting lock acquisition at %s\n", o.prefix)
	}
	lostCh, err := holder.acquire(stopCh)
	close(acquired)
	<-watchDone
	if err != nil {
		return fmt.Errorf("lock acquisition failed: %w", err)
	}
	if lostCh == nil {
		if interrupted {
			return errors.New("shutdown triggered during lock acquisition")
		}
		return errors.New("shutdown triggered or timeout during lock acquisition")
	}
	if o.verbose {
		fmt.Fprintln(u.err, "Lock acquired, starting child")
	}

	childErr := runLockChild(u, o, lostCh, sigCh)

	if err := holder.release(); err != nil && !errors.Is(err, api.ErrLockNotHeld) && !errors.Is(err, api.ErrSemaphoreNotHeld) {
		return fmt.Errorf("lock release failed: %w", err)
	}
	// Destroy removes the lock key when nobody else uses it; "in use" is
	// the normal case when others wait.
	if err := holder.destroy(); err != nil && !errors.Is(err, api.ErrLockInUse) && !errors.Is(err, api.ErrSemaphoreInUse) && o.verbose {
		fmt.Fprintf(u.err, "Lock cleanup failed: %v\n", err)
	}
	if childErr != nil {
		if o.childExitCode {
			return &exitError{code: 2, err: fmt.Errorf("child terminated: %w", childErr)}
		}
		fmt.Fprintf(u.err, "Child terminated: %v\n", childErr)
	}
	return nil
}

// runLockChild starts the child and waits for it to exit. If the lock is
// lost or a signal arrives first, the child gets SIGTERM and, after the
// grace period, SIGKILL. It returns the child's error (nil on exit 0).
func runLockChild(u *ui, o *lockOptions, lostCh <-chan struct{}, sigCh <-chan os.Signal) error {
	cmd := lockChildCommand(o)
	cmd.Env = append(os.Environ(), "CONSUL_LOCK_HELD=true")
	cmd.Stdout, cmd.Stderr = u.out, u.err
	if o.passStdin {
		cmd.Stdin = u.in
	}
	setChildProcessGroup(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting child: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-lostCh:
		fmt.Fprintln(u.err, "Lock lost, killing child")
	case <-sigCh:
		fmt.Fprintln(u.err, "Shutdown triggered, killing child")
	}
	terminateChild(cmd)
	select {
	case err := <-done:
		return err
	case <-time.After(lockKillGrace):
		killChild(cmd)
		return <-done
	}
}

// lockChildCommand runs the child through $SHELL -c (default /bin/sh) or,
// with -shell=false, directly.
func lockChildCommand(o *lockOptions) *exec.Cmd {
	if !o.shell {
		return exec.Command(o.child[0], o.child[1:]...)
	}
	sh := os.Getenv("SHELL")
	if sh == "" {
		sh = "/bin/sh"
	}
	return exec.Command(sh, "-c", strings.Join(o.child, " "))
}
