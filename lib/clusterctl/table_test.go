package clusterctl

import (
	"strings"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/dcs"
)

func TestRenderList(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name string
		cl   *dcs.Cluster
		s    Settings
		want string
	}{
		{"healthy, default port", healthy(), Settings{}, `
+ Cluster: demo (7000000000000000001) ----+----+-----------+
| Member | Host     | Role    | State     | TL | Lag in MB |
+--------+----------+---------+-----------+----+-----------+
| node1  | 10.0.0.1 | Leader  | running   |  2 |           |
| node2  | 10.0.0.2 | Replica | streaming |  2 |         0 |
| node3  | 10.0.0.3 | Replica | streaming |  2 |         0 |
+--------+----------+---------+-----------+----+-----------+
`},
		{"ports, lag, stopped, paused, scheduled, tags, pending restart", func() *dcs.Cluster {
			cl := cluster("node1",
				m("node1", 100*mb, primary, func(d *dcs.MemberData) { d.ConnURL = "postgres://127.0.0.1:5433/postgres" }),
				m("node2", 48*mb, func(d *dcs.MemberData) {
					d.ConnURL = "postgres://127.0.0.1:5434/postgres"
					d.Tags = map[string]any{"nofailover": true}
					d.PendingRestart = true
				}),
				m("node3", 0, stopped, tl(0), func(d *dcs.MemberData) { d.ConnURL = "postgres://127.0.0.1:5435/postgres" }))
			cl.Failover = &dcs.Failover{Leader: "node1", Member: "node2", ScheduledAt: &at}
			cl.Sync = &dcs.SyncKey{Leader: "node1", Standbys: []string{"node2"}}
			return cl
		}(), Settings{Paused: true, SyncMode: config.SyncOn}, `
+ Cluster: demo (7000000000000000001) ---+-----------+----+-----------+-----------------+------------------+
| Member | Host           | Role         | State     | TL | Lag in MB | Pending restart | Tags             |
+--------+----------------+--------------+-----------+----+-----------+-----------------+------------------+
| node1  | 127.0.0.1:5433 | Leader       | running   |  2 |           |                 |                  |
| node2  | 127.0.0.1:5434 | Sync Standby | streaming |  2 |        52 | *               | nofailover: true |
| node3  | 127.0.0.1:5435 | Replica      | stopped   |    |   unknown |                 |                  |
+--------+----------------+--------------+-----------+----+-----------+-----------------+------------------+
 Maintenance mode: on
 Switchover scheduled at: 2030-01-02T03:04:05Z
                    from: node1
                      to: node2
`},
		{"no leader, not initialized, long title", cluster("", m("n1", 1, receiver(""))), Settings{}, `
+ Cluster: demo ----+---------+---------+----+-----------+
| Member | Host     | Role    | State   | TL | Lag in MB |
+--------+----------+---------+---------+----+-----------+
| n1     | 10.0.0.1 | Replica | running |  2 |         0 |
+--------+----------+---------+---------+----+-----------+
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "no leader, not initialized, long title" {
				tt.cl.Initialize = ""
			}
			got := "\n" + RenderList(List("demo", tt.cl, tt.s))
			diffLines(t, got, tt.want)
		})
	}
}

func TestRenderListTitleTruncated(t *testing.T) {
	l := List("a-cluster-with-a-very-long-name", cluster("", m("n1", 1)), Settings{})
	l.Members[0].Host = "h"
	lines := strings.Split(RenderList(l), "\n")
	if len(lines[0]) != len(lines[2]) || !strings.HasPrefix(lines[0], "+ Cluster: a-cluster-with-a-very-long-name (7") ||
		!strings.HasSuffix(lines[0], "+") {
		t.Errorf("title line %q does not fit the frame %q", lines[0], lines[2])
	}
}

// diffLines reports the first line where got and want differ.
func diffLines(t *testing.T, got, want string) {
	t.Helper()
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := range max(len(g), len(w)) {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			t.Errorf("line %d:\n got %q\nwant %q\nwhole output:%s", i, gl, wl, got)
			return
		}
	}
}

func TestListLag(t *testing.T) {
	cl := withOptime(cluster("node1", m("node1", 10*mb, primary), m("node2", 9*mb), m("node3", 0, noPosition)), 12*mb)
	l := List("demo", cl, Settings{})
	if l.Leader != "node1" || l.Members[0].Lag != nil || *l.Members[1].Lag != 3*mb || l.Members[2].Lag != nil {
		t.Errorf("List = %+v", l)
	}
}

func TestRenderHistory(t *testing.T) {
	got := "\n" + RenderHistory(History([]dcs.HistoryEntry{
		{Timeline: 1, LSN: 24399384, Reason: "no recovery target specified"},
		{Timeline: 2, LSN: 71836344, Reason: "switchover", Timestamp: "2030-01-02T03:04:05.123456+00:00", NewLeader: "node2"},
	}))
	want := `
+----+----------+------------------------------+----------------------------------+------------+
| TL | LSN      | Reason                       | Timestamp                        | New Leader |
+----+----------+------------------------------+----------------------------------+------------+
|  1 | 24399384 | no recovery target specified |                                  |            |
|  2 | 71836344 | switchover                   | 2030-01-02T03:04:05.123456+00:00 | node2      |
+----+----------+------------------------------+----------------------------------+------------+
`
	if got != want {
		t.Errorf("got:%s\nwant:%s", got, want)
	}
}

func TestRenderPlan(t *testing.T) {
	cl := cluster("node1", m("node1", 100*mb, primary), m("node2", 100*mb), m("node3", 48*mb))
	got := "\n" + RenderPlan(Assess(cl, settings))
	want := `
+--------+---------+-----------+----+---------+----------------------------------------------------------------------------+
| Member | Role    | State     | TL | Lag     | Eligible                                                                   |
+--------+---------+-----------+----+---------+----------------------------------------------------------------------------+
| node1  | Leader  | running   |  2 |         | -                                                                          |
| node2  | Replica | streaming |  2 | 0 bytes | yes                                                                        |
| node3  | Replica | streaming |  2 |   52 MB | no: lags 52 MB behind the leader, more than maximum_lag_on_failover (1 MB) |
+--------+---------+-----------+----+---------+----------------------------------------------------------------------------+
`
	diffLines(t, got, want)
}
