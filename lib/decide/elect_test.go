package decide

import (
	"testing"
	"time"
)

func TestElect(t *testing.T) {
	m := func(name string, tl int, pos int64) Member {
		return Member{Name: name, Running: true, Timeline: tl, Position: pos, Priority: 1, Fresh: true}
	}
	with := func(x Member, f func(*Member)) Member { f(&x); return x }
	tests := []struct {
		name string
		e    Election
		want bool
	}{
		{"alone and healthy", Election{Self: m("n1", 1, 100)}, true},
		{"most WAL wins", Election{Self: m("n2", 1, 200), Others: []Member{m("n3", 1, 100)}}, true},
		{"someone has more WAL", Election{Self: m("n2", 1, 100), Others: []Member{m("n3", 1, 200)}}, false},
		{"later timeline beats more WAL", Election{Self: m("n2", 2, 100), Others: []Member{m("n3", 1, 900)}}, true},
		{"tie: smaller name", Election{Self: m("n2", 1, 100), Others: []Member{m("n3", 1, 100)}}, true},
		{"tie: larger name waits", Election{Self: m("n3", 1, 100), Others: []Member{m("n2", 1, 100)}}, false},
		{"tie: higher priority wins over name", Election{Self: with(m("n3", 1, 100), func(x *Member) { x.Priority = 5 }), Others: []Member{m("n2", 1, 100)}}, true},
		{"not running", Election{Self: with(m("n1", 1, 100), func(x *Member) { x.Running = false })}, false},
		{"nofailover", Election{Self: with(m("n1", 1, 100), func(x *Member) { x.NoFailover = true })}, false},
		{"pre_promote refused a moment ago", Election{Self: with(m("n1", 1, 100), func(x *Member) { x.PrePromoteFailed = true })}, false},
		{"a member ahead whose pre_promote refused is passed over", Election{Self: m("n2", 1, 100), Others: []Member{with(m("n3", 1, 900), func(x *Member) { x.PrePromoteFailed = true })}}, true},
		{"priority 0", Election{Self: with(m("n1", 1, 100), func(x *Member) { x.Priority = 0 })}, false},
		{"too much lag", Election{Self: m("n1", 1, 100), LastLeaderPosition: 5000, MaxLag: 1000}, false},
		{"lag within bound", Election{Self: m("n1", 1, 4500), LastLeaderPosition: 5000, MaxLag: 1000}, true},
		{"a better member that cannot lead is ignored", Election{Self: m("n2", 1, 100), Others: []Member{with(m("n3", 1, 900), func(x *Member) { x.NoFailover = true })}}, true},
		{"a stopped member is ignored", Election{Self: m("n2", 1, 100), Others: []Member{with(m("n3", 1, 900), func(x *Member) { x.Running = false })}}, true},
		{"a silent member is awaited", Election{Self: m("n2", 1, 100), Others: []Member{with(m("n3", 1, 50), func(x *Member) { x.Fresh = false })}}, false},
		{"a silent member is ignored after settling", Election{Self: m("n2", 1, 100), Others: []Member{with(m("n3", 1, 900), func(x *Member) { x.Fresh = false })}, SettleExpired: true}, true},
		{"check_timeline: behind the cluster's timeline", Election{Self: m("n1", 2, 100), CheckTimeline: true, ClusterTimeline: 3}, false},
		{"check_timeline: on it", Election{Self: m("n1", 3, 100), CheckTimeline: true, ClusterTimeline: 3}, true},
		{"check_timeline off: behind is no matter", Election{Self: m("n1", 2, 100), ClusterTimeline: 3}, true},
		{"paused: replica does not race", Election{Self: m("n1", 1, 100), Paused: true}, false},
		{"paused: running primary takes the key back", Election{Self: with(m("n1", 1, 100), func(x *Member) { x.Primary = true }), Paused: true}, true},
		{"failover to another member", Election{Self: m("n1", 1, 900), Others: []Member{m("n2", 1, 100)}, Failover: &FailoverKey{Member: "n2"}}, false},
		{"failover to me despite a fresher member", Election{Self: m("n2", 1, 100), Others: []Member{m("n1", 1, 900)}, Failover: &FailoverKey{Member: "n2"}}, true},
		{"failover target gone: normal election", Election{Self: m("n1", 1, 900), Failover: &FailoverKey{Member: "n9"}}, true},
		{"paused: a requested failover still happens", Election{Self: m("n2", 1, 100), Failover: &FailoverKey{Member: "n2"}, Paused: true}, true},
		{"paused: others still wait for the target", Election{Self: m("n1", 1, 900), Others: []Member{m("n2", 1, 900)}, Failover: &FailoverKey{Member: "n2"}, Paused: true}, false},
		{"failover target stopped: normal election", Election{Self: m("n1", 1, 900), Others: []Member{with(m("n2", 1, 900), func(x *Member) { x.Running = false })}, Failover: &FailoverKey{Member: "n2"}}, true},
		{"failover target lags: normal election", Election{Self: m("n1", 1, 5000), Others: []Member{m("n2", 1, 100)}, Failover: &FailoverKey{Member: "n2"}, LastLeaderPosition: 5000, MaxLag: 1000}, true},
		{"failover target lags: it does not race", Election{Self: m("n2", 1, 100), Failover: &FailoverKey{Member: "n2"}, LastLeaderPosition: 5000, MaxLag: 1000}, false},
		{"forced failover target may lag", Election{Self: m("n2", 1, 100), Others: []Member{m("n1", 1, 4000)}, Failover: &FailoverKey{Member: "n2", Force: true}, LastLeaderPosition: 5000, MaxLag: 1000}, true},
		{"forced failover: others wait", Election{Self: m("n1", 1, 4000), Others: []Member{m("n2", 1, 100)}, Failover: &FailoverKey{Member: "n2", Force: true}, LastLeaderPosition: 5000, MaxLag: 1000}, false},
		{"failover target nofailover: normal election", Election{Self: m("n1", 1, 900), Others: []Member{with(m("n2", 1, 900), func(x *Member) { x.NoFailover = true })}, Failover: &FailoverKey{Member: "n2"}}, true},
		{"scheduled switchover is not honoured without a leader", Election{Self: m("n1", 1, 900), Others: []Member{m("n2", 1, 900)}, Failover: &FailoverKey{Leader: "n0", Member: "n2", ScheduledAt: time.Unix(2e9, 0)}, Now: time.Unix(1e9, 0)}, true},
		{"scheduled switchover: its candidate races normally", Election{Self: m("n2", 1, 100), Others: []Member{m("n1", 1, 900)}, Failover: &FailoverKey{Leader: "n0", Member: "n2", ScheduledAt: time.Unix(2e9, 0)}, Now: time.Unix(1e9, 0)}, false},
		{"due scheduled switchover: its candidate takes over", Election{Self: m("n2", 1, 1100), Others: []Member{m("n1", 1, 2000)}, Failover: &FailoverKey{Leader: "n0", Member: "n2", ScheduledAt: time.Unix(2e9, 0)}, Now: time.Unix(2e9+1, 0), Late: 8 * time.Second, LastLeaderPosition: 1000}, true},
		{"switchover candidate with the checkpoint", Election{Self: m("n2", 1, 1100), Others: []Member{m("n1", 1, 2000)}, Failover: &FailoverKey{Leader: "n0", Member: "n2"}, LastLeaderPosition: 1000}, true},
		{"switchover candidate without the checkpoint waits", Election{Self: m("n2", 1, 1000), Failover: &FailoverKey{Leader: "n0", Member: "n2"}, LastLeaderPosition: 1000}, false},
		{"switchover candidate without a known checkpoint waits", Election{Self: m("n2", 1, 1000), Failover: &FailoverKey{Leader: "n0", Member: "n2"}}, false},
		{"switchover not taken in time: normal election", Election{Self: m("n1", 1, 1200), Others: []Member{m("n2", 1, 1000)}, Failover: &FailoverKey{Leader: "n0", Member: "n2"}, LastLeaderPosition: 1000, KeyWaited: 9 * time.Second, KeyGrace: 8 * time.Second}, true},
		{"switchover within grace: others wait", Election{Self: m("n1", 1, 1200), Others: []Member{m("n2", 1, 1000)}, Failover: &FailoverKey{Leader: "n0", Member: "n2"}, LastLeaderPosition: 1000, KeyWaited: 7 * time.Second, KeyGrace: 8 * time.Second}, false},
		{"silent target is awaited", Election{Self: m("n1", 1, 900), Others: []Member{with(m("n2", 1, 900), func(x *Member) { x.Fresh = false })}, Failover: &FailoverKey{Member: "n2"}}, false},
		{"silent target after settling: normal election", Election{Self: m("n1", 1, 900), Others: []Member{with(m("n2", 1, 900), func(x *Member) { x.Fresh = false })}, Failover: &FailoverKey{Member: "n2"}, SettleExpired: true}, true},
		// Synchronous replication.
		{"sync on: the sync standby races despite an async member ahead", Election{Self: m("n2", 1, 100), Others: []Member{m("n3", 1, 900)},
			SyncMode: SyncOn, SyncKey: SyncKey{Leader: "n1", Standbys: []string{"n2"}}}, true},
		{"sync on: an async member ahead does not race", Election{Self: m("n3", 1, 900), Others: []Member{m("n2", 1, 100)},
			SyncMode: SyncOn, SyncKey: SyncKey{Leader: "n1", Standbys: []string{"n2"}}}, false},
		{"sync on: async member alone does not race", Election{Self: m("n3", 1, 900),
			SyncMode: SyncOn, SyncKey: SyncKey{Leader: "n1", Standbys: []string{"n2"}}}, false},
		{"sync on: the sync standby's lag is not checked", Election{Self: m("n2", 1, 100), LastLeaderPosition: 5000, MaxLag: 1000,
			SyncMode: SyncOn, SyncKey: SyncKey{Leader: "n1", Standbys: []string{"n2"}}}, true},
		{"sync on: the old leader may come back", Election{Self: m("n1", 1, 900), Others: []Member{m("n3", 1, 900)},
			SyncMode: SyncOn, SyncKey: SyncKey{Leader: "n1"}}, true},
		{"sync on, empty key: anyone", Election{Self: m("n3", 1, 900), SyncMode: SyncOn}, true},
		{"sync on: failover to an async member needs force", Election{Self: m("n3", 1, 900), Failover: &FailoverKey{Member: "n3"},
			SyncMode: SyncOn, SyncKey: SyncKey{Leader: "n1", Standbys: []string{"n2"}}}, false},
		{"sync on: forced failover to an async member", Election{Self: m("n3", 1, 900), Failover: &FailoverKey{Member: "n3", Force: true},
			SyncMode: SyncOn, SyncKey: SyncKey{Leader: "n1", Standbys: []string{"n2"}}}, true},
		{"quorum: sees a quorum", Election{Self: m("n2", 1, 900), Others: []Member{m("n3", 1, 800)},
			SyncMode: SyncQuorum, SyncKey: SyncKey{Leader: "n1", Standbys: []string{"n2", "n3"}, Quorum: 1}}, true},
		{"quorum: the other voter did not report", Election{Self: m("n2", 1, 900), Others: []Member{with(m("n3", 1, 800), func(x *Member) { x.Fresh = false })}, SettleExpired: true,
			SyncMode: SyncQuorum, SyncKey: SyncKey{Leader: "n1", Standbys: []string{"n2", "n3"}, Quorum: 1}}, false},
		{"quorum: a voter is ahead", Election{Self: m("n2", 1, 800), Others: []Member{m("n3", 1, 900)},
			SyncMode: SyncQuorum, SyncKey: SyncKey{Leader: "n1", Standbys: []string{"n2", "n3"}, Quorum: 1}}, false},
		{"sync off: the key is ignored", Election{Self: m("n3", 1, 900), SyncKey: SyncKey{Leader: "n1", Standbys: []string{"n2"}}}, true},
	}
	for _, tt := range tests {
		if got, why := Elect(tt.e); got != tt.want {
			t.Errorf("%s: Elect = %v (%s), want %v", tt.name, got, why, tt.want)
		}
	}
}
