package clusterctl

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/dcs"
)

// TestListSyncRoles is patronictl 4's role column for every mode and sync
// key: a listed standby is "Sync Standby" with synchronous_mode on,
// "Quorum Standby" with quorum, "Replica" with off or in a standby
// cluster; the leader stays "Leader" even when listed.
func TestListSyncRoles(t *testing.T) {
	on, quorum := config.SyncOn, config.SyncQuorum
	key := func(leader string, standbys ...string) *dcs.SyncKey {
		return &dcs.SyncKey{Leader: leader, Standbys: standbys, Quorum: len(standbys)}
	}
	tests := []struct {
		name  string
		s     Settings
		key   *dcs.SyncKey
		roles [3]string
	}{
		{"on, one listed", Settings{SyncMode: on}, key("node1", "node2"), [3]string{"Leader", "Sync Standby", "Replica"}},
		{"on, two listed", Settings{SyncMode: on}, key("node1", "node3", "node2"), [3]string{"Leader", "Sync Standby", "Sync Standby"}},
		{"on, other case", Settings{SyncMode: on}, key("node1", "NODE3"), [3]string{"Leader", "Replica", "Sync Standby"}},
		{"on, leader listed too", Settings{SyncMode: on}, key("node1", "node1", "node2"), [3]string{"Leader", "Sync Standby", "Replica"}},
		{"on, key of an old leader", Settings{SyncMode: on}, key("node9", "node2"), [3]string{"Leader", "Sync Standby", "Replica"}},
		{"on, key without leader", Settings{SyncMode: on}, key("", "node2"), [3]string{"Leader", "Replica", "Replica"}},
		{"on, no key", Settings{SyncMode: on}, nil, [3]string{"Leader", "Replica", "Replica"}},
		{"quorum", Settings{SyncMode: quorum}, key("node1", "node2", "node3"), [3]string{"Leader", "Quorum Standby", "Quorum Standby"}},
		{"off, key left over", Settings{SyncMode: config.SyncOff}, key("node1", "node2"), [3]string{"Leader", "Replica", "Replica"}},
		{"unset", Settings{}, key("node1", "node2"), [3]string{"Leader", "Replica", "Replica"}},
		{"on, standby cluster", Settings{SyncMode: on, StandbyCluster: true}, key("node1", "node2"), [3]string{"Standby Leader", "Replica", "Replica"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl := healthy()
			cl.Sync = tt.key
			l := List("demo", cl, tt.s)
			var roles [3]string
			for i, m := range l.Members {
				roles[i] = roleTitle(m.Role)
			}
			if roles != tt.roles {
				t.Errorf("roles %v, want %v", roles, tt.roles)
			}
			table := RenderList(l)
			for i, r := range tt.roles {
				if !strings.Contains(table, "| node"+string(rune('1'+i))+"  | 10.0.0."+string(rune('1'+i))+" | "+r+" ") {
					t.Errorf("table lacks node%d as %s:\n%s", i+1, r, table)
				}
			}
		})
	}
}

// TestListNoSyncStandby: with synchronous replication asked for, a leader
// in place and no standby in the sync key, the listing says so on one
// line, strict or not, and in --json; otherwise it says nothing.
func TestListNoSyncStandby(t *testing.T) {
	on, quorum := config.SyncOn, config.SyncQuorum
	tests := []struct {
		name   string
		s      Settings
		leader string
		key    *dcs.SyncKey
		line   string // "" for none
	}{
		{"on, key lists nobody", Settings{SyncMode: on}, "node1", &dcs.SyncKey{Leader: "node1"},
			" Synchronous mode: on, no synchronous standby: replicating asynchronously"},
		{"on, no key", Settings{SyncMode: on}, "node1", nil,
			" Synchronous mode: on, no synchronous standby: replicating asynchronously"},
		{"on, key without leader", Settings{SyncMode: on}, "node1", &dcs.SyncKey{Standbys: []string{"node2"}},
			" Synchronous mode: on, no synchronous standby: replicating asynchronously"},
		{"on, strict", Settings{SyncMode: on, SyncStrict: true}, "node1", &dcs.SyncKey{Leader: "node1"},
			" Synchronous mode: on (strict), no synchronous standby: commits wait until one is listed"},
		{"quorum", Settings{SyncMode: quorum}, "node1", &dcs.SyncKey{Leader: "node1"},
			" Synchronous mode: quorum, no quorum standby: replicating asynchronously"},
		{"on, a standby listed", Settings{SyncMode: on}, "node1", &dcs.SyncKey{Leader: "node1", Standbys: []string{"node2"}}, ""},
		{"off", Settings{}, "node1", nil, ""},
		{"on, no leader", Settings{SyncMode: on}, "", nil, ""},
		{"on, standby cluster", Settings{SyncMode: on, StandbyCluster: true}, "node1", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl := healthy()
			if tt.leader == "" {
				cl.Leader = nil
			}
			cl.Sync = tt.key
			l := List("demo", cl, tt.s)
			out := RenderList(l)
			got := ""
			for _, line := range strings.Split(out, "\n") {
				if strings.HasPrefix(line, " Synchronous mode") {
					if got != "" {
						t.Errorf("two synchronous mode lines:\n%s", out)
					}
					got = line
				}
			}
			if got != tt.line {
				t.Errorf("line %q, want %q; output:\n%s", got, tt.line, out)
			}
			b, err := json.Marshal(l)
			if err != nil {
				t.Fatal(err)
			}
			if has := strings.Contains(string(b), `"no_sync_standby":true`); has != (tt.line != "") {
				t.Errorf("json %s: no_sync_standby %v, want %v", b, has, tt.line != "")
			}
		})
	}
}

// The paused and scheduled lines keep their places around the new one.
func TestRenderListNoSyncStandbyOrder(t *testing.T) {
	cl := healthy()
	got := RenderList(List("demo", cl, Settings{Paused: true, SyncMode: config.SyncOn}))
	i, j := strings.Index(got, " Maintenance mode: on\n"), strings.Index(got, " Synchronous mode: on,")
	if i < 0 || j < i || !strings.HasSuffix(got, "replicating asynchronously\n") {
		t.Errorf("output:\n%s", got)
	}
}

// TestSettingsOfSync layers synchronous_mode and its strict flag as the
// other dynamic settings: bootstrap.dcs, the YAML's top level, then the
// config key; standby_cluster is the config key's alone once it exists.
func TestSettingsOfSync(t *testing.T) {
	yaml := func(extra string) *config.Config {
		cfg, _, err := config.Parse([]byte("scope: demo\nname: node1\netcd3:\n  hosts: [127.0.0.1:2379]\n"+extra), []string{})
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	tests := []struct {
		name    string
		cfg     *config.Config
		key     string
		mode    config.SyncMode
		strict  bool
		standby bool
	}{
		{"nothing", yaml(""), "", config.SyncOff, false, false},
		{"bootstrap only", yaml("bootstrap:\n  dcs:\n    synchronous_mode: true\n"), "", config.SyncOn, false, false},
		{"key wins", yaml("bootstrap:\n  dcs:\n    synchronous_mode: true\n"), `{"synchronous_mode":"quorum","synchronous_mode_strict":"on"}`, config.SyncQuorum, true, false},
		{"key off", yaml("synchronous_mode: true\n"), `{"synchronous_mode":false}`, config.SyncOff, false, false},
		{"key silent", yaml("synchronous_mode: quorum\n"), `{"ttl":8}`, config.SyncQuorum, false, false},
		{"bad field skipped", yaml(""), `{"synchronous_mode":"sometimes","synchronous_mode_strict":true}`, config.SyncOff, true, false},
		{"standby cluster", yaml(""), `{"synchronous_mode":true,"standby_cluster":{"host":"10.1.0.1"}}`, config.SyncOn, false, true},
		{"empty standby cluster", yaml(""), `{"synchronous_mode":true,"standby_cluster":{"host":""}}`, config.SyncOn, false, false},
		{"standby cluster from bootstrap", yaml("bootstrap:\n  dcs:\n    standby_cluster: {host: 10.1.0.1}\n"), "", config.SyncOff, false, true},
		{"standby cluster removed from the key", yaml("bootstrap:\n  dcs:\n    standby_cluster: {host: 10.1.0.1}\n"), `{"ttl":8}`, config.SyncOff, false, false},
	}
	for _, tt := range tests {
		var cl dcs.Cluster
		if tt.key != "" {
			cl.Config = []byte(tt.key)
		}
		s := SettingsOf(tt.cfg, &cl)
		if s.SyncMode != tt.mode || s.SyncStrict != tt.strict || s.StandbyCluster != tt.standby {
			t.Errorf("%s: mode %q strict %v standby %v, want %q %v %v", tt.name, s.SyncMode, s.SyncStrict, s.StandbyCluster, tt.mode, tt.strict, tt.standby)
		}
	}
}
