package cli

import (
	"errors"
	"fmt"

	"github.com/hashicorp/consul/api"
)

// runJoin implements `cairn join [-wan] ADDRESS...`: the local agent joins
// the cluster through the given gossip addresses.
func runJoin(u *ui, args []string) error {
	var hf httpFlags
	fs := newFlagSet(u, "join")
	hf.register(fs)
	wan := fs.Bool("wan", false, "Joins a server to another server in the WAN pool.")
	if err := parseFlags(u, fs, args); err != nil {
		return err
	}
	addrs := fs.Args()
	if len(addrs) == 0 {
		return errors.New("at least one address to join must be specified")
	}
	c, err := hf.client()
	if err != nil {
		return err
	}
	joined := 0
	var errs []error
	for _, addr := range addrs {
		if err := c.Agent().Join(addr, *wan); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", addr, err))
			continue
		}
		joined++
	}
	if joined == 0 {
		return fmt.Errorf("joining the cluster: %w", errors.Join(errs...))
	}
	u.Printf("Successfully joined cluster by contacting %d nodes.\n", joined)
	return nil
}

// runForceLeave implements `cairn force-leave [-prune] [-wan] NODE`.
func runForceLeave(u *ui, args []string) error {
	var hf httpFlags
	fs := newFlagSet(u, "force-leave")
	hf.register(fs)
	prune := fs.Bool("prune", false, "Remove agent completely from list of members.")
	wan := fs.Bool("wan", false, "Exclusively leave the agent from the WAN serf pool.")
	if err := parseFlags(u, fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("a single node name must be specified to force leave")
	}
	node := fs.Arg(0)
	c, err := hf.client()
	if err != nil {
		return err
	}
	if err := c.Agent().ForceLeaveOptions(node, api.ForceLeaveOpts{Prune: *prune, WAN: *wan}, nil); err != nil {
		return fmt.Errorf("force leaving %s: %w", node, err)
	}
	return nil
}
