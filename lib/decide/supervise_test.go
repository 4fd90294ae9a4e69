package decide

import (
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/clock"
	"github.com/pg-ha/pg-ha/lib/rolepipe"
)

func TestSupervise(t *testing.T) {
	now := clock.Time(1000 * time.Second)
	lead := func(token int64) rolepipe.Line {
		return rolepipe.Line{Verb: rolepipe.Lead, Until: now.Add(5 * time.Second), Token: token}
	}
	expired := rolepipe.Line{Verb: rolepipe.Lead, Until: now.Add(-time.Millisecond), Token: 7}
	follow := func(l string) rolepipe.Line {
		return rolepipe.Line{Verb: rolepipe.Follow, Leader: l, ConnURL: "postgres://h:1/postgres"}
	}
	standby := rolepipe.Line{Verb: rolepipe.Standby}
	stop := rolepipe.Line{Verb: rolepipe.Stop, Reason: "switchover"}
	paused := func(l rolepipe.Line) rolepipe.Line { l.Paused = true; return l }

	primary := Local{Running: true, Primary: true, Term: 7}
	replicaOf := func(up string) Local { return Local{Running: true, Upstream: up} }
	down := Local{}
	crashedPrimary := Local{Term: 7, Crashed: true, MayHaveDiverged: true}
	exPrimaryDown := Local{Term: 7, MayHaveDiverged: true}

	tests := []struct {
		name string
		l    Local
		want rolepipe.Line
		have bool
		out  Action
	}{
		{"no line yet: wait", down, rolepipe.Line{}, false, Nothing},
		{"no line yet, never start as primary", Local{Term: 7}, rolepipe.Line{}, false, Nothing},
		{"primary keeps leading", primary, lead(7), true, Nothing},
		{"primary under a new token adopts it", primary, lead(9), true, AdoptTerm},
		{"validity ran out: fence", primary, expired, true, Fence},
		{"validity ran out on a standby: nothing to fence", replicaOf("n1"), expired, true, Nothing},
		{"expired lead, down: stay down", exPrimaryDown, expired, true, Nothing},
		{"standby told to lead: promote", replicaOf("n1"), lead(9), true, Promote},
		{"crashed primary, same token: restart in place", crashedPrimary, lead(7), true, StartPrimary},
		{"down ex-primary, new token: start as standby first", exPrimaryDown, lead(9), true, StartStandby},
		{"down, never primary, told to lead: standby first", down, lead(3), true, StartStandby},
		{"primary told to follow: demote", primary, follow("n2"), true, Demote},
		{"primary told standby: demote", primary, standby, true, Demote},
		{"standby of the old leader: retarget", replicaOf("n1"), follow("n2"), true, Retarget},
		{"standby of the right leader: nothing", replicaOf("n2"), follow("n2"), true, Nothing},
		{"diverged running standby with new leader: demote to rewind", Local{Running: true, Upstream: "", MayHaveDiverged: true}, follow("n2"), true, Demote},
		{"standby suspected of divergence: demote to rewind", Local{Running: true, Upstream: "n2", MayHaveDiverged: true}, follow("n2"), true, Demote},
		{"down ex-primary told to follow: rewind first", exPrimaryDown, follow("n2"), true, RewindAndStart},
		{"down replica told to follow: start", down, follow("n2"), true, StartStandby},
		{"no leader, down: start read-only standby", exPrimaryDown, standby, true, StartStandby},
		{"no leader, running standby: keep", replicaOf("n1"), standby, true, Nothing},
		{"stop a running primary cleanly", primary, stop, true, StopServer},
		{"stop a running standby", replicaOf("n1"), stop, true, StopServer},
		{"stopped stays stopped", down, stop, true, Nothing},
		{"paused: no restart after a crash", crashedPrimary, paused(lead(7)), true, Nothing},
		{"paused: a crash of a standby is not restarted", Local{Crashed: true}, paused(follow("n2")), true, Nothing},
		{"paused still fences", primary, paused(expired), true, Fence},
		// pre_promote.
		{"pre_promote set: run it before promoting", Local{Running: true, PrePromote: true}, lead(9), true, RunPrePromote},
		{"pre_promote running: wait", Local{Running: true, PrePromote: true, PrePromoteRunning: 9}, lead(9), true, Nothing},
		{"pre_promote allowed this token: promote", Local{Running: true, PrePromote: true, PrePromoteOK: 9}, lead(9), true, Promote},
		{"pre_promote allowed an older token: run it again", Local{Running: true, PrePromote: true, PrePromoteOK: 7}, lead(9), true, RunPrePromote},
		{"pre_promote refused this token: stay a standby", Local{Running: true, PrePromote: true, PrePromoteRefused: 9}, lead(9), true, Nothing},
		{"refused even if the script is gone since", Local{Running: true, PrePromoteRefused: 9}, lead(9), true, Nothing},
		{"refused an older token: run it for the new one", Local{Running: true, PrePromote: true, PrePromoteRefused: 7}, lead(9), true, RunPrePromote},
		{"pre_promote and an expired line: nothing", Local{Running: true, PrePromote: true, PrePromoteOK: 7}, expired, true, Nothing},
		{"pre_promote and a primary: keep it", Local{Running: true, Primary: true, Term: 9, PrePromote: true}, lead(9), true, Nothing},
		{"refused, down: start as a standby", Local{PrePromoteRefused: 9}, lead(9), true, StartStandby},
	}
	for _, tt := range tests {
		if got := Supervise(tt.l, tt.want, tt.have, now); got != tt.out {
			t.Errorf("%s: Supervise = %v, want %v", tt.name, got, tt.out)
		}
	}
}

// Whatever the line, a running primary without validity is fenced or
// stopped, never left running.
func TestSuperviseNeverKeepsUnfencedPrimary(t *testing.T) {
	now := clock.Time(1000 * time.Second)
	lines := []rolepipe.Line{
		{Verb: rolepipe.Lead, Until: now, Token: 1},
		{Verb: rolepipe.Follow, Leader: "x", ConnURL: "postgres://h:1/d"},
		{Verb: rolepipe.Standby},
		{Verb: rolepipe.Stop, Reason: "x"},
	}
	for _, l := range lines {
		for _, paused := range []bool{false, true} {
			l.Paused = paused
			got := Supervise(Local{Running: true, Primary: true, Term: 1}, l, true, now)
			if got != Fence && got != Demote && got != StopServer {
				t.Errorf("line %q: %v leaves a primary running", l, got)
			}
		}
	}
}

func TestKeepPrePromote(t *testing.T) {
	now := clock.Time(1000 * time.Second)
	lead := func(token int64, left time.Duration) rolepipe.Line {
		return rolepipe.Line{Verb: rolepipe.Lead, Until: now.Add(left), Token: token}
	}
	tests := []struct {
		name string
		line rolepipe.Line
		want bool
	}{
		{"still told to lead under the token", lead(9, time.Second), true},
		{"a new token", lead(10, time.Second), false},
		{"validity ran out", lead(9, 0), false},
		{"told to follow", rolepipe.Line{Verb: rolepipe.Follow, Leader: "n2"}, false},
		{"told to stay a standby", rolepipe.Line{Verb: rolepipe.Standby}, false},
		{"told to stop", rolepipe.Line{Verb: rolepipe.Stop, Reason: "x"}, false},
	}
	for _, tt := range tests {
		if got := KeepPrePromote(9, tt.line, now); got != tt.want {
			t.Errorf("%s: KeepPrePromote = %v, want %v", tt.name, got, tt.want)
		}
	}
}
