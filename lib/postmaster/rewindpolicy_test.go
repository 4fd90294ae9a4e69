package postmaster

import (
	"context"
	"testing"

	"github.com/pg-ha/pg-ha/lib/decide"
	"github.com/pg-ha/pg-ha/lib/rolepipe"
)

// TestAfterRewind: Patroni's policy. pg_rewind is retried up to
// maxRewindFailures; then, and at once for a divergence use_pg_rewind does
// not allow to repair, the replica is re-created only if a removal key
// allows it, and otherwise waits for an operator.
func TestAfterRewind(t *testing.T) {
	off := rewindPolicy{UsePgRewind: true}
	onFail := rewindPolicy{UsePgRewind: true, RemoveOnRewindFail: true}
	onDiv := rewindPolicy{UsePgRewind: true, RemoveOnDiverged: true}
	noRewind := rewindPolicy{}
	noRewindFail := rewindPolicy{RemoveOnRewindFail: true}
	noRewindDiv := rewindPolicy{RemoveOnDiverged: true}
	for _, tc := range []struct {
		name     string
		failures int
		p        rewindPolicy
		want     rewindOutcome
	}{
		{"first failure, keys off", 1, off, rewindAgain},
		{"fourth failure, keys off", maxRewindFailures - 1, off, rewindAgain},
		{"first failure, rewind_failure on", 1, onFail, rewindAgain},
		{"last failure, keys off", maxRewindFailures, off, rewindWait},
		{"more failures, keys off", maxRewindFailures + 3, off, rewindWait},
		{"last failure, rewind_failure on", maxRewindFailures, onFail, rewindReclone},
		{"last failure, diverged_timelines on", maxRewindFailures, onDiv, rewindReclone},
		{"diverged, use_pg_rewind off, keys off", 0, noRewind, rewindWait},
		{"diverged, use_pg_rewind off, rewind_failure on", 0, noRewindFail, rewindWait},
		{"diverged, use_pg_rewind off, diverged_timelines on", 0, noRewindDiv, rewindReclone},
		{"diverged, use_pg_rewind turned on since", 0, off, rewindAgain},
		{"last failure, use_pg_rewind off since, keys off", maxRewindFailures, noRewind, rewindWait},
		{"dry run failed, use_pg_rewind off, rewind_failure on", maxRewindFailures, noRewindFail, rewindReclone},
		{"dry run failed, use_pg_rewind off, diverged_timelines on", maxRewindFailures, noRewindDiv, rewindReclone},
		{"dry run failed once, use_pg_rewind off, diverged_timelines on", 1, noRewindDiv, rewindAgain},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, why := afterRewind(tc.failures, tc.p)
			if got != tc.want {
				t.Errorf("afterRewind(%d, %+v) = %v (%s), want %v", tc.failures, tc.p, got, why, tc.want)
			}
			if why == "" {
				t.Error("no reason given")
			}
		})
	}
}

// TestHoldUnrewound: a replica waiting for an operator starts nothing while
// it is told to follow the same leader or to stay a replica; it tries
// pg_rewind again for a new leader or once use_pg_rewind allows it, and
// stops waiting when elected.
func TestHoldUnrewound(t *testing.T) {
	s := liveSupervisor(t, liveYAML)
	ctx := context.Background()
	follow := func(leader string) rolepipe.Line { return rolepipe.Line{Verb: rolepipe.Follow, Leader: leader} }

	if got := s.holdUnrewound(ctx, decide.StartStandby, follow("node2")); got != decide.StartStandby {
		t.Fatalf("not waiting: %v, want the action unchanged", got)
	}

	for _, tc := range []struct {
		name      string
		failures  int
		usePgRew  bool
		line      rolepipe.Line
		act, want decide.Action
		waiting   bool
	}{
		{"same leader", maxRewindFailures, true, follow("node2"), decide.RewindAndStart, decide.Nothing, true},
		{"same leader, diverged", 0, false, follow("node2"), decide.RewindAndStart, decide.Nothing, true},
		{"no leader", maxRewindFailures, true, rolepipe.Line{Verb: rolepipe.Standby}, decide.StartStandby, decide.Nothing, true},
		{"new leader", maxRewindFailures, true, follow("node3"), decide.RewindAndStart, decide.RewindAndStart, false},
		{"use_pg_rewind turned on", 0, true, follow("node2"), decide.RewindAndStart, decide.RewindAndStart, false},
		{"elected", maxRewindFailures, true, rolepipe.Line{Verb: rolepipe.Lead}, decide.StartStandby, decide.StartStandby, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.unrewound = &unrewound{failures: tc.failures, leader: "node2", why: "test"}
			s.dyn.UsePgRewind = tc.usePgRew
			if got := s.holdUnrewound(ctx, tc.act, tc.line); got != tc.want {
				t.Errorf("action %v, want %v", got, tc.want)
			}
			if waiting := s.unrewound != nil; waiting != tc.waiting {
				t.Errorf("waiting %v, want %v", waiting, tc.waiting)
			}
		})
	}
}
