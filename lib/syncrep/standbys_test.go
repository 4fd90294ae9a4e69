package syncrep

import (
	"reflect"
	"testing"
)

func names(list []Standby) []string {
	var out []string
	for _, s := range list {
		out = append(out, s.Name)
	}
	return out
}

func running(names ...string) []Member {
	var out []Member
	for _, n := range names {
		out = append(out, Member{Name: n, Running: true, SyncPriority: 1})
	}
	return out
}

func TestStandbys(t *testing.T) {
	flush := func(app, state string, lsn uint64) Replication {
		return Replication{ApplicationName: app, State: "streaming", SyncState: state, WriteLSN: lsn, FlushLSN: lsn, ReplayLSN: lsn}
	}
	tests := []struct {
		name    string
		o       Observation
		want    []string
		wantMax uint64
	}{
		{"a synchronous standby a little behind stays first",
			Observation{Self: "n1", Members: running("n1", "n2", "n3", "n4"),
				Replication: []Replication{flush("n3", "async", 2), flush("n2", "sync", 1), flush("n4", "async", 2)}},
			[]string{"n2", "n3", "n4"}, 2},
		{"potential before async; remote_write ranks by write LSN",
			Observation{Self: "n1", Members: running("n1", "n2", "n3"), SynchronousCommit: "remote_write",
				Replication: []Replication{{ApplicationName: "n3", State: "streaming", SyncState: "async", WriteLSN: 9, FlushLSN: 1},
					{ApplicationName: "n2", State: "streaming", SyncState: "potential", WriteLSN: 5, FlushLSN: 8}}},
			[]string{"n2", "n3"}, 9},
		{"all asynchronous: most advanced first by replay LSN under remote_apply; names match case-insensitively",
			Observation{Self: "n1", Members: running("n1", "n2", "n3"), SynchronousCommit: "remote_apply",
				Replication: []Replication{{ApplicationName: "N2", State: "streaming", SyncState: "async", ReplayLSN: 2, FlushLSN: 9},
					{ApplicationName: "N3", State: "streaming", SyncState: "async", ReplayLSN: 3, FlushLSN: 1}}},
			[]string{"N3", "N2"}, 3},
		{"quorum state ranks above potential and async",
			Observation{Self: "n1", Members: running("n2", "n3", "n4"),
				Replication: []Replication{flush("n2", "async", 9), flush("n3", "potential", 9), flush("n4", "quorum", 1)}},
			[]string{"n4", "n3", "n2"}, 9},
		{"unknown, self, stopped, nosync, not yet reporting and not streaming are left out",
			Observation{Self: "n1", PrimaryLSN: 42,
				Members: append(running("n1", "n2"), Member{Name: "n3", SyncPriority: 1},
					Member{Name: "n4", Running: true, NoSync: true}, Member{Name: "n5", Running: true, SyncPriority: 1}),
				Replication: []Replication{flush("missing", "sync", 5), flush("n1", "sync", 5), flush("n3", "sync", 5),
					flush("n4", "sync", 5), {ApplicationName: "n5", State: "startup"}, flush("n2", "async", 1),
					{ApplicationName: "n5", State: "catchup", SyncState: "async", WriteLSN: 7, FlushLSN: 7, ReplayLSN: 7}}},
			[]string{"n2"}, 42},
		{"higher sync_priority first, even when behind and asynchronous",
			Observation{Self: "n1", Members: append(running("n2"), Member{Name: "n3", Running: true, SyncPriority: 5}),
				Replication: []Replication{flush("n2", "sync", 9), flush("n3", "async", 1)}},
			[]string{"n3", "n2"}, 9},
		{"equal standbys keep pg_stat_replication order",
			Observation{Self: "n1", Members: running("a", "b", "c"),
				Replication: []Replication{flush("c", "async", 1), flush("a", "async", 1), flush("b", "async", 1)}},
			[]string{"c", "a", "b"}, 1},
		{"a member that should cascade from a streaming standby is not a candidate",
			Observation{Self: "n1", Members: append(running("n2", "n3"), Member{Name: "n4", Running: true, SyncPriority: 1, ReplicateFrom: "n2"}),
				Replication: []Replication{flush("n2", "async", 1), flush("n4", "sync", 2), flush("n3", "async", 1)}},
			[]string{"n2", "n3"}, 1},
		{"replicatefrom a member not streaming from here: stays a candidate",
			Observation{Self: "n1", Members: append(running("n2", "n3"), Member{Name: "n4", Running: true, SyncPriority: 1, ReplicateFrom: "n3"}),
				Replication: []Replication{flush("n2", "async", 1), flush("n4", "sync", 2)}},
			[]string{"n4", "n2"}, 2},
		{"replicatefrom loop ends",
			Observation{Self: "n1", Members: []Member{{Name: "a", Running: true, ReplicateFrom: "b"}, {Name: "b", Running: true, ReplicateFrom: "a"}},
				Replication: []Replication{flush("a", "async", 1), flush("b", "async", 2)}},
			[]string{"b", "a"}, 2},
	}
	for _, tt := range tests {
		got, maxLSN := Standbys(tt.o)
		if !reflect.DeepEqual(names(got), tt.want) || maxLSN != tt.wantMax {
			t.Errorf("%s: got %v max %d, want %v max %d", tt.name, names(got), maxLSN, tt.want, tt.wantMax)
		}
	}
}

func TestSyncTags(t *testing.T) {
	tests := []struct {
		tags     map[string]any
		noSync   bool
		priority int
	}{
		{nil, false, 1},
		{map[string]any{"nosync": true}, true, 0},
		{map[string]any{"nosync": false}, false, 1},
		{map[string]any{"nosync": "true"}, true, 0},
		{map[string]any{"sync_priority": 0.0}, true, 0},
		{map[string]any{"sync_priority": -1}, true, -1},
		{map[string]any{"sync_priority": "3"}, false, 3},
		{map[string]any{"sync_priority": 2.0, "nosync": true}, true, 0},
		{map[string]any{"sync_priority": 0.0, "nosync": false}, false, 0},
		{map[string]any{"sync_priority": "x"}, false, 1},
	}
	for _, tt := range tests {
		ns, p := SyncTags(tt.tags)
		if ns != tt.noSync || p != tt.priority {
			t.Errorf("SyncTags(%v) = %v, %d; want %v, %d", tt.tags, ns, p, tt.noSync, tt.priority)
		}
	}
}
