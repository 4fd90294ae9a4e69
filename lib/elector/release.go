package elector

import (
	"context"
	"time"

	"github.com/pg-ha/pg-ha/lib/dcs"
	"github.com/pg-ha/pg-ha/lib/decide"
	"github.com/pg-ha/pg-ha/lib/postmaster"
	"github.com/pg-ha/pg-ha/lib/rolepipe"
)

// releaseDown gives the leader key up because PostgreSQL has been down too
// long: first the stop line (and, from then on, instead of every lead line,
// so pg-supervise cannot start the server as a primary again), then, once
// pg-supervise is seen to have taken it and the server accepts no writes,
// the key. Until then it is tried again every loop.
func (e *Elector) releaseDown(ctx context.Context, down time.Duration) {
	e.releasing = e.token
	e.emit(rolepipe.Line{Verb: rolepipe.Stop, Reason: "primary_down"})
	if _, gone := e.supervisor(); gone {
		// Without its supervisor, what is left of the server is a backend
		// that outlived the postmaster, running a statement it could
		// still commit; no replica can receive that commit. The key is
		// being given up anyway: kill the leftovers instead of waiting.
		if n, err := postmaster.KillServer(e.node.DataDir(), 0, 2*time.Second); n > 0 || err != nil {
			e.log.Warn().Err(err).Int("killed", n).Msg("killed server processes left without pg-supervise")
		}
	}
	ok, why := e.stopTaken(ctx, 0)
	if !ok {
		return
	}
	e.log.Warn().Dur("down_for", down).Str("evidence", why).Msg("releasing the leader key: PostgreSQL is not coming back")
	_ = e.release(ctx, "primary_down")
}

// ownKeyElsewhere handles a leader key of this node's name on a lease this
// pg-lockd does not renew: a previous pg-lockd's of this node, whose lease it
// could not adopt at start. It tries to adopt that lease now; if that fails
// the key expires with it, and meanwhile the node stays read-only — except
// in maintenance mode, where nothing automatic may demote the primary, so no
// new role is sent (decide.DecideOwnKey).
func (e *Elector) ownKeyElsewhere(ctx context.Context, loc local, cl *dcs.Cluster) {
	ld := cl.Leader
	k := decide.OwnKey{Paused: e.dyn.Pause}
	if ld.Lease != 0 {
		rctx, cancel := context.WithTimeout(ctx, e.requestTimeout())
		sent := e.clock.Now()
		l, err := e.dcs.KeepAlive(rctx, ld.Lease)
		cancel()
		if err == nil {
			e.log.Info().Int64("lease_id", l.ID).Int64("previous_lease_id", e.lease.ID).Msg("adopted the lease that holds this node's leader key")
			e.setLease(l, sent)
			e.lease = l
			k.Adopted = true
		}
	}
	switch decide.DecideOwnKey(k) {
	case decide.OwnKeyLead:
		e.token, e.downSince = ld.CreateRevision, 0
		e.log.Info().Int64("token", e.token).Msg("holding the leader key")
		e.asLeader(ctx, loc, cl)
	case decide.OwnKeyHold:
		e.log.Debug().Msg("paused: the leader key of a previous pg-lockd of this node expires; the primary is left running")
		e.resend()
	default:
		if e.line.Verb == rolepipe.Lead && e.clock.Now().Before(e.line.Until) && loc.primary() {
			// A primary still within its validity (failsafe mode kept
			// it through an outage that cost it its lease): the key goes
			// with the lease, then it takes the key again (retake); until
			// then the lead line in force stands.
			return
		}
		// Stay read-only while the key expires with its lease.
		e.emit(rolepipe.Line{Verb: rolepipe.Standby})
	}
}
