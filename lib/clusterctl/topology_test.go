package clusterctl

import (
	"strings"
	"testing"

	"github.com/pg-ha/pg-ha/lib/dcs"
)

func TestTopology(t *testing.T) {
	from := func(up string) func(*dcs.MemberData) { return tags(map[string]any{"replicatefrom": up}) }
	order := func(tl TopologyListing) string {
		var s []string
		for _, r := range tl.Members {
			s = append(s, strings.Repeat(".", r.Depth)+r.Name+"<"+r.Upstream)
		}
		return strings.Join(s, " ")
	}
	for _, tc := range []struct {
		name string
		cl   *dcs.Cluster
		want string
	}{
		{"flat", healthy(), "node1< .node2<node1 .node3<node1"},
		{"cascade", cluster("node2", m("node1", 1, from("node3")), m("node2", 1, primary), m("node3", 1), m("node4", 1, from("node3")), m("node5", 1, from("node1"))),
			"node2< .node3<node2 ..node1<node3 ...node5<node1 ..node4<node3"},
		{"replicatefrom the leader, itself, or a stranger", cluster("node1", m("node1", 1, primary), m("node2", 1, from("node1")), m("node3", 1, from("node3")), m("node4", 1, from("nodeX"))),
			"node1< .node2<node1 .node3<node1 .node4<node1"},
		{"a loop is shown, not hidden", cluster("node1", m("node1", 1, primary), m("node2", 1, from("node3")), m("node3", 1, from("node2"))),
			"node1< node2<node3 .node3<node2"},
		{"no leader", cluster("", m("node2", 1), m("node3", 1, from("node2"))), "node2< .node3<node2"},
	} {
		got := Topology(List("demo", tc.cl, settings))
		if o := order(got); o != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, o, tc.want)
		}
	}
}

func TestRenderTopology(t *testing.T) {
	from := tags(map[string]any{"replicatefrom": "node2"})
	cl := cluster("node1", m("node1", 100*mb, primary), m("node2", 100*mb), m("node3", 100*mb, from))
	cl.Initialize = ""
	want := "" +
		"+ Cluster: demo -------+---------+-----------+----+-----------+----------------------+\n" +
		"| Member    | Host     | Role    | State     | TL | Lag in MB | Tags                 |\n" +
		"+-----------+----------+---------+-----------+----+-----------+----------------------+\n" +
		"| node1     | 10.0.0.1 | Leader  | running   |  2 |           |                      |\n" +
		"| + node2   | 10.0.0.2 | Replica | streaming |  2 |         0 |                      |\n" +
		"|   + node3 | 10.0.0.3 | Replica | streaming |  2 |         0 | replicatefrom: node2 |\n" +
		"+-----------+----------+---------+-----------+----+-----------+----------------------+\n"
	if got := RenderTopology(Topology(List("demo", cl, settings))); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestVersions(t *testing.T) {
	cl := cluster("node1", m("node1", 1, primary, func(d *dcs.MemberData) { d.Version = "0.1.0" }), m("node2", 1))
	if got := Versions("pg-failover", "1.2.3", cl).String(); got != "pg-failover 1.2.3\nnode1: pg-ha 0.1.0\nnode2: pg-ha unknown\n" {
		t.Errorf("got %q", got)
	}
}
