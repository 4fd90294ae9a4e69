package decide

import (
	"github.com/pg-ha/pg-ha/lib/clock"
	"github.com/pg-ha/pg-ha/lib/rolepipe"
)

// Local is what pg-supervise knows about its PostgreSQL.
type Local struct {
	// Running: a postmaster runs as our child.
	Running bool
	// Primary: it runs without standby.signal or was promoted, so it may
	// accept writes.
	Primary bool
	// Term is the leader token it has been primary under (0: none).
	Term int64
	// Upstream is the leader it streams from as a standby ("" for none).
	Upstream string
	// MayHaveDiverged: the data directory ran as a primary since it last
	// followed a leader, so it must be checked (pg_rewind) before following.
	MayHaveDiverged bool
	// Crashed: the postmaster exited without being asked to.
	Crashed bool
	// PrePromote: a pre_promote script must allow a promotion first.
	PrePromote bool
	// PrePromoteRunning is the token the pre_promote script runs for (0:
	// none), PrePromoteOK the one it allowed a promotion under, and
	// PrePromoteRefused the one it refused (a non-zero exit or a
	// timeout): this node never promotes under that token.
	PrePromoteRunning, PrePromoteOK, PrePromoteRefused int64
}

// Action is what pg-supervise does next.
type Action int

// Actions, in the order of their numbers carrying no meaning.
const (
	// Nothing: the desired state holds.
	Nothing Action = iota
	// Fence: kill the primary's whole process group now.
	Fence
	// StartPrimary: start PostgreSQL as a primary in place (it was primary
	// under this very token and crashed).
	StartPrimary
	// StartStandby: start PostgreSQL as a standby of the line's leader, or
	// with no upstream.
	StartStandby
	// RewindAndStart: check divergence against the leader (pg_rewind), then
	// start as its standby.
	RewindAndStart
	// Promote: promote the running standby.
	Promote
	// AdoptTerm: the primary keeps running under the line's new token.
	AdoptTerm
	// Retarget: point the running standby at the line's leader.
	Retarget
	// Demote: stop the primary (fast shutdown) so it can rejoin as a standby.
	Demote
	// StopServer: stop PostgreSQL and keep it stopped.
	StopServer
	// RunPrePromote: start the pre_promote script for the line's token;
	// the standby is promoted once it allows it.
	RunPrePromote
)

var actionNames = [...]string{"nothing", "fence", "start-primary", "start-standby", "rewind-and-start",
	"promote", "adopt-term", "retarget", "demote", "stop", "run-pre-promote"}

func (a Action) String() string { return actionNames[a] }

// Supervise decides the next action from the local state and the newest
// role line (have is false before the first line). now is the shared clock.
//
// The deadline itself is enforced by pg-supervise's fencer, independently of
// this decision: a primary demoted or stopped here is still killed when its
// validity runs out first.
func Supervise(l Local, want rolepipe.Line, have bool, now clock.Time) Action {
	if !have {
		return Nothing
	}
	if !l.Running && l.Crashed && want.Paused {
		// Maintenance mode: no automatic restart after a crash.
		return Nothing
	}
	switch want.Verb {
	case rolepipe.Lead:
		switch {
		case !want.Valid(now):
			if l.Running && l.Primary {
				return Fence
			}
			return Nothing
		case l.Running && l.Primary && l.Term == want.Token:
			return Nothing
		case l.Running && l.Primary:
			return AdoptTerm
		case l.Running:
			return promote(l, want.Token)
		case l.Term == want.Token:
			return StartPrimary
		default:
			// Start as a standby first; the next decision promotes it,
			// which opens a new timeline.
			return StartStandby
		}
	case rolepipe.Follow:
		switch {
		case l.Running && l.Primary:
			return Demote
		case l.Running && l.MayHaveDiverged:
			// Stop it so that pg_rewind can check it against the leader.
			return Demote
		case l.Running && l.Upstream != want.Leader:
			return Retarget
		case l.Running:
			return Nothing
		case l.MayHaveDiverged:
			return RewindAndStart
		default:
			return StartStandby
		}
	case rolepipe.Standby:
		switch {
		case l.Running && l.Primary:
			return Demote
		case l.Running:
			return Nothing
		default:
			return StartStandby
		}
	case rolepipe.Stop:
		if l.Running {
			return StopServer
		}
	}
	return Nothing
}

// promote decides about a running standby told to lead under token: it is
// promoted once pre_promote (if any) allowed it for that token; never under
// a token pre_promote refused.
func promote(l Local, token int64) Action {
	switch {
	case l.PrePromoteRefused == token:
		return Nothing
	case !l.PrePromote || l.PrePromoteOK == token:
		return Promote
	case l.PrePromoteRunning == token:
		return Nothing
	}
	return RunPrePromote
}

// KeepPrePromote reports whether a pre_promote script running for token may
// go on given the newest line: only while that line still asks this node to
// lead under the same token, with validity left. Otherwise the script is
// killed, and its result would not matter.
func KeepPrePromote(token int64, want rolepipe.Line, now clock.Time) bool {
	return want.Verb == rolepipe.Lead && want.Token == token && want.Valid(now)
}
