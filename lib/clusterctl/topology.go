package clusterctl

import "strings"

// TopologyRow is one member in `topology` (its --json form): the list row,
// how deep it sits in the replication tree (0 for the leader) and whom it
// replicates from.
type TopologyRow struct {
	MemberRow
	Depth    int    `json:"depth"`
	Upstream string `json:"upstream,omitempty"`
}

// TopologyListing is the cluster as `topology` shows it: the listing with
// its members in tree order.
type TopologyListing struct {
	Listing
	Members []TopologyRow `json:"members"`
}

// Topology orders l's members as patronictl topology does: the leader,
// then each replica under the member its replicatefrom tag names (when
// that is another replica of the cluster), else under the leader, depth
// first, siblings by name. Members the tree does not reach (no leader, or
// replicatefrom tags that form a loop) follow at depth 0, so that none is
// hidden. It is pure.
func Topology(l Listing) TopologyListing {
	t := TopologyListing{Listing: l, Members: []TopologyRow{}}
	byName := map[string]MemberRow{}
	for _, m := range l.Members {
		byName[m.Name] = m
	}
	children := map[string][]string{}
	for _, m := range l.Members { // l.Members is sorted by name
		if m.Name == l.Leader {
			continue
		}
		up := l.Leader
		if rf, _ := m.Tags["replicatefrom"].(string); rf != "" && rf != m.Name && rf != l.Leader {
			if _, ok := byName[rf]; ok {
				up = rf
			}
		}
		children[up] = append(children[up], m.Name)
	}
	seen := map[string]bool{}
	var walk func(name, up string, depth int)
	walk = func(name, up string, depth int) {
		if seen[name] {
			return
		}
		seen[name] = true
		t.Members = append(t.Members, TopologyRow{MemberRow: byName[name], Depth: depth, Upstream: up})
		for _, c := range children[name] {
			walk(c, name, depth+1)
		}
	}
	if _, ok := byName[l.Leader]; ok {
		walk(l.Leader, "", 0)
	}
	for _, m := range l.Members {
		if !seen[m.Name] {
			rf, _ := m.Tags["replicatefrom"].(string)
			walk(m.Name, rf, 0)
		}
	}
	return t
}

// RenderTopology renders t as patronictl topology does: the list table
// with each replica's name indented under its upstream ("+ node2", then
// "  + node3" for a cascade). It is pure.
func RenderTopology(t TopologyListing) string {
	l := t.Listing
	l.Members = make([]MemberRow, len(t.Members))
	for i, r := range t.Members {
		m := r.MemberRow
		if r.Depth > 0 {
			m.Name = strings.Repeat("  ", r.Depth-1) + "+ " + m.Name
		}
		l.Members[i] = m
	}
	return RenderList(l)
}
