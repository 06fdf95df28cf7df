package cli

import (
	"errors"
	"fmt"
	"regexp"

	"github.com/hashicorp/consul/api"
)

// runEvent implements `cairn event [-name N] [-node R] [-service R]
// [-tag R] [payload]`: it fires a user event through the local agent and
// prints its ID.
func runEvent(u *ui, args []string) error {
	var hf httpFlags
	fs := newFlagSet(u, "event")
	hf.register(fs)
	var name, node, service, tag string
	fs.StringVar(&name, "name", "", "Name of the event.")
	fs.StringVar(&node, "node", "", "Regular expression to filter on node names.")
	fs.StringVar(&service, "service", "", "Regular expression to filter on service instances.")
	fs.StringVar(&tag, "tag", "", "Regular expression to filter on service tags. Must be used with -service.")
	if err := parseFlags(u, fs, args); err != nil {
		return err
	}
	switch {
	case name == "":
		return errors.New("event name must be specified (-name)")
	case tag != "" && service == "":
		return errors.New("cannot provide tag filter without service filter (-tag needs -service)")
	case fs.NArg() > 1:
		return fmt.Errorf("too many command line arguments: %q (the payload is one argument)", fs.Args())
	}
	for _, f := range []struct{ flag, expr string }{{"node", node}, {"service", service}, {"tag", tag}} {
		if f.expr == "" {
			continue
		}
		if _, err := regexp.Compile(f.expr); err != nil {
			return fmt.Errorf("failed to compile -%s filter regexp: %w", f.flag, err)
		}
	}
	var payload []byte
	if fs.NArg() == 1 {
		payload = []byte(fs.Arg(0))
	}
	client, err := hf.client()
	if err != nil {
		return err
	}
	// Like Consul, make sure an agent answers before firing.
	if _, err := client.Agent().NodeName(); err != nil {
		return fmt.Errorf("error querying Cairn agent: %w", err)
	}
	id, _, err := client.Event().Fire(&api.UserEvent{
		Name: name, Payload: payload, NodeFilter: node, ServiceFilter: service, TagFilter: tag,
	}, &api.WriteOptions{Datacenter: hf.datacenter})
	if err != nil {
		return fmt.Errorf("error firing event: %w", err)
	}
	u.Printf("Event ID: %s\n", id)
	return nil
}
