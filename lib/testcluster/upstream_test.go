package testcluster

import (
	"slices"
	"testing"
)

// TestExpectedUpstreams checks whom the streaming checks let a replica
// stream from, by its tags.
func TestExpectedUpstreams(t *testing.T) {
	members := []string{"node1", "node2", "node3"}
	for _, tc := range []struct {
		name    string
		tags    map[string]any
		from    []string
		streams bool
	}{
		{"no tags", nil, []string{"node1"}, true},
		{"other tags", map[string]any{"nofailover": true}, []string{"node1"}, true},
		{"replicatefrom a replica", map[string]any{"replicatefrom": "node2"}, []string{"node1", "node2"}, true},
		{"replicatefrom the primary", map[string]any{"replicatefrom": "node1"}, []string{"node1"}, true},
		{"replicatefrom itself", map[string]any{"replicatefrom": "node3"}, []string{"node1"}, true},
		{"replicatefrom no member", map[string]any{"replicatefrom": "node9"}, []string{"node1"}, true},
		{"replicatefrom empty", map[string]any{"replicatefrom": ""}, []string{"node1"}, true},
		{"nostream", map[string]any{"nostream": true}, nil, false},
		{"nostream as a string", map[string]any{"nostream": "true"}, nil, false},
		{"nostream false", map[string]any{"nostream": false}, []string{"node1"}, true},
		{"nostream and replicatefrom", map[string]any{"nostream": true, "replicatefrom": "node2"}, nil, false},
	} {
		from, streams := expectedUpstreams(tc.tags, "node3", "node1", members)
		if streams != tc.streams || !slices.Equal(from, tc.from) {
			t.Errorf("%s: tags %v: from %v, streams %v; want from %v, streams %v", tc.name, tc.tags, from, streams, tc.from, tc.streams)
		}
	}
}
