package elector

import (
	"context"
	"fmt"
	"time"

	"github.com/pg-ha/pg-ha/lib/clock"
	"github.com/pg-ha/pg-ha/lib/dcs"
	"github.com/pg-ha/pg-ha/lib/postmaster"
	"github.com/pg-ha/pg-ha/lib/rolepipe"
	"github.com/pg-ha/pg-ha/lib/state"
)

// restartJob is a restart request under way: PostgreSQL is stopped (the
// stop line is sent until pg-supervise shows the server stopped), then the
// role is decided as usual, and the request is finished once PostgreSQL
// runs again with a new postmaster.
type restartJob struct {
	id      string
	oldPID  int // postmaster pid when the request was taken (0: none ran)
	began   clock.Time
	stopped clock.Time // when the stop was seen (0: not yet)
}

// restartStopWithin and restartStartWithin bound the two halves of a
// restart; a request not done by then is finished with an error.
const (
	restartStopWithin  = 60 * time.Second
	restartStartWithin = 60 * time.Second
)

// handleRequest carries out an operator's request for this member
// (requests/<name>): restart PostgreSQL in place, or rebuild this replica.
// It reports whether it sent this loop's role line (the role is then not
// decided as usual).
func (e *Elector) handleRequest(ctx context.Context, cl *dcs.Cluster, r dcs.NodeRequest, loc local) bool {
	log := e.log.With().Str("request", r.Action).Str("request_id", r.ID).Logger()
	finish := func(errText string) {
		rctx, cancel := context.WithTimeout(ctx, e.requestTimeout())
		defer cancel()
		if err := e.dcs.FinishRequest(rctx, e.cfg.Name, r, errText); err != nil {
			log.Warn().Err(err).Msg("finishing the request")
		}
	}
	switch r.Action {
	case dcs.ActionRestart:
		return e.restartStep(ctx, r, loc, finish)
	case dcs.ActionReload:
		e.reloadRequest(finish)
		return false
	case dcs.ActionReinit:
		if e.token != 0 || (cl.Leader != nil && cl.Leader.Name == e.cfg.Name) {
			finish("the leader cannot be reinitialized; switch over to another member first")
			return false
		}
		if e.line.Verb != rolepipe.Follow {
			finish("no leader to clone from")
			return false
		}
		if e.reinitRunning {
			return false
		}
		e.reinitRunning = true
		log.Info().Msg("rebuilding this replica from the leader on request")
		go func() {
			rctx, cancel := context.WithTimeout(ctx, 6*time.Hour)
			defer cancel()
			_, err := postmaster.Request(rctx, e.node.RuntimeDir, "reinit")
			errText := ""
			if err != nil {
				errText = fmt.Sprintf("reinit failed: %v", err)
				log.Error().Err(err).Msg("reinit")
			} else {
				log.Info().Msg("reinit done")
			}
			finish(errText)
			e.reinitDone <- struct{}{}
		}()
		return false
	default:
		finish(fmt.Sprintf("unknown action %q", r.Action))
		return false
	}
}

// restartStep advances a restart request by one loop; see restartJob.
func (e *Elector) restartStep(ctx context.Context, r dcs.NodeRequest, loc local, finish func(string)) bool {
	now := e.clock.Now()
	j := e.restart
	if j == nil || j.id != r.ID {
		j = &restartJob{id: r.ID, began: now}
		if loc.supOK {
			j.oldPID = loc.sup.PID
		}
		e.restart = j
		e.log.Info().Str("request_id", r.ID).Int("pid", j.oldPID).Msg("restarting PostgreSQL on request")
	}
	if j.stopped == 0 {
		if now.Sub(j.began) > restartStopWithin {
			e.restart = nil
			finish("PostgreSQL did not stop in time")
			return false
		}
		e.emit(rolepipe.Line{Verb: rolepipe.Stop, Reason: "restart"})
		if ok, why := e.stopTaken(ctx, j.oldPID); ok {
			j.stopped = now
			e.restartGrace = now.Add(e.dyn.PrimaryStartTimeout)
			e.log.Info().Str("evidence", why).Msg("PostgreSQL stopped for the restart; starting it again")
			return false
		}
		return true
	}
	if loc.running() && loc.supOK && loc.sup.State == state.Running && loc.sup.PID != 0 && loc.sup.PID != j.oldPID {
		e.restart = nil
		e.log.Info().Int("pid", loc.sup.PID).Msg("PostgreSQL restarted on request")
		finish("")
		return false
	}
	if now.Sub(j.stopped) > restartStartWithin {
		e.restart = nil
		finish("PostgreSQL did not start again in time")
	}
	return false
}

// stopTaken reports evidence that pg-supervise took the stop line in force
// and PostgreSQL accepts no writes: pg-supervise publishes that it wants the
// server stopped and runs no postmaster (or one other than oldPID), and the
// server itself shows it is not writable. A pg-supervise that published
// nothing for long is gone, and PostgreSQL with it; then the server's own
// evidence suffices.
func (e *Elector) stopTaken(ctx context.Context, oldPID int) (bool, string) {
	ok, why := e.notWritable(ctx)
	if !ok {
		return false, ""
	}
	s, gone := e.supervisor()
	if gone {
		return true, why + "; pg-supervise is not running"
	}
	if s.Desired != string(rolepipe.Stop) || (s.PID != 0 && (oldPID == 0 || s.PID == oldPID)) {
		return false, ""
	}
	return true, why + "; pg-supervise took the stop line"
}

// supervisor returns pg-supervise's published state, and whether it is gone:
// its state file is missing or has not been updated for a while.
func (e *Elector) supervisor() (state.Supervise, bool) {
	s, err := state.ReadSupervise(e.node.RuntimeDir)
	return s, err != nil || !state.Fresh(s.Updated, e.clock.Now(), 3*time.Second+2*e.dyn.LoopWait)
}
