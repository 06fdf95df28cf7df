package state

import (
	"maps"
	"reflect"
	"slices"
)

// The store never hands out pointers to the objects it holds: readers get
// copies, so a caller changing a result cannot corrupt the store. Copies
// also normalize nil maps and slices to empty ones so the JSON shows {} and
// [] as Consul does.

func cloneStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return slices.Clone(s)
}

func cloneStringMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return maps.Clone(m)
}

func cloneNode(n *Node) *Node {
	c := *n
	c.TaggedAddresses = cloneStringMap(n.TaggedAddresses)
	c.Meta = cloneStringMap(n.Meta)
	return &c
}

func cloneService(s *NodeService) *NodeService {
	c := *s
	c.Tags = cloneStrings(s.Tags)
	c.Meta = cloneStringMap(s.Meta)
	if s.TaggedAddresses != nil {
		c.TaggedAddresses = maps.Clone(s.TaggedAddresses)
	}
	return &c
}

func cloneCheck(h *HealthCheck) *HealthCheck {
	c := *h
	c.ServiceTags = cloneStrings(h.ServiceTags)
	if h.Definition.Header != nil {
		c.Definition.Header = make(map[string][]string, len(h.Definition.Header))
		for k, v := range h.Definition.Header {
			c.Definition.Header[k] = slices.Clone(v)
		}
	}
	return &c
}

func equalStrings(a, b []string) bool { return slices.Equal(a, b) }

// nodeEqual compares everything but the Raft indexes.
func nodeEqual(a, b *Node) bool {
	return a.ID == b.ID && a.Node == b.Node && a.Address == b.Address &&
		a.Datacenter == b.Datacenter &&
		maps.Equal(a.TaggedAddresses, b.TaggedAddresses) && maps.Equal(a.Meta, b.Meta)
}

// serviceEqual compares everything but the Raft indexes.
func serviceEqual(a, b *NodeService) bool {
	return a.Kind == b.Kind && a.ID == b.ID && a.Service == b.Service &&
		slices.Equal(a.Tags, b.Tags) && a.Address == b.Address &&
		maps.Equal(a.TaggedAddresses, b.TaggedAddresses) && maps.Equal(a.Meta, b.Meta) &&
		a.Port == b.Port && a.Weights == b.Weights && a.EnableTagOverride == b.EnableTagOverride
}

// checkEqual compares everything but the Raft indexes.
func checkEqual(a, b *HealthCheck) bool {
	if a.Node != b.Node || a.CheckID != b.CheckID || a.Name != b.Name || a.Status != b.Status ||
		a.Notes != b.Notes || a.Output != b.Output || a.ServiceID != b.ServiceID ||
		a.ServiceName != b.ServiceName || !slices.Equal(a.ServiceTags, b.ServiceTags) || a.Type != b.Type {
		return false
	}
	da, db := a.Definition, b.Definition
	if len(da.Header) == 0 {
		da.Header = nil
	}
	if len(db.Header) == 0 {
		db.Header = nil
	}
	return reflect.DeepEqual(da, db)
}

// toServiceNode joins a node and one of its services into a catalog row.
func toServiceNode(n *Node, s *NodeService) *ServiceNode {
	return &ServiceNode{
		ID:                       n.ID,
		Node:                     n.Node,
		Address:                  n.Address,
		Datacenter:               n.Datacenter,
		TaggedAddresses:          cloneStringMap(n.TaggedAddresses),
		NodeMeta:                 cloneStringMap(n.Meta),
		ServiceKind:              s.Kind,
		ServiceID:                s.ID,
		ServiceName:              s.Service,
		ServiceTags:              cloneStrings(s.Tags),
		ServiceAddress:           s.Address,
		ServiceTaggedAddresses:   maps.Clone(s.TaggedAddresses),
		ServiceWeights:           s.Weights,
		ServiceMeta:              cloneStringMap(s.Meta),
		ServicePort:              s.Port,
		ServiceEnableTagOverride: s.EnableTagOverride,
		CreateIndex:              s.CreateIndex,
		ModifyIndex:              s.ModifyIndex,
	}
}
