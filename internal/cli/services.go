package cli

import (
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/consul/api"

	"github.com/cairn-io/cairn/internal/config"
)

func runServicesRegister(u *ui, args []string) error {
	var hf httpFlags
	fs := newFlagSet(u, "services register")
	hf.register(fs)
	name := fs.String("name", "", "Name of the service to register.")
	id := fs.String("id", "", "ID of the service (defaults to the name).")
	address := fs.String("address", "", "Address of the service.")
	port := fs.Int("port", 0, "Port of the service.")
	var tags, meta multiFlag
	fs.Var(&tags, "tag", "Tag to add to the service (repeatable).")
	fs.Var(&meta, "meta", "Metadata `key=value` for the service (repeatable).")
	if err := parseFlags(u, fs, args); err != nil {
		return err
	}
	var bodies []any
	switch {
	case fs.NArg() > 0 && *name != "":
		return errors.New("use either config files or -name flags, not both")
	case fs.NArg() > 0:
		for _, path := range fs.Args() {
			defs, err := config.ServiceDefinitionsFromFile(path)
			if err != nil {
				return err
			}
			if len(defs) == 0 {
				return fmt.Errorf("%s: no service definitions found", path)
			}
			for _, d := range defs {
				bodies = append(bodies, d)
			}
		}
	case *name != "":
		reg := &api.AgentServiceRegistration{ID: *id, Name: *name, Address: *address, Port: *port, Tags: tags}
		if len(meta) > 0 {
			reg.Meta = map[string]string{}
			for _, m := range meta {
				k, v, ok := strings.Cut(m, "=")
				if !ok {
					return fmt.Errorf("invalid -meta %q: want key=value", m)
				}
				reg.Meta[k] = v
			}
		}
		bodies = append(bodies, reg)
	default:
		return errors.New("must specify a config file or -name")
	}
	c, err := hf.client()
	if err != nil {
		return err
	}
	for _, b := range bodies {
		if err := registerService(c, b); err != nil {
			return fmt.Errorf("registering service: %w", err)
		}
	}
	u.Printf("Registered %d service(s)\n", len(bodies))
	return nil
}

func runServicesDeregister(u *ui, args []string) error {
	var hf httpFlags
	fs := newFlagSet(u, "services deregister")
	hf.register(fs)
	id := fs.String("id", "", "ID of the service to deregister.")
	if err := parseFlags(u, fs, args); err != nil {
		return err
	}
	var ids []string
	switch {
	case fs.NArg() > 0 && *id != "":
		return errors.New("use either config files or -id, not both")
	case fs.NArg() > 0:
		for _, path := range fs.Args() {
			defs, err := config.ServiceDefinitionsFromFile(path)
			if err != nil {
				return err
			}
			for _, d := range defs {
				sid := stringField(d, "id", "ID")
				if sid == "" {
					sid = stringField(d, "name", "Name")
				}
				if sid == "" {
					return fmt.Errorf("%s: service definition without id or name", path)
				}
				ids = append(ids, sid)
			}
		}
	case *id != "":
		ids = []string{*id}
	default:
		return errors.New("must specify a config file or -id")
	}
	c, err := hf.client()
	if err != nil {
		return err
	}
	for _, sid := range ids {
		if err := c.Agent().ServiceDeregister(sid); err != nil {
			return fmt.Errorf("deregistering service %q: %w", sid, err)
		}
		u.Printf("Deregistered service: %s\n", sid)
	}
	return nil
}

// stringField returns the first of keys present in m as a string.
func stringField(m map[string]any, keys ...string) string {
	for _, k := range keys {
		if s, ok := m[k].(string); ok && s != "" {
			return s
		}
	}
	return ""
}
