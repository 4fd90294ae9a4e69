package clusterctl

import (
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/dcs"
)

func TestCheckRequest(t *testing.T) {
	pending := healthy()
	pending.Requests = map[string]dcs.NodeRequest{"node2": {Action: "restart", ID: "ab"}}
	failed := healthy()
	failed.Requests = map[string]dcs.NodeRequest{"node2": {Action: "reinit", ID: "ab", Error: "no leader to clone from"}}
	tests := []struct {
		name   string
		cl     *dcs.Cluster
		member string
		action string
		want   Reason // Unknown: allowed
	}{
		{"restart a replica", healthy(), "node2", dcs.ActionRestart, Unknown},
		{"restart the leader", healthy(), "node1", dcs.ActionRestart, Unknown},
		{"reinit a replica", healthy(), "node3", dcs.ActionReinit, Unknown},
		{"reinit the leader", healthy(), "node1", dcs.ActionReinit, NotEligible},
		{"no such member", healthy(), "node9", dcs.ActionRestart, NoSuchMember},
		{"pending", pending, "node2", dcs.ActionRestart, Pending},
		{"a failed one left behind", failed, "node2", dcs.ActionReinit, Pending},
		{"pending for another member", pending, "node3", dcs.ActionRestart, Unknown},
	}
	for _, tt := range tests {
		err := CheckRequest(tt.cl, tt.member, tt.action)
		if (err == nil) != (tt.want == Unknown) || (err != nil && ReasonOf(err) != tt.want) {
			t.Errorf("%s: CheckRequest = %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestRequestProgress(t *testing.T) {
	req := NewRequest(dcs.ActionRestart, time.Now())
	if len(req.ID) != 16 || req.Action != "restart" {
		t.Fatalf("NewRequest = %+v", req)
	}
	at := func(rev int64, f func(*dcs.Cluster)) *dcs.Cluster {
		cl := healthy()
		cl.Revision = rev
		f(cl)
		return cl
	}
	pendingReq := func(r dcs.NodeRequest) func(*dcs.Cluster) {
		return func(cl *dcs.Cluster) { cl.Requests = map[string]dcs.NodeRequest{"node2": r} }
	}
	memberAt := func(rev int64, st string) func(*dcs.Cluster) {
		return func(cl *dcs.Cluster) { cl.Members[1].ModRevision, cl.Members[1].Data.State = rev, st }
	}
	p := &RequestProgress{Member: "node2", Req: req}
	steps := []struct {
		cl     *dcs.Cluster
		done   bool
		reason Reason
	}{
		{at(100, pendingReq(req)), false, Unknown},
		{at(110, memberAt(105, "running")), false, Unknown}, // gone, but the member key predates the read
		{at(120, memberAt(115, "starting")), false, Unknown},
		{at(130, memberAt(125, "running")), true, Unknown},
	}
	for i, s := range steps {
		done, err := p.Judge(s.cl)
		if done != s.done || ReasonOf(err) != s.reason || (err != nil) != (s.reason != Unknown) {
			t.Errorf("step %d: Judge = %v, %v; want %v, %v", i, done, err, s.done, s.reason)
		}
	}
	if p.Gone != 110 {
		t.Errorf("Gone = %d, want 110", p.Gone)
	}
	failedReq := req
	failedReq.Error = "PostgreSQL did not stop in time"
	other := NewRequest(dcs.ActionReinit, time.Now())
	for _, tt := range []struct {
		r    dcs.NodeRequest
		want Reason
	}{{failedReq, RequestFailed}, {other, Diverted}} {
		p := &RequestProgress{Member: "node2", Req: req}
		if done, err := p.Judge(at(100, pendingReq(tt.r))); done || ReasonOf(err) != tt.want {
			t.Errorf("Judge(%+v) = %v, %v; want %v", tt.r, done, err, tt.want)
		}
	}
}
