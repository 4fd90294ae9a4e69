package clusterctl

import (
	"testing"

	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/dcs"
)

func i64(v int64) *int64 { return &v }

// m is a running streaming replica on timeline 2 at pos; opts adjust it.
func m(name string, pos int64, opts ...func(*dcs.MemberData)) dcs.Member {
	d := dcs.MemberData{
		ConnURL: "postgres://10.0.0." + name[len(name)-1:] + ":5432/postgres", State: "running", Role: "replica",
		Timeline: 2, XLogLocation: i64(pos), ReplicationState: "streaming",
	}
	for _, o := range opts {
		o(&d)
	}
	return dcs.Member{Name: name, Data: d, ModRevision: 10}
}

func primary(d *dcs.MemberData) { d.Role, d.ReplicationState = "primary", "" }
func stopped(d *dcs.MemberData) { d.State, d.XLogLocation, d.ReplicationState = "stopped", nil, "" }
func tags(t map[string]any) func(*dcs.MemberData) {
	return func(d *dcs.MemberData) { d.Tags = t }
}
func tl(n int) func(*dcs.MemberData) { return func(d *dcs.MemberData) { d.Timeline = n } }
func receiver(s string) func(*dcs.MemberData) {
	return func(d *dcs.MemberData) { d.ReplicationState = s }
}
func withState(s string) func(*dcs.MemberData)         { return func(d *dcs.MemberData) { d.State = s } }
func noPosition(d *dcs.MemberData)                     { d.XLogLocation = nil }
func withRole(r string) func(*dcs.MemberData)          { return func(d *dcs.MemberData) { d.Role = r } }
func withOptime(cl *dcs.Cluster, o int64) *dcs.Cluster { cl.Status.Optime = o; return cl }

// cluster builds a cluster led by leader ("" for none) with members sorted
// by name, as dcs.Get returns them.
func cluster(leader string, ms ...dcs.Member) *dcs.Cluster {
	cl := &dcs.Cluster{Revision: 100, Initialize: "7000000000000000001", Members: ms}
	if leader != "" {
		cl.Leader = &dcs.Leader{Name: leader, ModRevision: 50, CreateRevision: 50}
	}
	return cl
}

const mb = 1 << 20

var settings = Settings{MaxLag: 1 * mb}

// healthy is node1 leading at 100 MB, node2 and node3 streaming.
func healthy() *dcs.Cluster {
	return cluster("node1", m("node1", 100*mb, primary), m("node2", 100*mb), m("node3", 100*mb-4096))
}

// testConfig is a minimal node YAML.
func testConfig(t testing.TB) *config.Config {
	t.Helper()
	cfg, _, err := config.Parse([]byte("scope: demo\nname: node1\netcd3:\n  hosts: [127.0.0.1:2379]\n"), []string{})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
