package elector

import (
	"context"
	"fmt"
	"time"

	"github.com/pg-ha/pg-ha/lib/dcs"
	"github.com/pg-ha/pg-ha/lib/postmaster"
	"github.com/pg-ha/pg-ha/lib/rolepipe"
)

// handleRequest carries out an operator's request for this member
// (requests/<name>): restart PostgreSQL in place, or rebuild this replica.
func (e *Elector) handleRequest(ctx context.Context, cl *dcs.Cluster, r dcs.NodeRequest) {
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
		within := 60 * time.Second
		if e.token != 0 {
			within = e.lease.ValidUntil.Sub(e.clock.Now()) - 2*time.Second
		}
		log.Info().Msg("restarting PostgreSQL on request")
		if !e.stopWrites(ctx, "restart", within) {
			finish("PostgreSQL did not stop in time")
			return
		}
		e.restartGrace = e.clock.Now().Add(e.dyn.PrimaryStartTimeout)
		finish("")
		return
	case dcs.ActionReinit:
		if e.token != 0 || (cl.Leader != nil && cl.Leader.Name == e.cfg.Name) {
			finish("the leader cannot be reinitialized; switch over to another member first")
			return
		}
		if e.line.Verb != rolepipe.Follow {
			finish("no leader to clone from")
			return
		}
		if e.reinitRunning {
			return
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
		return
	default:
		finish(fmt.Sprintf("unknown action %q", r.Action))
		return
	}
}
