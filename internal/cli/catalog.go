package cli

import (
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/hashicorp/consul/api"
)

func runCatalogDatacenters(u *ui, args []string) error {
	var hf httpFlags
	fs := newFlagSet(u, "catalog datacenters")
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
	dcs, err := c.Catalog().Datacenters()
	if err != nil {
		return fmt.Errorf("retrieving datacenters: %w", err)
	}
	for _, dc := range dcs {
		u.Printf("%s\n", dc)
	}
	return nil
}

func runCatalogNodes(u *ui, args []string) error {
	var hf httpFlags
	fs := newFlagSet(u, "catalog nodes")
	hf.register(fs)
	detailed := fs.Bool("detailed", false, "Output detailed information about the nodes.")
	service := fs.String("service", "", "Service `id or name` to filter nodes.")
	filter := fs.String("filter", "", "Filter expression.")
	var meta multiFlag
	fs.Var(&meta, "node-meta", "Metadata `key=value` to filter nodes (repeatable).")
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
	q := hf.queryOptions()
	q.Filter = *filter
	q.NodeMeta = map[string]string{}
	for _, m := range meta {
		k, v, _ := strings.Cut(m, "=")
		q.NodeMeta[k] = v
	}
	var nodes []*api.Node
	if *service != "" {
		svcs, _, err := c.Catalog().Service(*service, "", q)
		if err != nil {
			return fmt.Errorf("retrieving nodes: %w", err)
		}
		seen := map[string]bool{}
		for _, s := range svcs {
			if seen[s.Node] {
				continue
			}
			seen[s.Node] = true
			nodes = append(nodes, &api.Node{ID: s.ID, Node: s.Node, Address: s.Address, Datacenter: s.Datacenter,
				TaggedAddresses: s.TaggedAddresses, Meta: s.NodeMeta})
		}
	} else {
		nodes, _, err = c.Catalog().Nodes(q)
		if err != nil {
			return fmt.Errorf("retrieving nodes: %w", err)
		}
	}
	if len(nodes) == 0 {
		return fmt.Errorf("no nodes match the given query")
	}
	tw := tabwriter.NewWriter(u.out, 0, 2, 2, ' ', 0)
	if *detailed {
		fmt.Fprintln(tw, "Node\tID\tAddress\tDC\tTaggedAddresses\tMeta")
	} else {
		fmt.Fprintln(tw, "Node\tID\tAddress\tDC")
	}
	for _, n := range nodes {
		id := n.ID
		if !*detailed && len(id) > 8 {
			id = id[:8]
		}
		if *detailed {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", n.Node, id, n.Address, n.Datacenter, mapString(n.TaggedAddresses), mapString(n.Meta))
		} else {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", n.Node, id, n.Address, n.Datacenter)
		}
	}
	return tw.Flush()
}

func mapString(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ", ")
}

func runCatalogServices(u *ui, args []string) error {
	var hf httpFlags
	fs := newFlagSet(u, "catalog services")
	hf.register(fs)
	node := fs.String("node", "", "Node `id or name` for which to list services.")
	tags := fs.Bool("tags", false, "Display each service's tags.")
	filter := fs.String("filter", "", "Filter expression.")
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
	q := hf.queryOptions()
	q.Filter = *filter
	services := map[string][]string{}
	if *node != "" {
		n, _, err := c.Catalog().Node(*node, q)
		if err != nil {
			return fmt.Errorf("retrieving services for node %q: %w", *node, err)
		}
		if n == nil {
			return fmt.Errorf("no node found: %s", *node)
		}
		for _, s := range n.Services {
			services[s.Service] = append(services[s.Service], s.Tags...)
		}
	} else {
		services, _, err = c.Catalog().Services(q)
		if err != nil {
			return fmt.Errorf("retrieving services: %w", err)
		}
	}
	names := make([]string, 0, len(services))
	for n := range services {
		names = append(names, n)
	}
	sort.Strings(names)
	tw := tabwriter.NewWriter(u.out, 0, 2, 6, ' ', 0)
	for _, n := range names {
		if *tags {
			t := append([]string(nil), services[n]...)
			sort.Strings(t)
			fmt.Fprintf(tw, "%s\t%s\n", n, strings.Join(t, ","))
		} else {
			fmt.Fprintf(tw, "%s\n", n)
		}
	}
	return tw.Flush()
}

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
