package bootstrap

import (
	"reflect"
	"testing"

	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/dcs"
)

// TestCloneSources: the running member replicatefrom names comes first,
// then running replicas tagged clonefrom, least lag first, then the leader
// if it runs as a primary; the node itself, a stopped member and an
// untagged replica (unless replicatefrom names it) are never sources.
func TestCloneSources(t *testing.T) {
	pos := func(n int64) *int64 { return &n }
	member := func(name, state, role string, xlog int64, clonefrom bool) dcs.Member {
		d := dcs.MemberData{ConnURL: "postgres://" + name + ":5432/postgres", State: state, Role: role, XLogLocation: pos(xlog)}
		if clonefrom {
			d.Tags = map[string]any{"clonefrom": true}
		}
		return dcs.Member{Name: name, Data: d}
	}
	cl := &dcs.Cluster{
		Leader: &dcs.Leader{Name: "n1"},
		Members: []dcs.Member{
			member("n1", "running", "primary", 900, true),
			member("n2", "running", "replica", 500, true),
			member("n3", "running", "replica", 800, true),
			member("n4", "stopped", "replica", 900, true),
			member("n5", "running", "replica", 900, false),
			member("self", "running", "replica", 900, true),
		},
	}
	var got []string
	for _, s := range cloneSources(cl, "self", "") {
		got = append(got, s.Name)
	}
	if want := []string{"n3", "n2", "n1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("sources %v, want %v", got, want)
	}
	names := func(from string) (out []string) {
		for _, s := range cloneSources(cl, "self", from) {
			out = append(out, s.Name)
		}
		return out
	}
	if got, want := names("n5"), []string{"n5", "n3", "n2", "n1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("sources with replicatefrom n5: %v, want %v", got, want)
	}
	if got, want := names("n2"), []string{"n2", "n3", "n1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("sources with replicatefrom n2: %v, want %v", got, want)
	}
	if got, want := names("n4"), []string{"n3", "n2", "n1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("sources with replicatefrom a stopped member: %v, want %v", got, want)
	}
	if got, want := names("n1"), []string{"n3", "n2", "n1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("sources with replicatefrom the leader: %v, want %v", got, want)
	}
	if !hasLeader(cl, cloneSources(cl, "self", "")) {
		t.Error("hasLeader false with a running primary leader")
	}
	cl.Members[0].Data.Role = "replica" // still being promoted
	if s := cloneSources(cl, "self", ""); hasLeader(cl, s) || len(s) != 2 {
		t.Errorf("a leader not yet primary is a source: %v", s)
	}
	cfg := &config.Config{Postgres: config.Postgres{CreateReplicaMethods: []string{"wal_g", "basebackup"},
		Methods: map[string]config.Method{"wal_g": {Name: "wal_g", Command: "x", NoLeader: true}}}}
	if !noLeaderMethod(cfg) {
		t.Error("noLeaderMethod false with a no_leader method")
	}
	cfg.Postgres.Methods["wal_g"] = config.Method{Name: "wal_g", Command: "x"}
	if noLeaderMethod(cfg) {
		t.Error("noLeaderMethod true without one")
	}
}
