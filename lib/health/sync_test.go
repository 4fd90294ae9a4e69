package health

import (
	"strings"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/dcs"
)

// syncPaths are the checks that depend on synchronous replication, in the
// order of the codes in TestDecideSync.
var syncPaths = []string{"/sync", "/synchronous", "/read-only-sync", "/read-only-synchronous",
	"/quorum", "/read-only-quorum", "/async", "/asynchronous", "/read-only"}

// inSync sets synchronous_mode and the sync key (leader node1) on s.
func inSync(s *Snapshot, mode config.SyncMode, standbys ...string) *Snapshot {
	s.DCS.SyncMode = mode
	s.DCS.Cluster.Sync = &dcs.SyncKey{Leader: "node1", Standbys: standbys, Quorum: len(standbys)}
	return s
}

// TestDecideSync is Patroni 4's do_GET for the synchronous checks: /sync
// and /read-only-sync answer 200 on a running replica the sync key lists
// while synchronous_mode is on, /quorum and /read-only-quorum the same in
// quorum mode, /read-only-* also on the primary, /async on a running
// replica listed in neither role; pg-ha also wants the etcd view fresh
// before it calls a node synchronous.
func TestDecideSync(t *testing.T) {
	const (
		on     = config.SyncOn
		quorum = config.SyncQuorum
		off    = config.SyncOff
	)
	tests := []struct {
		name  string
		snap  *Snapshot
		query string
		want  []int // per syncPaths
		// sync and quorum are the status fields sync_standby and
		// quorum_standby.
		sync, quorum bool
	}{
		//                                                                      sync syn  rosy rosyn quo  roquo async asyn ro
		{"on, listed replica", inSync(replica(), on, "node2"), "", []int{ok, ok, ok, ok, no, no, no, no, ok}, true, false},
		{"on, listed in other case", inSync(replica(), on, "NODE2"), "", []int{ok, ok, ok, ok, no, no, no, no, ok}, true, false},
		{"on, two listed", inSync(replica(), on, "node3", "node2"), "", []int{ok, ok, ok, ok, no, no, no, no, ok}, true, false},
		{"on, other standby listed", inSync(replica(), on, "node3"), "", []int{no, no, no, no, no, no, ok, ok, ok}, false, false},
		{"on, key lists nobody", inSync(replica(), on), "", []int{no, no, no, no, no, no, ok, ok, ok}, false, false},
		{"on, no sync key", with(replica(), func(s *Snapshot) { s.DCS.SyncMode = on }), "", []int{no, no, no, no, no, no, ok, ok, ok}, false, false},
		{"on, key without leader", with(inSync(replica(), on, "node2"), func(s *Snapshot) { s.DCS.Cluster.Sync.Leader = "" }), "",
			[]int{no, no, no, no, no, no, ok, ok, ok}, false, false},
		{"on, key names an old leader", with(inSync(replica(), on, "node2"), func(s *Snapshot) { s.DCS.Cluster.Sync.Leader = "node3" }), "",
			[]int{ok, ok, ok, ok, no, no, no, no, ok}, true, false},
		{"on, primary", inSync(primary(), on, "node2"), "", []int{no, no, ok, ok, no, ok, no, no, ok}, false, false},
		{"on, primary named as a standby", inSync(primary(), on, "node1"), "", []int{no, no, ok, ok, no, ok, no, no, ok}, false, false},
		{"on, listed, lagging", inSync(laggingReplica(), on, "node2"), "lag=16MB", []int{no, no, no, no, no, no, no, no, no}, true, false},
		{"on, listed, lag within", inSync(laggingReplica(), on, "node2"), "lag=1GB", []int{ok, ok, ok, ok, no, no, no, no, ok}, true, false},
		{"on, unlisted, lagging", inSync(laggingReplica(), on, "node3"), "lag=16MB", []int{no, no, no, no, no, no, no, no, no}, false, false},
		{"on, listed, tag matches", inSync(replica(), on, "node2"), "tag_zone=a", []int{ok, ok, ok, ok, no, no, no, no, ok}, true, false},
		{"on, listed, tag differs", inSync(replica(), on, "node2"), "tag_zone=b", []int{no, no, no, no, no, no, no, no, no}, true, false},
		{"on, primary, tag differs", inSync(primary(), on, "node2"), "tag_zone=b", []int{no, no, no, no, no, no, no, no, no}, false, false},
		{"on, listed, not streaming", inSync(replica(), on, "node2"), "replication_state=in+archive+recovery",
			[]int{no, no, no, no, no, no, no, no, no}, true, false},
		{"on, listed, noloadbalance", with(inSync(replica(), on, "node2"), func(s *Snapshot) { s.NoLoadBalance = true }), "",
			[]int{no, no, no, no, no, no, no, no, no}, true, false},
		{"on, listed, etcd view stale", inSync(etcdDownReplica(), on, "node2"), "", []int{no, no, no, no, no, no, no, no, ok}, true, false},
		{"on, unlisted, etcd view stale", inSync(etcdDownReplica(), on, "node3"), "", []int{no, no, no, no, no, no, ok, ok, ok}, false, false},
		{"on, listed, postgres stopped", with(inSync(replica(), on, "node2"), func(s *Snapshot) {
			s.PG.Failed, s.PG.Err, s.PG.Refused = ago(50*time.Millisecond), "connection refused", true
		}), "", []int{no, no, no, no, no, no, no, no, no}, false, false},
		{"on, listed, standby cluster", with(inSync(replica(), on, "node2"), func(s *Snapshot) { s.DCS.StandbyCluster = true }), "",
			[]int{no, no, no, no, no, no, ok, ok, ok}, false, false},
		{"on, listed, standalone", standalone(inSync(replica(), on, "node2")), "", []int{no, no, no, no, no, no, no, no, ok}, false, false},
		{"on, primary, standalone", standalone(inSync(primary(), on, "node2")), "", []int{no, no, no, no, no, no, no, no, ok}, false, false},

		{"quorum, listed replica", inSync(replica(), quorum, "node2", "node3"), "", []int{no, no, no, no, ok, ok, no, no, ok}, false, true},
		{"quorum, other standby listed", inSync(replica(), quorum, "node3"), "", []int{no, no, no, no, no, no, ok, ok, ok}, false, false},
		{"quorum, primary", inSync(primary(), quorum, "node2"), "", []int{no, no, ok, ok, no, ok, no, no, ok}, false, false},
		{"quorum, listed, etcd view stale", inSync(etcdDownReplica(), quorum, "node2"), "", []int{no, no, no, no, no, no, no, no, ok}, false, true},
		{"quorum, listed, lagging", inSync(laggingReplica(), quorum, "node2"), "lag=16MB", []int{no, no, no, no, no, no, no, no, no}, false, true},

		{"off, listed replica (key left over)", inSync(replica(), off, "node2"), "", []int{no, no, no, no, no, no, ok, ok, ok}, false, false},
		{"off, primary", inSync(primary(), off, "node2"), "", []int{no, no, ok, ok, no, ok, no, no, ok}, false, false},
		{"unset mode, listed replica", inSync(replica(), "", "node2"), "", []int{no, no, no, no, no, no, ok, ok, ok}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := Evaluate(tt.snap, bounds, now)
			if f.SyncStandby != tt.sync || f.QuorumStandby != tt.quorum {
				t.Errorf("sync_standby %v quorum_standby %v, want %v %v", f.SyncStandby, f.QuorumStandby, tt.sync, tt.quorum)
			}
			for i, p := range syncPaths {
				got, body := Decide(tt.snap, bounds, now, ParseRequest(p, tt.query))
				if got != tt.want[i] || body != BodyStatus {
					t.Errorf("%s?%s: %d (body %d), want %d with the status", p, tt.query, got, body, tt.want[i])
				}
			}
			st := decode(t, StatusJSON(tt.snap, &f))
			if st["sync_standby"] != boolOrNil(tt.sync) || st["quorum_standby"] != boolOrNil(tt.quorum) {
				t.Errorf("status sync_standby %v quorum_standby %v, want %v %v", st["sync_standby"], st["quorum_standby"], tt.sync, tt.quorum)
			}
		})
	}
}

// boolOrNil is how a decoded status shows a flag Patroni sets only when
// true.
func boolOrNil(b bool) any {
	if b {
		return true
	}
	return nil
}

// The status carries sync_standby where Patroni 4 puts it: after xlog,
// before timeline.
func TestStatusJSONSyncFieldOrder(t *testing.T) {
	s := inSync(replica(), config.SyncOn, "node2")
	f := Evaluate(s, bounds, now)
	body := string(StatusJSON(s, &f))
	x, y, z := strings.Index(body, `"xlog":`), strings.Index(body, `"sync_standby":true`), strings.Index(body, `"timeline":`)
	if x < 0 || y < x || z < y {
		t.Errorf("status %s: want xlog, sync_standby, timeline in that order", body)
	}
}

// /cluster shows the listed standbys as Patroni 4's cluster_as_json does:
// sync_standby with synchronous_mode on, quorum_standby with quorum,
// replica with off or in a standby cluster; never the leader.
func TestClusterJSONSyncRoles(t *testing.T) {
	tests := []struct {
		mode    config.SyncMode
		standby bool
		key     *dcs.SyncKey
		roles   [3]string
	}{
		{config.SyncOn, false, &dcs.SyncKey{Leader: "node1", Standbys: []string{"node2"}}, [3]string{"leader", "sync_standby", "replica"}},
		{config.SyncOn, false, &dcs.SyncKey{Leader: "node1", Standbys: []string{"Node3", "node1"}}, [3]string{"leader", "replica", "sync_standby"}},
		{config.SyncQuorum, false, &dcs.SyncKey{Leader: "node1", Standbys: []string{"node2", "node3"}, Quorum: 1}, [3]string{"leader", "quorum_standby", "quorum_standby"}},
		{config.SyncOff, false, &dcs.SyncKey{Leader: "node1", Standbys: []string{"node2"}}, [3]string{"leader", "replica", "replica"}},
		{config.SyncOn, true, &dcs.SyncKey{Leader: "node1", Standbys: []string{"node2"}}, [3]string{"standby_leader", "replica", "replica"}},
		{config.SyncOn, false, &dcs.SyncKey{Standbys: []string{"node2"}}, [3]string{"leader", "replica", "replica"}},
		{config.SyncOn, false, nil, [3]string{"leader", "replica", "replica"}},
	}
	for _, tt := range tests {
		cl := cluster("node1", 0x5000060)
		cl.Sync = tt.key
		got := decode(t, ClusterJSON(cl, tt.standby, false, tt.mode))
		var roles [3]string
		for i, m := range got["members"].([]any) {
			roles[i], _ = m.(map[string]any)["role"].(string)
		}
		if roles != tt.roles {
			t.Errorf("mode %s, standby cluster %v, key %+v: roles %v, want %v", tt.mode, tt.standby, tt.key, roles, tt.roles)
		}
	}
}

// Over HTTP, the synchronous checks answer GET, HEAD and OPTIONS with the
// same code, as every check does, GET with the status that carries
// sync_standby or quorum_standby; /metrics reports both flags.
func TestHTTPSync(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		snap         *Snapshot
		field        string // in the GET body; "" for neither
		sync, quorum string // patroni_sync_standby, patroni_quorum_standby
	}{
		{"on, listed", inSync(replica(), config.SyncOn, "node2"), `"sync_standby":true`, "1", "0"},
		{"quorum, listed", inSync(replica(), config.SyncQuorum, "node2"), `"quorum_standby":true`, "0", "1"},
		{"on, not listed", inSync(replica(), config.SyncOn, "node3"), "", "0", "0"},
		{"quorum, primary", inSync(primary(), config.SyncQuorum, "node2"), "", "0", "0"},
	}
	for _, tt := range tests {
		url := serve(t, newTestService(t, tt.snap, nil))
		for _, p := range syncPaths {
			want, _ := Decide(tt.snap, bounds, now, ParseRequest(p, ""))
			get := do(t, "GET", url+p)
			if get.code != want || get.header.Get("Content-Type") != "application/json" {
				t.Errorf("%s: GET %s: %d %q, want %d with JSON", tt.name, p, get.code, get.header.Get("Content-Type"), want)
			}
			if has := strings.Contains(get.body, "_standby\":true"); has != (tt.field != "") || (tt.field != "" && !strings.Contains(get.body, tt.field)) {
				t.Errorf("%s: GET %s: body %s, want %q", tt.name, p, get.body, tt.field)
			}
			if head := do(t, "HEAD", url+p); head.code != want || head.body != "" {
				t.Errorf("%s: HEAD %s: %d %q, want %d and no body", tt.name, p, head.code, head.body, want)
			}
			if opt := do(t, "OPTIONS", url+p); opt.code != want || opt.body != "" {
				t.Errorf("%s: OPTIONS %s: %d %q, want %d and no body", tt.name, p, opt.code, opt.body, want)
			}
		}
		m := do(t, "GET", url+"/metrics").body
		for _, want := range []string{`patroni_sync_standby{scope="demo"} ` + tt.sync, `patroni_quorum_standby{scope="demo"} ` + tt.quorum} {
			if !strings.Contains(m, want+"\n") {
				t.Errorf("%s: /metrics lacks %q", tt.name, want)
			}
		}
	}
}
