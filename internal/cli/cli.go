package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
)

// ui carries the process's standard streams to every command.
type ui struct {
	in  io.Reader
	out io.Writer
	err io.Writer
}

func (u *ui) Printf(format string, a ...any) { fmt.Fprintf(u.out, format, a...) }

// errUsage marks an error whose message is the usage already printed.
var errUsage = errors.New("usage")

// exitError carries a specific exit code (e.g. `cairn validate` uses 1,
// `cairn lock` the child's code).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// commandFunc runs one command with its raw arguments (flags not yet parsed).
type commandFunc func(u *ui, args []string) error

// leaf makes a cobra command that hands its raw arguments to fn.
func leaf(u *ui, use, short string, fn commandFunc) *cobra.Command {
	return &cobra.Command{
		Use:                use,
		Short:              short,
		DisableFlagParsing: true,
		SilenceUsage:       true,
		SilenceErrors:      true,
		RunE: func(_ *cobra.Command, args []string) error {
			return fn(u, args)
		},
	}
}

// group makes a cobra command that only holds subcommands.
func group(use, short string, children ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{
		Use:           use,
		Short:         short,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			return c.Help()
		},
	}
	c.AddCommand(children...)
	return c
}

// newFlagSet returns a FlagSet that reports errors instead of exiting.
func newFlagSet(u *ui, name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	// Parse errors become one line through Run; usage is printed only for -h.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parseFlags parses args, translating -h into errUsage.
func parseFlags(u *ui, fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			w := u.err
			fmt.Fprintf(w, "Usage: cairn %s [options]\n\n", fs.Name())
			fs.SetOutput(w)
			fs.PrintDefaults()
			return errUsage
		}
		return fmt.Errorf("%s: %w", fs.Name(), err)
	}
	return nil
}

func newRoot(u *ui) *cobra.Command {
	root := &cobra.Command{
		Use:           "cairn",
		Short:         "Service discovery, health checking and a replicated KV store (Consul-compatible)",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(u.out)
	root.SetErr(u.err)
	root.CompletionOptions.DisableDefaultCmd = true
	root.AddCommand(
		leaf(u, "agent", "Runs a Cairn agent", runAgent),
		leaf(u, "version", "Prints the Cairn version", runVersion),
		leaf(u, "validate", "Validates config files or directories", runValidate),
		group("kv", "Interact with the key-value store",
			leaf(u, "get", "Retrieves or lists data from the KV store", runKVGet),
			leaf(u, "put", "Sets or updates data in the KV store", runKVPut),
			leaf(u, "delete", "Removes data from the KV store", runKVDelete),
			leaf(u, "export", "Exports a tree from the KV store as JSON", runKVExport),
			leaf(u, "import", "Imports a tree stored as JSON to the KV store", runKVImport),
		),
		group("catalog", "Interact with the catalog",
			leaf(u, "datacenters", "Lists all known datacenters", runCatalogDatacenters),
			leaf(u, "nodes", "Lists all nodes in the given datacenter", runCatalogNodes),
			leaf(u, "services", "Lists all registered services in a datacenter", runCatalogServices),
		),
		group("services", "Interact with services",
			leaf(u, "register", "Register services with the local agent", runServicesRegister),
			leaf(u, "deregister", "Deregister services with the local agent", runServicesDeregister),
		),
		group("snapshot", "Saves, restores and inspects snapshots of the servers' state",
			leaf(u, "save", "Saves a snapshot of the servers' state to a file", runSnapshotSave),
			leaf(u, "restore", "Restores a snapshot file into the servers' state", runSnapshotRestore),
			leaf(u, "inspect", "Verifies a snapshot file and shows its metadata", runSnapshotInspect),
		),
		leaf(u, "members", "Lists the members of a Cairn cluster", runMembers),
		leaf(u, "info", "Provides debugging information for operators", runInfo),
		leaf(u, "bench", "Measures throughput and latency of a cluster over the HTTP API", runBench),
		leaf(u, "reload", "Triggers the agent to reload configuration files", runReload),
		leaf(u, "leave", "Gracefully leaves the cluster and shuts down", runLeave),
		leaf(u, "join", "Tells the local agent to join a cluster", runJoin),
		leaf(u, "force-leave", "Forces a member of the cluster to enter the \"left\" state", runForceLeave),
		leaf(u, "maint", "Controls node or service maintenance mode", runMaint),
		leaf(u, "lock", "Executes a command holding a lock", runLock),
		leaf(u, "event", "Fires a new user event", runEvent),
		leaf(u, "watch", "Watches for changes in Cairn and prints or handles them", runWatch),
		operatorGroup(u),
	)
	return root
}

// Run executes the cairn command line and returns the process exit code.
func Run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	u := &ui{in: stdin, out: stdout, err: stderr}
	root := newRoot(u)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return 0
	}
	if errors.Is(err, errUsage) {
		return 1
	}
	code := 1
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	}
	if msg := strings.TrimSpace(err.Error()); msg != "" {
		// One clear line, as Consul's CLI prints.
		fmt.Fprintln(stderr, "Error: "+strings.ReplaceAll(msg, "\n", " "))
	}
	return code
}
