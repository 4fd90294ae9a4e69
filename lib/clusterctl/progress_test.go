package clusterctl

import (
	"strings"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/dcs"
)

func TestJudge(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 123456789, time.UTC)
	sw := Plan{Kind: Switchover, Leader: "node1", Candidate: "node2"}
	swAt := Plan{Kind: Switchover, Leader: "node1", Candidate: "node2", ScheduledAt: &at}
	fo := Plan{Kind: Failover, Candidate: "node2"}
	with := func(cl *dcs.Cluster, f func(*dcs.Cluster)) *dcs.Cluster { f(cl); return cl }
	ours := func(p Plan) func(*dcs.Cluster) {
		return func(cl *dcs.Cluster) { k := p.FailoverKey(); cl.Failover = &k }
	}
	promoted := func(cl *dcs.Cluster) {
		cl.Leader = &dcs.Leader{Name: "node2"}
		cl.Members[0].Data.Role, cl.Members[1].Data.Role = "replica", "primary"
	}
	tests := []struct {
		name string
		p    Plan
		cl   *dcs.Cluster
		want Outcome
	}{
		{"requested", sw, with(healthy(), ours(sw)), Waiting},
		{"leader key released", sw, with(healthy(), func(cl *dcs.Cluster) { ours(sw)(cl); cl.Leader = nil }), Waiting},
		{"candidate holds the key, still in recovery", sw, with(healthy(), func(cl *dcs.Cluster) { ours(sw)(cl); cl.Leader = &dcs.Leader{Name: "node2"} }), Waiting},
		{"candidate primary, request not yet deleted", sw, with(healthy(), func(cl *dcs.Cluster) { ours(sw)(cl); promoted(cl) }), Waiting},
		{"done", sw, with(healthy(), promoted), Done},
		{"done, candidate not running", sw, with(healthy(), func(cl *dcs.Cluster) { promoted(cl); cl.Members[1].Data.State = "starting" }), Waiting},
		{"standby cluster: the candidate is the standby leader", sw, with(healthy(), func(cl *dcs.Cluster) { promoted(cl); cl.Members[1].Data.Role = "standby_leader" }), Done},
		{"standby cluster: request not yet deleted", sw, with(healthy(), func(cl *dcs.Cluster) {
			ours(sw)(cl)
			promoted(cl)
			cl.Members[1].Data.Role = "standby_leader"
		}), Waiting},
		{"done with the legacy role", sw, with(healthy(), func(cl *dcs.Cluster) { promoted(cl); cl.Members[1].Data.Role = "master" }), Done},
		{"refused", sw, healthy(), Dropped},
		{"someone else leads", sw, with(healthy(), func(cl *dcs.Cluster) { cl.Leader = &dcs.Leader{Name: "node3"} }), Elsewhere},
		{"replaced", sw, with(healthy(), func(cl *dcs.Cluster) { cl.Failover = &dcs.Failover{Leader: "node1", Member: "node3"} }), Replaced},
		{"scheduled: waiting", swAt, with(healthy(), ours(swAt)), Waiting},
		{"scheduled: stored with microseconds", swAt, with(healthy(), func(cl *dcs.Cluster) {
			t := at.Truncate(time.Microsecond)
			cl.Failover = &dcs.Failover{Leader: "node1", Member: "node2", ScheduledAt: &t}
		}), Waiting},
		{"scheduled: other time", swAt, with(healthy(), func(cl *dcs.Cluster) {
			t := at.Add(time.Second)
			cl.Failover = &dcs.Failover{Leader: "node1", Member: "node2", ScheduledAt: &t}
		}), Replaced},
		{"failover: nobody yet", fo, with(cluster("", m("node2", 1), m("node3", 1)), ours(fo)), Waiting},
		{"failover: done", fo, with(cluster("", m("node1", 1), m("node2", 1)), promoted), Done},
		{"failover: another member won", fo, cluster("node3", m("node2", 1), m("node3", 1, primary)), Elsewhere},
		{"failover: key gone, nobody leads", fo, cluster("", m("node2", 1), m("node3", 1)), Waiting},
	}
	for _, tt := range tests {
		if got := Judge(tt.p, tt.cl); got != tt.want {
			t.Errorf("%s: Judge = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestProgress(t *testing.T) {
	p := Plan{Kind: Switchover, Leader: "node1", Candidate: "node2"}
	cl := healthy()
	k := p.FailoverKey()
	cl.Failover = &k
	cl.Leader = nil
	cl.Members[1].Data.State = "starting"
	got := Progress(p, cl)
	for _, want := range []string{"nobody holds the leader key", "node2 is replica, starting", "the request is still in etcd"} {
		if !strings.Contains(got, want) {
			t.Errorf("Progress = %q, want %q in it", got, want)
		}
	}
}
