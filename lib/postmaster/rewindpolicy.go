package postmaster

import (
	"context"
	"fmt"
	"time"

	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/decide"
	"github.com/pg-ha/pg-ha/lib/pg"
	"github.com/pg-ha/pg-ha/lib/rolepipe"
	"github.com/pg-ha/pg-ha/lib/state"
)

// maxRewindFailures is how many pg_rewind runs in a row may fail while the
// leader answers as a primary before pg_rewind is taken to be unable to
// bring this replica back.
const maxRewindFailures = 5

// rewindPolicy is what the configuration allows with a replica pg_rewind
// cannot bring back.
type rewindPolicy struct {
	UsePgRewind        bool // use_pg_rewind
	RemoveOnRewindFail bool // remove_data_directory_on_rewind_failure
	RemoveOnDiverged   bool // remove_data_directory_on_diverged_timelines
}

func policyOf(d config.Dynamic) rewindPolicy {
	return rewindPolicy{UsePgRewind: d.UsePgRewind, RemoveOnRewindFail: d.RemoveDataOnRewindFail,
		RemoveOnDiverged: d.RemoveDataOnDiverged}
}

// rewindOutcome is what becomes of a replica pg_rewind has not brought back.
type rewindOutcome int

const (
	// rewindAgain: run pg_rewind (again).
	rewindAgain rewindOutcome = iota
	// rewindWait: keep PostgreSQL down and wait for an operator (reinit,
	// pg-bootstrap --rebuild) or a configuration that allows more.
	rewindWait
	// rewindReclone: re-create the replica from the leader; the old data
	// directory is kept aside, never deleted.
	rewindReclone
)

func (o rewindOutcome) String() string {
	switch o {
	case rewindAgain:
		return "rewind again"
	case rewindWait:
		return "wait"
	case rewindReclone:
		return "reclone"
	}
	return fmt.Sprintf("rewindOutcome(%d)", int(o))
}

// afterRewind decides, as Patroni does, what becomes of a replica whose
// data diverged from its leader's and that pg_rewind has not brought back.
// failures is the number of pg_rewind runs that failed in a row while the
// leader answered as a primary; 0 means pg_rewind ran as a dry run
// (use_pg_rewind off) and found the data diverged. why says what happened,
// for the state file and the log. It is pure.
//
//   - diverged with use_pg_rewind off: re-created with
//     remove_data_directory_on_diverged_timelines, otherwise it waits
//     (rewound after all if use_pg_rewind is turned on meanwhile);
//   - pg_rewind failed fewer than maxRewindFailures times: run it again;
//   - it failed that many times: re-created with
//     remove_data_directory_on_rewind_failure or
//     remove_data_directory_on_diverged_timelines, otherwise it waits.
func afterRewind(failures int, p rewindPolicy) (out rewindOutcome, why string) {
	failed := fmt.Sprintf("pg_rewind failed %d times", failures)
	if !p.UsePgRewind {
		// pg_rewind only looks for a divergence (--dry-run); it needs data
		// checksums or wal_log_hints like a real rewind.
		failed = fmt.Sprintf("pg_rewind --dry-run (use_pg_rewind is off) failed %d times", failures)
	}
	switch {
	case failures <= 0 && p.UsePgRewind:
		return rewindAgain, "use_pg_rewind is on"
	case failures <= 0 && p.RemoveOnDiverged:
		return rewindReclone, "diverged and use_pg_rewind is off; remove_data_directory_on_diverged_timelines is set"
	case failures <= 0:
		return rewindWait, "the data diverged from the leader's and use_pg_rewind is off"
	case failures < maxRewindFailures:
		return rewindAgain, failed
	case p.RemoveOnRewindFail:
		return rewindReclone, failed + "; remove_data_directory_on_rewind_failure is set"
	case p.RemoveOnDiverged:
		return rewindReclone, failed + "; remove_data_directory_on_diverged_timelines is set"
	}
	return rewindWait, failed
}

// unrewound is a replica kept down because pg_rewind cannot bring it back
// and the configuration does not allow re-creating it.
type unrewound struct {
	failures int    // as afterRewind takes it
	leader   string // the leader it could not follow
	why      string
}

// waitForOperator keeps PostgreSQL down on the diverged data: the state
// says why and what to do, which is logged once.
func (s *Supervisor) waitForOperator(line rolepipe.Line, failures int, why string) {
	s.unrewound = &unrewound{failures: failures, leader: line.Leader, why: why}
	s.rewindFailures = 0
	st := state.RewindFailed
	if failures <= 0 {
		st = state.Diverged
	}
	name := s.node.Cfg.Name
	s.setState(st, why+"; waiting for `pg-failover reinit "+name+"` or `pg-bootstrap --rebuild`")
	key := "remove_data_directory_on_rewind_failure"
	if failures <= 0 {
		key = "remove_data_directory_on_diverged_timelines"
	}
	s.log.Error().Str("leader", line.Leader).Str("reason", why).
		Msg("this replica cannot follow its leader without being re-created: PostgreSQL stays down and its data directory is left as it is; " +
			"rebuild it from the leader with `pg-failover reinit " + name + "` (or `pg-bootstrap --rebuild` on this host), " +
			"or set postgresql." + key + " to let pg-ha do so by itself (the old data directory is kept aside)")
}

// holdUnrewound is called every loop with the action decided: while this
// replica waits for an operator, nothing starts PostgreSQL on its data. The
// wait ends when the policy changed (a removal key or use_pg_rewind was
// turned on: the replica is re-created or rewound), when it is told to
// follow another leader (pg_rewind is tried again, against that one), or
// when it is elected.
func (s *Supervisor) holdUnrewound(ctx context.Context, act decide.Action, line rolepipe.Line) decide.Action {
	u := s.unrewound
	if u == nil {
		return act
	}
	switch line.Verb {
	case rolepipe.Lead:
		s.log.Warn().Msg("elected while waiting for a rebuild: its data is the cluster's now")
		s.unrewound = nil
		return act
	case rolepipe.Follow:
		if line.Leader != u.leader {
			s.log.Info().Str("leader", line.Leader).Str("previous", u.leader).Msg("a new leader: trying pg_rewind again")
			s.unrewound = nil
			return act
		}
		switch out, why := afterRewind(u.failures, policyOf(s.dyn)); out {
		case rewindAgain:
			s.log.Info().Str("reason", why).Msg("pg_rewind may run now: trying again")
			s.unrewound = nil
			return act
		case rewindReclone:
			s.unrewound = nil
			if err := s.reclone(ctx, line, why); err != nil {
				s.log.Error().Err(err).Msg("re-creating the replica failed")
			}
		}
	}
	return decide.Nothing
}

// leaderIsPrimary reports whether the leader at line.ConnURL answers as a
// primary. A pg_rewind that failed while it did not (unreachable, or still
// being promoted) is not held against this replica.
func (s *Supervisor) leaderIsPrimary(line rolepipe.Line) bool {
	p, err := s.node.Remote(line.ConnURL, s.node.Cfg.Postgres.Authentication.Superuser, false)
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	conn, err := pg.Connect(ctx, p)
	if err != nil {
		return false
	}
	defer conn.Close(ctx)
	st, err := pg.QueryStatus(ctx, conn)
	return err == nil && !st.InRecovery
}
