package state

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/go-memdb"
)

// Nodes returns every node whose Meta contains all of meta, sorted by name.
func (s *Store) Nodes(ws memdb.WatchSet, meta map[string]string) (uint64, []*Node, error) {
	tx := s.db.Txn(false)
	defer tx.Abort()
	it, err := tx.Get(tableNodes, "id")
	if err != nil {
		return 0, nil, fmt.Errorf("state: list nodes: %w", err)
	}
	ws.Add(it.WatchCh())
	var out []*Node
	for raw := it.Next(); raw != nil; raw = it.Next() {
		n := raw.(*Node)
		if metaMatches(n.Meta, meta) {
			out = append(out, cloneNode(n))
		}
	}
	sortNodes(out)
	return maxIndexTxn(tx, tableNodes), out, nil
}

// GetNode returns one node (nil when missing) and the nodes table index.
func (s *Store) GetNode(ws memdb.WatchSet, name string) (uint64, *Node, error) {
	tx := s.db.Txn(false)
	defer tx.Abort()
	ch, raw, err := tx.FirstWatch(tableNodes, "id", name)
	if err != nil {
		return 0, nil, fmt.Errorf("state: read node %q: %w", name, err)
	}
	ws.Add(ch)
	idx := maxIndexTxn(tx, tableNodes)
	if raw == nil {
		return idx, nil, nil
	}
	return idx, cloneNode(raw.(*Node)), nil
}

// ServiceInstances returns every service instance joined with its node,
// restricted to nodes whose Meta contains meta, sorted by node then
// service ID. It is what ListServices filters before aggregating.
func (s *Store) ServiceInstances(ws memdb.WatchSet, meta map[string]string) (uint64, []*ServiceNode, error) {
	tx := s.db.Txn(false)
	defer tx.Abort()
	it, err := tx.Get(tableServices, "id")
	if err != nil {
		return 0, nil, fmt.Errorf("state: list services: %w", err)
	}
	ws.Add(it.WatchCh())
	idx := maxIndexTxn(tx, tableServices)
	if len(meta) > 0 {
		nit, err := tx.Get(tableNodes, "id")
		if err != nil {
			return 0, nil, fmt.Errorf("state: list nodes: %w", err)
		}
		ws.Add(nit.WatchCh())
		idx = max(idx, maxIndexTxn(tx, tableNodes))
	}
	var out []*ServiceNode
	nodes := map[string]*Node{}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		row := raw.(*serviceRow)
		n, err := nodeCachedTxn(tx, nodes, row.Node)
		if err != nil {
			return 0, nil, err
		}
		if n == nil || !metaMatches(n.Meta, meta) {
			continue
		}
		out = append(out, toServiceNode(n, row.Service))
	}
	sortServiceNodes(out)
	return idx, out, nil
}

// Services returns each service name with the union of its instances' tags
// (sorted), for nodes matching meta.
func (s *Store) Services(ws memdb.WatchSet, meta map[string]string) (uint64, map[string][]string, error) {
	idx, list, err := s.ServiceInstances(ws, meta)
	if err != nil {
		return 0, nil, err
	}
	return idx, AggregateServices(list), nil
}

// AggregateServices maps service names to the sorted union of their
// instances' tags (never nil).
func AggregateServices(list []*ServiceNode) map[string][]string {
	tags := map[string]map[string]struct{}{}
	for _, sn := range list {
		set, ok := tags[sn.ServiceName]
		if !ok {
			set = map[string]struct{}{}
			tags[sn.ServiceName] = set
		}
		for _, t := range sn.ServiceTags {
			set[t] = struct{}{}
		}
	}
	out := make(map[string][]string, len(tags))
	for name, set := range tags {
		l := make([]string, 0, len(set))
		for t := range set {
			l = append(l, t)
		}
		sort.Strings(l)
		out[name] = l
	}
	return out
}

// ServiceNodes returns the instances of service name that carry every tag in
// tags (case-insensitively) on nodes matching meta, sorted by node then
// service ID. The index is the service's own index, so a blocking query on
// one service does not wake for changes to others.
func (s *Store) ServiceNodes(ws memdb.WatchSet, name string, tags []string, meta map[string]string) (uint64, []*ServiceNode, error) {
	tx := s.db.Txn(false)
	defer tx.Abort()
	idx := serviceIndexTxn(tx, ws, name, false)
	rows, err := serviceRowsTxn(tx, name, tags)
	if err != nil {
		return 0, nil, err
	}
	var out []*ServiceNode
	nodes := map[string]*Node{}
	for _, row := range rows {
		n, err := nodeCachedTxn(tx, nodes, row.Node)
		if err != nil {
			return 0, nil, err
		}
		if n == nil || !metaMatches(n.Meta, meta) {
			continue
		}
		out = append(out, toServiceNode(n, row.Service))
	}
	sortServiceNodes(out)
	return idx, out, nil
}

// NodeServices returns a node with its services keyed by ID (nil when the
// node does not exist).
func (s *Store) NodeServices(ws memdb.WatchSet, node string) (uint64, *NodeServices, error) {
	idx, n, list, err := s.nodeServiceList(ws, node)
	if err != nil || n == nil {
		return idx, nil, err
	}
	out := &NodeServices{Node: n, Services: make(map[string]*NodeService, len(list))}
	for _, svc := range list {
		out.Services[svc.ID] = svc
	}
	return idx, out, nil
}

// NodeServiceList returns a node with its services sorted by ID (nil when
// the node does not exist).
func (s *Store) NodeServiceList(ws memdb.WatchSet, node string) (uint64, *NodeServiceList, error) {
	idx, n, list, err := s.nodeServiceList(ws, node)
	if err != nil || n == nil {
		return idx, nil, err
	}
	if list == nil {
		list = []*NodeService{}
	}
	return idx, &NodeServiceList{Node: n, Services: list}, nil
}

func (s *Store) nodeServiceList(ws memdb.WatchSet, node string) (uint64, *Node, []*NodeService, error) {
	tx := s.db.Txn(false)
	defer tx.Abort()
	idx := maxIndexTxn(tx, tableNodes, tableServices)
	ch, raw, err := tx.FirstWatch(tableNodes, "id", node)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("state: read node %q: %w", node, err)
	}
	ws.Add(ch)
	if raw == nil {
		return idx, nil, nil, nil
	}
	n := raw.(*Node)
	it, err := tx.Get(tableServices, "node", n.Node)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("state: read services of node %q: %w", node, err)
	}
	ws.Add(it.WatchCh())
	var list []*NodeService
	for r := it.Next(); r != nil; r = it.Next() {
		list = append(list, cloneService(r.(*serviceRow).Service))
	}
	slices.SortFunc(list, func(a, b *NodeService) int { return strings.Compare(a.ID, b.ID) })
	return idx, cloneNode(n), list, nil
}

// serviceIndexTxn returns the index of queries about service name and
// watches it. A service that does not exist reports the last extinction
// index (or the catalog table index), which never goes backwards either.
func serviceIndexTxn(tx *memdb.Txn, ws memdb.WatchSet, name string, withChecks bool) uint64 {
	v, ch := indexWatchTxn(tx, serviceIndexKey(name))
	ws.Add(ch)
	if v != 0 {
		return v
	}
	if ext := maxIndexTxn(tx, indexServiceExtinction); ext != 0 {
		return ext
	}
	if withChecks {
		return maxIndexTxn(tx, tableNodes, tableServices, tableChecks)
	}
	return maxIndexTxn(tx, tableNodes, tableServices)
}

// serviceRowsTxn returns the rows of service name having all tags.
func serviceRowsTxn(tx *memdb.Txn, name string, tags []string) ([]*serviceRow, error) {
	it, err := tx.Get(tableServices, "service", name)
	if err != nil {
		return nil, fmt.Errorf("state: read service %q: %w", name, err)
	}
	var rows []*serviceRow
	for raw := it.Next(); raw != nil; raw = it.Next() {
		row := raw.(*serviceRow)
		if hasAllTags(row.Service.Tags, tags) {
			rows = append(rows, row)
		}
	}
	return rows, nil
}

// nodeCachedTxn looks a node up once per query.
func nodeCachedTxn(tx *memdb.Txn, cache map[string]*Node, name string) (*Node, error) {
	if n, ok := cache[name]; ok {
		return n, nil
	}
	raw, err := tx.First(tableNodes, "id", name)
	if err != nil {
		return nil, fmt.Errorf("state: read node %q: %w", name, err)
	}
	var n *Node
	if raw != nil {
		n = raw.(*Node)
	}
	cache[name] = n
	return n, nil
}

// hasAllTags reports whether have contains every tag of want, comparing
// case-insensitively as Consul does.
func hasAllTags(have, want []string) bool {
	for _, w := range want {
		if !slices.ContainsFunc(have, func(h string) bool { return strings.EqualFold(h, w) }) {
			return false
		}
	}
	return true
}

// metaMatches reports whether have contains every key/value of want.
func metaMatches(have, want map[string]string) bool {
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			return false
		}
	}
	return true
}

func sortNodes(l []*Node) {
	slices.SortFunc(l, func(a, b *Node) int { return strings.Compare(a.Node, b.Node) })
}

func sortServiceNodes(l []*ServiceNode) {
	slices.SortFunc(l, func(a, b *ServiceNode) int {
		if c := strings.Compare(a.Node, b.Node); c != 0 {
			return c
		}
		return strings.Compare(a.ServiceID, b.ServiceID)
	})
}
