package decide

import (
	"testing"
	"time"
)

func TestWithoutLeader(t *testing.T) {
	m := func(name string, pos int64) Member {
		return Member{Name: name, Running: true, Timeline: 1, Position: pos, Priority: 1, Fresh: true}
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		e    Election
		want KeyVerdict
	}{
		{"candidate healthy", Election{Self: m("n1", 100), Others: []Member{m("n2", 100)}, Failover: &FailoverKey{Member: "n2"}}, KeyHonour},
		{"candidate is self", Election{Self: m("n2", 100), Failover: &FailoverKey{Member: "n2"}}, KeyHonour},
		{"scheduled, not due", Election{Self: m("n1", 100), Others: []Member{m("n2", 100)}, Failover: &FailoverKey{Leader: "n0", Member: "n2", ScheduledAt: at}, Now: at.Add(-time.Second), Late: 8 * time.Second}, KeyStale},
		{"scheduled, due: the leader handed over", Election{Self: m("n1", 100), Others: []Member{m("n2", 100)}, Failover: &FailoverKey{Leader: "n0", Member: "n2", ScheduledAt: at}, Now: at.Add(time.Second), Late: 8 * time.Second}, KeyHonour},
		{"scheduled, long overdue", Election{Self: m("n1", 100), Others: []Member{m("n2", 100)}, Failover: &FailoverKey{Leader: "n0", Member: "n2", ScheduledAt: at}, Now: at.Add(time.Minute), Late: 8 * time.Second}, KeyStale},
		{"no candidate", Election{Self: m("n1", 100), Failover: &FailoverKey{Leader: "n0"}}, KeyStale},
		{"candidate has no member key", Election{Self: m("n1", 100), Failover: &FailoverKey{Member: "n3"}}, KeyStale},
		{"candidate not running", Election{Self: m("n1", 100), Others: []Member{{Name: "n2", Priority: 1, Fresh: true}}, Failover: &FailoverKey{Member: "n2"}}, KeyStale},
		{"candidate lags", Election{Self: m("n1", 5000), Others: []Member{m("n2", 100)}, Failover: &FailoverKey{Member: "n2"}, LastLeaderPosition: 5000, MaxLag: 1000}, KeyStale},
		{"forced candidate lags", Election{Self: m("n1", 5000), Others: []Member{m("n2", 100)}, Failover: &FailoverKey{Member: "n2", Force: true}, LastLeaderPosition: 5000, MaxLag: 1000}, KeyHonour},
		{"forced candidate tagged nofailover", Election{Self: m("n1", 5000), Others: []Member{{Name: "n2", Running: true, Priority: 1, Fresh: true, NoFailover: true}}, Failover: &FailoverKey{Member: "n2", Force: true}}, KeyStale},
		{"candidate silent", Election{Self: m("n1", 100), Others: []Member{{Name: "n2", Running: true, Priority: 1}}, Failover: &FailoverKey{Member: "n2"}}, KeyWait},
		{"candidate silent after settling", Election{Self: m("n1", 100), Others: []Member{{Name: "n2", Running: true, Priority: 1}}, Failover: &FailoverKey{Member: "n2"}, SettleExpired: true}, KeyStale},
		{"grace over", Election{Self: m("n1", 100), Others: []Member{m("n2", 100)}, Failover: &FailoverKey{Member: "n2"}, KeyWaited: 9 * time.Second, KeyGrace: 8 * time.Second}, KeyStale},
	}
	for _, tt := range tests {
		if got, why := WithoutLeader(tt.e); got != tt.want {
			t.Errorf("%s: WithoutLeader = %v (%s), want %v", tt.name, got, why, tt.want)
		}
	}
}

func TestAsLeader(t *testing.T) {
	at := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	late := 1500 * time.Millisecond
	tests := []struct {
		name string
		k    FailoverKey
		now  time.Time
		want LeaderAction
	}{
		{"switchover now", FailoverKey{Leader: "n1", Member: "n2"}, at, LeaderHandOver},
		{"failover key while leading: hand over as Patroni does", FailoverKey{Member: "n2"}, at, LeaderHandOver},
		{"candidate is self", FailoverKey{Leader: "n0", Member: "n1"}, at, LeaderDone},
		{"names another leader", FailoverKey{Leader: "n0", Member: "n2"}, at, LeaderDrop},
		{"names another leader, scheduled", FailoverKey{Leader: "n0", Member: "n2", ScheduledAt: at.Add(time.Hour)}, at, LeaderDrop},
		{"no candidate", FailoverKey{Leader: "n1"}, at, LeaderDrop},
		{"scheduled, not due", FailoverKey{Leader: "n1", Member: "n2", ScheduledAt: at.Add(time.Second)}, at, LeaderKeep},
		{"scheduled, due", FailoverKey{Leader: "n1", Member: "n2", ScheduledAt: at}, at, LeaderHandOver},
		{"scheduled, just late", FailoverKey{Leader: "n1", Member: "n2", ScheduledAt: at}, at.Add(1400 * time.Millisecond), LeaderHandOver},
		{"scheduled, long past", FailoverKey{Leader: "n1", Member: "n2", ScheduledAt: at}, at.Add(2 * time.Second), LeaderDrop},
	}
	for _, tt := range tests {
		if got, why := AsLeader(tt.k, "n1", tt.now, late); got != tt.want {
			t.Errorf("%s: AsLeader = %v (%s), want %v", tt.name, got, why, tt.want)
		}
	}
}

func TestHasCheckpoint(t *testing.T) {
	for _, tt := range []struct {
		pos, cp int64
		want    bool
	}{{1100, 1000, true}, {1000, 1000, false}, {900, 1000, false}, {1000, 0, false}} {
		if got := HasCheckpoint(tt.pos, tt.cp); got != tt.want {
			t.Errorf("HasCheckpoint(%d, %d) = %v, want %v", tt.pos, tt.cp, got, tt.want)
		}
	}
}
