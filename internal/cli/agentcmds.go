package cli

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/hashicorp/consul/api"
)

// memberStatus maps serf's numeric member status to Consul's words.
func memberStatus(s int) string {
	switch s {
	case 0:
		return "none"
	case 1:
		return "alive"
	case 2:
		return "leaving"
	case 3:
		return "left"
	case 4:
		return "failed"
	default:
		return "unknown"
	}
}

func runMembers(u *ui, args []string) error {
	var hf httpFlags
	fs := newFlagSet(u, "members")
	hf.register(fs)
	detailed := fs.Bool("detailed", false, "Provide detailed information with all tags.")
	wan := fs.Bool("wan", false, "List members in the WAN pool.")
	status := fs.String("status", ".*", "Regular `expression` filtering members by status.")
	if err := parseFlags(u, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("too many arguments (expected 0, got %d)", fs.NArg())
	}
	re, err := regexp.Compile(*status)
	if err != nil {
		return fmt.Errorf("invalid -status filter: %w", err)
	}
	c, err := hf.client()
	if err != nil {
		return err
	}
	members, err := c.Agent().Members(*wan)
	if err != nil {
		return fmt.Errorf("retrieving members: %w", err)
	}
	sort.Slice(members, func(i, j int) bool { return members[i].Name < members[j].Name })
	tw := tabwriter.NewWriter(u.out, 0, 2, 2, ' ', 0)
	if *detailed {
		fmt.Fprintln(tw, "Node\tAddress\tStatus\tTags")
	} else {
		fmt.Fprintln(tw, "Node\tAddress\tStatus\tType\tBuild\tProtocol\tDC")
	}
	shown := 0
	for _, m := range members {
		st := memberStatus(m.Status)
		if !re.MatchString(st) {
			continue
		}
		shown++
		addr := fmt.Sprintf("%s:%d", m.Addr, m.Port)
		if *detailed {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.Name, addr, st, mapString(m.Tags))
			continue
		}
		typ := "client"
		if m.Tags["role"] == "consul" {
			typ = "server"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.Name, addr, st, typ, m.Tags["build"], m.Tags["vsn"], m.Tags["dc"])
	}
	if shown == 0 {
		return &exitError{code: 2, err: errors.New("no members match the given filter")}
	}
	return tw.Flush()
}

func runInfo(u *ui, args []string) error {
	var hf httpFlags
	fs := newFlagSet(u, "info")
	hf.register(fs)
	if err := parseFlags(u, fs, args); err != nil {
		return err
	}
	c, err := hf.client()
	if err != nil {
		return err
	}
	self, err := c.Agent().Self()
	if err != nil {
		return fmt.Errorf("querying agent: %w", err)
	}
	stats, _ := self["Stats"]
	if len(stats) == 0 {
		// Fall back to the sections the agent reports.
		stats = map[string]any{}
		for k, v := range self {
			stats[k] = v
		}
	}
	sections := make([]string, 0, len(stats))
	for k := range stats {
		sections = append(sections, k)
	}
	sort.Strings(sections)
	for _, sec := range sections {
		u.Printf("%s:\n", sec)
		m, ok := stats[sec].(map[string]any)
		if !ok {
			u.Printf("\t%v\n", stats[sec])
			continue
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			u.Printf("\t%s = %v\n", k, m[k])
		}
	}
	return nil
}

func runReload(u *ui, args []string) error {
	var hf httpFlags
	fs := newFlagSet(u, "reload")
	hf.register(fs)
	if err := parseFlags(u, fs, args); err != nil {
		return err
	}
	c, err := hf.client()
	if err != nil {
		return err
	}
	if err := c.Agent().Reload(); err != nil {
		return fmt.Errorf("reloading configuration: %w", err)
	}
	u.Printf("Configuration reload triggered\n")
	return nil
}

func runLeave(u *ui, args []string) error {
	var hf httpFlags
	fs := newFlagSet(u, "leave")
	hf.register(fs)
	if err := parseFlags(u, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("too many arguments (expected 0, got %d)", fs.NArg())
	}
	c, err := hf.client()
	if err != nil {
		return err
	}
	if err := c.Agent().Leave(); err != nil {
		return fmt.Errorf("leaving the cluster: %w", err)
	}
	u.Printf("Graceful leave complete\n")
	return nil
}

func runMaint(u *ui, args []string) error {
	var hf httpFlags
	fs := newFlagSet(u, "maint")
	hf.register(fs)
	enable := fs.Bool("enable", false, "Enable maintenance mode.")
	disable := fs.Bool("disable", false, "Disable maintenance mode.")
	reason := fs.String("reason", "", "Text describing the maintenance reason.")
	serviceID := fs.String("service", "", "Control maintenance mode for a specific service `ID`.")
	if err := parseFlags(u, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("too many arguments (expected 0, got %d)", fs.NArg())
	}
	if *enable && *disable {
		return errors.New("only one of -enable or -disable may be provided")
	}
	if !*enable && *reason != "" {
		return errors.New("-reason may only be provided with -enable")
	}
	if !*enable && !*disable && *serviceID != "" {
		return errors.New("-service requires either -enable or -disable")
	}
	c, err := hf.client()
	if err != nil {
		return err
	}
	a := c.Agent()
	if !*enable && !*disable {
		checks, err := a.Checks()
		if err != nil {
			return fmt.Errorf("getting checks: %w", err)
		}
		nodeName, _ := a.NodeName()
		ids := make([]string, 0, len(checks))
		for id := range checks {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			chk := checks[id]
			switch {
			case id == "_node_maintenance":
				u.Printf("Node:\n  Name:   %s\n  Reason: %s\n\n", nodeName, chk.Notes)
			case strings.HasPrefix(id, "_service_maintenance:"):
				u.Printf("Service:\n  ID:     %s\n  Reason: %s\n\n", strings.TrimPrefix(id, "_service_maintenance:"), chk.Notes)
			}
		}
		return nil
	}
	if *serviceID != "" {
		if *enable {
			err = a.EnableServiceMaintenance(*serviceID, *reason)
		} else {
			err = a.DisableServiceMaintenance(*serviceID)
		}
		if err != nil {
			return fmt.Errorf("toggling maintenance for service %q: %w", *serviceID, err)
		}
		if *enable {
			u.Printf("Service maintenance is now enabled\n")
		} else {
			u.Printf("Service maintenance is now disabled\n")
		}
		return nil
	}
	if *enable {
		err = a.EnableNodeMaintenance(*reason)
	} else {
		err = a.DisableNodeMaintenance()
	}
	if err != nil {
		return fmt.Errorf("toggling node maintenance: %w", err)
	}
	if *enable {
		u.Printf("Node maintenance is now enabled\n")
	} else {
		u.Printf("Node maintenance is now disabled\n")
	}
	return nil
}

// registerService is shared by `services register` for file and flag input.
func registerService(c *api.Client, body any) error {
	_, err := c.Raw().Write("/v1/agent/service/register", body, nil, nil)
	return err
}
