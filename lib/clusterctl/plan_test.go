package clusterctl

import (
	"strings"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/dcs"
)

func TestMakePlan(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	noLeader := func() *dcs.Cluster {
		return withOptime(cluster("", m("node2", 100*mb, receiver("")), m("node3", 90*mb, receiver(""))), 100*mb)
	}
	pending := func() *dcs.Cluster {
		cl := healthy()
		cl.Failover = &dcs.Failover{Leader: "node1", Member: "node3", ScheduledAt: &at}
		return cl
	}
	lagging := func() *dcs.Cluster {
		return cluster("node1", m("node1", 100*mb, primary), m("node2", 40*mb), m("node3", 100*mb, stopped))
	}
	synced := func(cl *dcs.Cluster, leader string, standbys ...string) *dcs.Cluster {
		cl.Sync = &dcs.SyncKey{Leader: leader, Standbys: standbys}
		return cl
	}
	tests := []struct {
		name   string
		cl     *dcs.Cluster
		sync   bool // synchronous_mode on
		paused bool
		req    Request
		reason Reason // Unknown means success
		msg    string // substring of the error, or of Describe on success
		key    dcs.Failover
	}{
		{"named", healthy(), false, false, Request{Candidate: "node2"}, Unknown, "switchover from node1 to node2",
			dcs.Failover{Leader: "node1", Member: "node2"}},
		{"best", healthy(), false, false, Request{}, Unknown, "switchover from node1 to node2 (the best candidate)",
			dcs.Failover{Leader: "node1", Member: "node2"}},
		{"from matches", healthy(), false, false, Request{Candidate: "node3", From: "node1"}, Unknown, "to node3",
			dcs.Failover{Leader: "node1", Member: "node3"}},
		{"scheduled", healthy(), false, false, Request{Candidate: "node3", At: &at}, Unknown, "at 2030-01-02T03:04:05Z",
			dcs.Failover{Leader: "node1", Member: "node3", ScheduledAt: &at}},
		{"from mismatch", healthy(), false, false, Request{Candidate: "node3", From: "node2"}, NotFromLeader, "--from node2: the leader is node1, not node2", dcs.Failover{}},
		{"no such member", healthy(), false, false, Request{Candidate: "node9"}, NoSuchMember, "no such member: node9 (members: node1, node2, node3)", dcs.Failover{}},
		{"not eligible", lagging(), false, false, Request{Candidate: "node2"}, NotEligible, "node2 is not eligible: lags 60 MB behind the leader", dcs.Failover{}},
		{"stopped", lagging(), false, false, Request{Candidate: "node3"}, NotEligible, "node3 is not eligible: PostgreSQL is not running (state stopped)", dcs.Failover{}},
		{"nobody eligible", lagging(), false, false, Request{}, NotEligible, "no eligible candidate: node2 lags 60 MB", dcs.Failover{}},
		{"alone", cluster("node1", m("node1", 1, primary)), false, false, Request{}, NotEligible, "no candidate: node1 has no other member", dcs.Failover{}},
		{"no leader", noLeader(), false, false, Request{Candidate: "node2"}, NoLeader, "no leader", dcs.Failover{}},
		{"already leads", healthy(), false, false, Request{Candidate: "node1"}, Unknown, "to node1", dcs.Failover{}},
		{"already leads, paused", healthy(), false, true, Request{Candidate: "node1"}, Unknown, "to node1", dcs.Failover{}},
		{"pending", pending(), false, false, Request{Candidate: "node2"}, Pending, "a switchover from node1 to node3 scheduled at 2030-01-02T03:04:05Z is already pending", dcs.Failover{}},
		{"failover", noLeader(), false, false, Request{Failover: true, Candidate: "node2"}, Unknown, "failover to node2",
			dcs.Failover{Member: "node2"}},
		{"failover to the best", noLeader(), false, false, Request{Failover: true}, Unknown, "failover to node2 (the best candidate)",
			dcs.Failover{Member: "node2"}},
		{"failover to a lagging member", noLeader(), false, false, Request{Failover: true, Candidate: "node3"}, NotEligible,
			"node3 is not eligible: lags 10 MB behind the last leader's last known position, more than maximum_lag_on_failover (1 MB); add --force", dcs.Failover{}},
		{"forced failover to a lagging member", noLeader(), false, false, Request{Failover: true, Force: true, Candidate: "node3"}, Unknown, "failover to node3",
			dcs.Failover{Member: "node3", Force: true}},
		{"forced failover does not force nofailover", withOptime(cluster("", m("node3", 90*mb, tags(map[string]any{"nofailover": true}))), 100*mb),
			false, false, Request{Failover: true, Force: true, Candidate: "node3"}, NotEligible, "tagged nofailover", dcs.Failover{}},
		{"failover while a leader lives", healthy(), false, false, Request{Failover: true, Candidate: "node2"}, LeaderAlive, "node1 holds the leader key", dcs.Failover{}},
		{"forced failover while a leader lives is a switchover", healthy(), false, false, Request{Failover: true, Force: true, Candidate: "node2"}, Unknown,
			"switchover from node1 to node2", dcs.Failover{Leader: "node1", Member: "node2"}},
		{"scheduled failover", noLeader(), false, false, Request{Failover: true, Candidate: "node2", At: &at}, Usage, "--at: a failover cannot be scheduled", dcs.Failover{}},
		{"failover with --from", noLeader(), false, false, Request{Failover: true, Candidate: "node2", From: "node1"}, NotFromLeader, "nobody leads", dcs.Failover{}},
		{"sync on: switchover to the synchronous standby", synced(healthy(), "node1", "node3"), true, false, Request{}, Unknown, "switchover from node1 to node3 (the best candidate)",
			dcs.Failover{Leader: "node1", Member: "node3"}},
		{"sync on: switchover to an asynchronous standby", synced(healthy(), "node1", "node3"), true, false, Request{Candidate: "node2"}, NotEligible,
			"node2 is not a synchronous standby (sync_standby: node3)", dcs.Failover{}},
		{"sync off: the key does not matter", synced(healthy(), "node1", "node3"), false, false, Request{Candidate: "node2"}, Unknown, "to node2",
			dcs.Failover{Leader: "node1", Member: "node2"}},
		{"sync on: failover to an asynchronous standby needs force", synced(noLeader(), "node1", "node3"), true, false, Request{Failover: true, Candidate: "node2"}, NotEligible,
			"not a synchronous standby (sync_standby: node3), so it may lack acknowledged commits; add --force", dcs.Failover{}},
		{"sync on: forced failover to an asynchronous standby", synced(noLeader(), "node1", "node3"), true, false, Request{Failover: true, Force: true, Candidate: "node2"}, Unknown,
			"failover to node2", dcs.Failover{Member: "node2", Force: true}},
		{"failover to a stopped member", cluster("", m("node2", 0, stopped)), false, false, Request{Failover: true, Candidate: "node2"}, NotEligible, "not running", dcs.Failover{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := settings
			s.Paused = tt.paused
			if tt.sync {
				s.SyncMode = config.SyncOn
			}
			p, err := MakePlan(tt.cl, s, tt.req)
			if tt.reason != Unknown {
				if err == nil || ReasonOf(err) != tt.reason || !strings.Contains(err.Error(), tt.msg) {
					t.Fatalf("MakePlan = %v (%v), want %v containing %q", err, ReasonOf(err), tt.reason, tt.msg)
				}
				return
			}
			if err != nil {
				t.Fatalf("MakePlan: %v", err)
			}
			if !strings.Contains(p.Describe(), tt.msg) {
				t.Errorf("Describe = %q, want %q in it", p.Describe(), tt.msg)
			}
			if p.Noop != (tt.key == dcs.Failover{}) {
				t.Errorf("Noop = %v", p.Noop)
			}
			if !p.Noop {
				k := p.FailoverKey()
				if k.Leader != tt.key.Leader || k.Member != tt.key.Member || k.Force != tt.key.Force || (k.ScheduledAt == nil) != (tt.key.ScheduledAt == nil) {
					t.Errorf("FailoverKey = %+v, want %+v", k, tt.key)
				}
			}
			if len(p.Members) != len(tt.cl.Members) {
				t.Errorf("plan assesses %d members, want %d", len(p.Members), len(tt.cl.Members))
			}
		})
	}
}

func TestParseAt(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		in     string
		want   time.Time
		reason Reason
	}{
		{"2030-01-02T03:05:00Z", time.Date(2030, 1, 2, 3, 5, 0, 0, time.UTC), Unknown},
		{"2030-01-02T04:05:00+01:00", time.Date(2030, 1, 2, 3, 5, 0, 0, time.UTC), Unknown},
		{" 2030-01-02T03:04:05.5Z ", time.Date(2030, 1, 2, 3, 4, 5, 5e8, time.UTC), Unknown},
		{"2030-01-02T03:04:05Z", time.Time{}, Usage}, // now is not the future
		{"2030-01-02T03:00:00Z", time.Time{}, Usage}, // the past
		{"2030-01-02 03:05:00", time.Time{}, Usage},  // not RFC 3339
		{"in five minutes", time.Time{}, Usage},
		{"2030-01-02T03:05:00", time.Time{}, Usage}, // no zone
	}
	for _, tt := range tests {
		got, err := ParseAt(tt.in, now)
		if ReasonOf(err) != tt.reason || (err == nil) != (tt.reason == Unknown) || !got.Equal(tt.want) {
			t.Errorf("ParseAt(%q) = %v, %v; want %v (reason %v)", tt.in, got, err, tt.want, tt.reason)
		}
	}
}
