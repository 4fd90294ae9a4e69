package clusterctl

import (
	"strings"
	"testing"

	"github.com/pg-ha/pg-ha/lib/dcs"
)

func TestAssess(t *testing.T) {
	tests := []struct {
		name     string
		cl       *dcs.Cluster
		member   string
		eligible bool
		why      string // substring of Why(), "" when eligible
		lag      int64  // -1: no lag reported
	}{
		{"streaming replica", healthy(), "node2", true, "", 0},
		{"slightly behind", healthy(), "node3", true, "", 4096},
		{"the leader", healthy(), "node1", false, "is the leader", -1},
		{"stopped", cluster("node1", m("node1", 100*mb, primary), m("node2", 0, stopped)), "node2", false,
			"PostgreSQL is not running (state stopped)", -1},
		{"running without a position", cluster("node1", m("node1", 100*mb, primary), m("node2", 0, noPosition)), "node2", false,
			"PostgreSQL is not running (no WAL position published)", -1},
		{"starting", cluster("node1", m("node1", 100*mb, primary), m("node2", 0, stopped, withState("starting"))), "node2", false,
			"(state starting)", -1},
		{"nofailover", cluster("node1", m("node1", 100*mb, primary), m("node2", 100*mb, tags(map[string]any{"nofailover": true}))),
			"node2", false, "tagged nofailover", 0},
		{"failover_priority 0", cluster("node1", m("node1", 100*mb, primary), m("node2", 100*mb, tags(map[string]any{"failover_priority": 0}))),
			"node2", false, "failover_priority is 0", 0},
		{"lagging", cluster("node1", m("node1", 100*mb, primary), m("node2", 48*mb)), "node2", false,
			"lags 52 MB behind the leader, more than maximum_lag_on_failover (1 MB)", 52 * mb},
		{"lag from status.optime when ahead of the member key", withOptime(cluster("node1", m("node1", 10*mb, primary), m("node2", 10*mb)), 13*mb),
			"node2", false, "lags 3 MB behind the leader", 3 * mb},
		{"lag within bound", cluster("node1", m("node1", 100*mb, primary), m("node2", 99*mb)), "node2", true, "", mb},
		{"not streaming", cluster("node1", m("node1", 100*mb, primary), m("node2", 100*mb, receiver("waiting"))), "node2", false,
			"not streaming from the leader (WAL receiver: waiting)", 0},
		{"no WAL receiver", cluster("node1", m("node1", 100*mb, primary), m("node2", 100*mb, receiver(""))), "node2", false,
			"WAL receiver: none", 0},
		{"other timeline", cluster("node1", m("node1", 100*mb, primary, tl(3)), m("node2", 100*mb)), "node2", false,
			"on timeline 2, the leader on 3", 0},
		{"several reasons", cluster("node1", m("node1", 100*mb, primary, tl(3)), m("node2", 100*mb, receiver("stopping"), tags(map[string]any{"nofailover": "true"}))),
			"node2", false, "tagged nofailover; not streaming from the leader (WAL receiver: stopping); on timeline 2, the leader on 3", 0},
		{"no leader: streaming not needed", withOptime(cluster("", m("node2", 100*mb, receiver("")), m("node3", 90*mb)), 100*mb), "node2", true, "", 0},
		{"no leader: lag against status.optime", withOptime(cluster("", m("node2", 100*mb, receiver("")), m("node3", 90*mb)), 100*mb), "node3", false,
			"lags 10 MB behind the last leader's last known position", 10 * mb},
		{"no leader, no optime: lag unknown", cluster("", m("node2", 100*mb)), "node2", true, "", -1},
		{"member ahead of the leader's published position", cluster("node1", m("node1", 10*mb, primary), m("node2", 11*mb)), "node2", true, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := Find(Assess(tt.cl, settings), tt.member)
			if a == nil {
				t.Fatalf("%s not assessed", tt.member)
			}
			if a.Eligible != tt.eligible || !strings.Contains(a.Why(), tt.why) || (tt.why == "" && a.Why() != "") {
				t.Errorf("eligible %v, why %q; want %v, %q", a.Eligible, a.Why(), tt.eligible, tt.why)
			}
			switch {
			case tt.lag < 0 && a.Lag != nil:
				t.Errorf("lag %d, want none", *a.Lag)
			case tt.lag >= 0 && (a.Lag == nil || *a.Lag != tt.lag):
				t.Errorf("lag %v, want %d", a.Lag, tt.lag)
			}
		})
	}
}

func TestBest(t *testing.T) {
	nf := tags(map[string]any{"nofailover": true})
	prio := func(p int) func(*dcs.MemberData) { return tags(map[string]any{"failover_priority": p}) }
	tests := []struct {
		name string
		cl   *dcs.Cluster
		want string
	}{
		{"most WAL", cluster("node1", m("node1", 100*mb, primary), m("node2", 100*mb-10), m("node3", 100*mb)), "node3"},
		{"tie: smaller name", healthyTie(), "node2"},
		{"tie: higher failover_priority", cluster("node1", m("node1", 100*mb, primary), m("node2", 100*mb), m("node3", 100*mb, prio(5))), "node3"},
		{"ineligible members are skipped", cluster("node1", m("node1", 100*mb, primary), m("node2", 90*mb), m("node3", 100*mb, nf)), ""},
		{"the one eligible member", cluster("node1", m("node1", 100*mb, primary), m("node2", 100*mb, stopped), m("node3", 100*mb)), "node3"},
		{"later timeline first (no leader)", cluster("", m("node2", 100*mb, tl(3)), m("node3", 200*mb)), "node2"},
		{"nobody", cluster("node1", m("node1", 100*mb, primary)), ""},
	}
	for _, tt := range tests {
		if got := Best(Assess(tt.cl, settings)); got != tt.want {
			t.Errorf("%s: Best = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func healthyTie() *dcs.Cluster {
	return cluster("node1", m("node1", 100*mb, primary), m("node2", 100*mb), m("node3", 100*mb))
}

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0 bytes", 512: "512 bytes", 1024: "1.0 kB", 65536: "64.0 kB", mb: "1 MB", 3 * mb / 2: "1.5 MB",
		52 * mb: "52 MB", 52*mb + 300*1024: "52 MB", 10*mb + mb/2: "11 MB", 2 << 30: "2.0 GB", -2048: "-2.0 kB",
	} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestSettingsOfNilConfig(t *testing.T) {
	// A member key lists pause; the settings come from the config key.
	cl := healthy()
	cl.Config = []byte(`{"maximum_lag_on_failover": 2048, "pause": true}`)
	if s := SettingsOf(testConfig(t), cl); s.MaxLag != 2048 || !s.Paused {
		t.Errorf("SettingsOf = %+v, want MaxLag 2048, Paused", s)
	}
	cl.Config = []byte(`{"ttl": "not a number"}`)
	if s := SettingsOf(testConfig(t), cl); s.MaxLag != 1<<20 || s.Paused {
		t.Errorf("SettingsOf with a bad config key = %+v, want the YAML's", s)
	}
}
