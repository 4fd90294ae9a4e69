package elector

import (
	"context"

	"github.com/pg-ha/pg-ha/lib/rolepipe"
)

// refusedPromotion gives the leader key up when pg-supervise reports that
// pre_promote refused the promotion under the token this node holds, as
// Patroni does, and then stays out of the race for one ttl so that another
// candidate wins. It reports whether it handled the loop.
//
// The key goes only once no promotion can follow: the stop of lead lines
// for the token (a standby line is sent instead, see lead), pg-supervise
// seen to have taken it while not running a primary, and the server itself
// not writable. A pg-supervise restarted meanwhile, which forgot the
// refusal, therefore cannot promote under the token either.
func (e *Elector) refusedPromotion(ctx context.Context, loc local) bool {
	if e.token == 0 {
		return false
	}
	if e.refused != e.token {
		if !loc.supOK || loc.sup.PrePromoteRefused != e.token {
			return false
		}
		e.refused = e.token
		e.log.Warn().Int64("token", e.token).Msg("pre_promote refused this node's promotion: giving the leader key up")
	}
	e.emit(rolepipe.Line{Verb: rolepipe.Standby})
	s, gone := e.supervisor()
	if !gone && (s.Desired != string(rolepipe.Standby) || s.Role == "primary") {
		return true
	}
	ok, why := e.notWritable(ctx)
	if !ok {
		return true
	}
	e.log.Info().Str("evidence", why).Msg("PostgreSQL was not promoted")
	if err := e.release(ctx, "pre_promote failed"); err == nil {
		e.raceAfter = e.clock.Now().Add(e.dyn.TTL)
	}
	return true
}
