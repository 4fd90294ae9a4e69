package callback

import (
	"strings"
	"testing"
)

// TestTracker replays sequences of transitions and compares the callbacks
// fired, in order, with what Patroni runs for the same story.
func TestTracker(t *testing.T) {
	type step func(*Tracker) Fire
	started := func(tr *Tracker) Fire { tr.Started(); return Fire{} }
	answered := func(r Role) step { return func(tr *Tracker) Fire { return tr.Answered(r, false) } }
	held := func(r Role) step { return func(tr *Tracker) Fire { return tr.Answered(r, true) } }
	promoted := func(tr *Tracker) Fire { return tr.Promoted() }
	stopped := func(k StopKind, r Role) step { return func(tr *Tracker) Fire { return tr.Stopped(k, r) } }
	crashed := func(r Role) step { return func(tr *Tracker) Fire { tr.Crashed(r); return Fire{} } }
	reloaded := func(r Role) step { return func(tr *Tracker) Fire { return tr.Reloaded(r) } }
	tests := []struct {
		name  string
		steps []step
		want  string
	}{
		{"a replica starts", []step{started, answered(Replica), answered(Replica)}, "on_start replica"},
		{"no callback before the server answers", []step{started}, ""},
		{"started in order to lead", []step{started, held(Replica), held(Replica), promoted, answered(Primary)}, "on_start primary"},
		{"a replica promoted after it answered", []step{started, answered(Replica), promoted}, "on_start replica, on_role_change primary"},
		{"a promotion refused: the held start fires as a replica", []step{started, held(Replica), answered(Replica)}, "on_start replica"},
		{"switchover, old primary", []step{started, answered(Primary), stopped(StopDemote, Primary), started, answered(Replica)},
			"on_start primary, on_stop demoted, on_role_change replica"},
		{"fenced primary rejoins", []step{started, answered(Primary), stopped(StopKilled, Primary), started, answered(Replica)},
			"on_start primary, on_stop primary, on_role_change replica"},
		{"replica stopped for pg_rewind", []step{started, answered(Replica), stopped(StopDemote, Replica), started, answered(Replica)},
			"on_start replica, on_stop replica, on_start replica"},
		{"restart on request", []step{started, answered(Primary), stopped(StopRestart, Primary), started, answered(Primary)},
			"on_start primary, on_restart primary"},
		{"restart that crashed once on the way up", []step{started, answered(Replica), stopped(StopRestart, Replica), started, crashed(Replica), started, answered(Replica)},
			"on_start replica, on_restart replica"},
		{"crash and restart in place", []step{started, answered(Primary), crashed(Primary), started, answered(Primary)}, "on_start primary, on_start primary"},
		{"crashed primary comes back as a replica", []step{started, answered(Primary), crashed(Primary), started, answered(Replica)},
			"on_start primary, on_role_change replica"},
		{"shutdown", []step{started, answered(Replica), stopped(StopPlanned, Replica)}, "on_start replica, on_stop replica"},
		{"reload", []step{started, answered(Replica), reloaded(Replica)}, "on_start replica, on_reload replica"},
	}
	for _, tt := range tests {
		var tr Tracker
		var got []string
		for _, s := range tt.steps {
			if f := s(&tr); f.Action != "" {
				got = append(got, string(f.Action)+" "+string(f.Role))
			}
		}
		if g := strings.Join(got, ", "); g != tt.want {
			t.Errorf("%s: fired %q, want %q", tt.name, g, tt.want)
		}
	}
}
