package health

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/state"
)

// cloning is a node whose pg-supervise re-clones it from the leader.
func cloning(p *state.Progress) *Snapshot {
	return with(replica(), func(s *Snapshot) {
		s.PG.Failed, s.PG.Err, s.PG.Refused = ago(50*time.Millisecond), "connect: connection refused", true
		s.Supervise.State, s.Supervise.Role, s.Supervise.Progress = state.Cloning, "", p
	})
}

// TestStatusWhileCloning: /patroni says Patroni's "creating replica" and
// adds the clone's progress (pg-ha's field) from supervise.json, or from
// bootstrap.json while a pg-bootstrap runs; a node that is not cloning has
// no progress field.
func TestStatusWhileCloning(t *testing.T) {
	p := &state.Progress{Method: "basebackup", Done: 43 << 20, Total: 100 << 20}
	tests := []struct {
		name  string
		snap  *Snapshot
		state string
		prog  *state.Progress
	}{
		{"pg-supervise re-clones", cloning(p), "creating replica", p},
		{"before the first report", cloning(nil), "creating replica", nil},
		{"pg-bootstrap clones, no pg-supervise", with(base("node3"), func(s *Snapshot) {
			s.PG.Failed, s.PG.Refused = ago(time.Second), true
			s.Bootstrap = &state.Bootstrap{State: state.CreatingReplica, PID: 1, Progress: p}
		}), "creating replica", p},
		{"pg-bootstrap clones, pg-supervise stopped", with(stoppedPG(), func(s *Snapshot) {
			s.Bootstrap = &state.Bootstrap{State: state.CreatingReplica, PID: 1, Progress: p}
		}), "creating replica", p},
		{"pg-bootstrap restores", with(base("node3"), func(s *Snapshot) {
			s.Bootstrap = &state.Bootstrap{State: state.CustomBootstrap, PID: 1, Progress: p}
		}), "running custom bootstrap script", p},
		{"pg-bootstrap waits for a leader", with(stoppedPG(), func(s *Snapshot) {
			s.Bootstrap = &state.Bootstrap{State: state.Bootstrapping, PID: 1}
		}), "stopped", nil},
		{"running replica", replica(), "running", nil},
		{"stopped", stoppedPG(), "stopped", nil},
	}
	for _, tt := range tests {
		f := Evaluate(tt.snap, bounds, now)
		if f.State != tt.state || !reflect.DeepEqual(f.Progress, tt.prog) {
			t.Errorf("%s: state %q progress %+v, want %q %+v", tt.name, f.State, f.Progress, tt.state, tt.prog)
		}
		got := decode(t, StatusJSON(tt.snap, &f))
		if got["state"] != tt.state {
			t.Errorf("%s: /patroni state %v", tt.name, got["state"])
		}
		want := map[string]any(nil)
		if tt.prog != nil {
			want = map[string]any{"method": "basebackup", "done": float64(43 << 20), "total": float64(100 << 20)}
		}
		if g, _ := got["progress"].(map[string]any); !reflect.DeepEqual(g, want) {
			t.Errorf("%s: /patroni progress %v, want %v", tt.name, got["progress"], want)
		}
	}
}

// TestClusterJSONProgress: /cluster shows the progress a member creating a
// replica publishes in its key.
func TestClusterJSONProgress(t *testing.T) {
	cl := cluster("node1", 0x5000060)
	d := &cl.Members[2].Data
	d.State = state.CreatingReplica
	d.Extra = map[string]json.RawMessage{state.ProgressField: json.RawMessage(`{"method":"basebackup","done":45,"total":100}`)}
	got := decode(t, ClusterJSON(cl, false, false, config.SyncOff))
	members := got["members"].([]any)
	m3 := members[2].(map[string]any)
	if m3["state"] != "creating replica" || !reflect.DeepEqual(m3["progress"], map[string]any{"method": "basebackup", "done": 45.0, "total": 100.0}) {
		t.Errorf("member creating a replica: %v", m3)
	}
	if _, ok := members[1].(map[string]any)["progress"]; ok {
		t.Errorf("running member with progress: %v", members[1])
	}
	// A stale field on a member that no longer clones is not shown.
	d.State = "running"
	m3 = decode(t, ClusterJSON(cl, false, false, config.SyncOff))["members"].([]any)[2].(map[string]any)
	if _, ok := m3["progress"]; ok {
		t.Errorf("progress shown for a running member: %v", m3)
	}
}
