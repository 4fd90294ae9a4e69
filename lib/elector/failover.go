package elector

import (
	"context"
	"errors"
	"time"

	"github.com/pg-ha/pg-ha/lib/clock"
	"github.com/pg-ha/pg-ha/lib/dcs"
	"github.com/pg-ha/pg-ha/lib/decide"
	"github.com/pg-ha/pg-ha/lib/rolepipe"
)

// failoverKey converts the cluster's failover key for lib/decide; nil if
// there is none.
func failoverKey(cl *dcs.Cluster) *decide.FailoverKey {
	f := cl.Failover
	if f == nil {
		return nil
	}
	k := &decide.FailoverKey{Leader: f.Leader, Member: f.Member, Force: f.Force}
	if f.ScheduledAt != nil {
		k.ScheduledAt = *f.ScheduledAt
	}
	return k
}

// maybeRace takes the free leader key if lib/decide says this node should.
// A failover key that lib/decide finds stale is deleted first (guarded by
// its mod revision), as Patroni does, so that it neither steers a later
// election nor blocks the next request.
func (e *Elector) maybeRace(ctx context.Context, loc local, cl *dcs.Cluster) {
	if e.clock.Now().Before(e.raceAfter) {
		// pre_promote refused this node's promotion a moment ago: let
		// another candidate take the key, as Patroni does for one ttl.
		e.log.Debug().Msg("not racing for the leader key: pre_promote refused the last promotion")
		e.emit(rolepipe.Line{Verb: rolepipe.Standby})
		return
	}
	el := decide.Election{
		Self: e.self(loc), Others: e.members(cl), LastLeaderPosition: cl.Status.Optime,
		MaxLag: e.dyn.MaximumLagOnFailover, Paused: e.dyn.Pause,
		SettleExpired: e.clock.Now().Sub(e.noLeader.since) >= e.dyn.LoopWait,
		Failover:      failoverKey(cl),
		KeyWaited:     e.keyWaited(cl),
		KeyGrace:      e.keyGrace(),
		Now:           time.Now(),
		Late:          e.scheduledLate(),
		SyncMode:      e.syncMode(),
		SyncKey:       syncKeyOf(cl),
		CheckTimeline: e.dyn.CheckTimeline,
	}
	if n := len(cl.History); n > 0 {
		el.ClusterTimeline = cl.History[n-1].Timeline + 1 // the timeline the last promotion began
	}
	if el.Failover != nil {
		if v, why := decide.WithoutLeader(el); v == decide.KeyStale {
			e.dropFailoverKey(ctx, cl, why)
		}
	}
	ok, why := decide.Elect(el)
	if !ok {
		ev := e.log.Debug()
		if why != e.notRacing {
			ev = e.log.Info()
			e.notRacing = why
		}
		ev.Str("reason", why).Msg("not racing for the leader key")
		e.emit(rolepipe.Line{Verb: rolepipe.Standby})
		return
	}
	// Checked after the leader key was seen gone: a promise given before
	// that is on record by now (failsafe.go).
	if why := e.failsafeBlocks(cl); why != "" {
		if why != e.notRacing {
			e.log.Info().Str("reason", why).Msg("not racing for the leader key")
			e.notRacing = why
		}
		e.emit(rolepipe.Line{Verb: rolepipe.Standby})
		return
	}
	e.notRacing = ""
	rctx, cancel := context.WithTimeout(ctx, e.requestTimeout())
	defer cancel()
	token, err := e.dcs.AcquireLeader(rctx, e.cfg.Name, e.lease.ID)
	if err != nil {
		if !errors.Is(err, dcs.ErrLeaderExists) {
			e.log.Warn().Err(err).Msg("acquiring the leader key")
		}
		e.emit(rolepipe.Line{Verb: rolepipe.Standby})
		return
	}
	e.token = token
	e.downSince = 0
	e.promotedFrom = int(loc.status.Timeline)
	e.log.Info().Str("reason", why).Int64("token", token).Int64("position", loc.position()).Msg("won the leader key")
	if !e.syncBeforeLead(ctx, loc, cl) {
		return
	}
	if !e.lead(e.slots(cl)) {
		e.log.Warn().Msg("won the leader key with too little validity left to lead")
	}
}

// keyWatch remembers when this node first saw the current failover key.
type keyWatch struct {
	rev   int64
	since clock.Time
}

// keyWaited is how long, without a leader, the failover key in cl has been
// waiting for its candidate: since the leader key vanished or since this
// node first saw the key, whichever is later.
func (e *Elector) keyWaited(cl *dcs.Cluster) time.Duration {
	now := e.clock.Now()
	if cl.FailoverRev != e.fkey.rev {
		e.fkey = keyWatch{rev: cl.FailoverRev, since: now}
	}
	from := e.noLeader.since
	if e.fkey.since > from {
		from = e.fkey.since
	}
	return now.Sub(from)
}

// scheduledLate is how late a scheduled switchover is still carried out:
// 1.5 loop_wait as in Patroni, but at least ttl, since pg-ha's loop_wait is
// short.
func (e *Elector) scheduledLate() time.Duration { return max(e.dyn.LoopWait*3/2, e.dyn.TTL) }

// keyGrace is how long, without a leader, a failover key's candidate is
// waited for before the key is stale: one ttl, ample for a streaming
// replica to receive the shutdown checkpoint and take the key.
func (e *Elector) keyGrace() time.Duration { return e.dyn.TTL }

// dropFailoverKey deletes a stale failover key if it is still the one in
// cl. Without a leader any node may; the mod revision guard keeps a new
// request written meanwhile.
func (e *Elector) dropFailoverKey(ctx context.Context, cl *dcs.Cluster, why string) {
	rctx, cancel := context.WithTimeout(ctx, e.requestTimeout())
	defer cancel()
	err := e.dcs.DeleteFailoverAt(rctx, cl.FailoverRev)
	if err != nil && !errors.Is(err, dcs.ErrConflict) {
		e.log.Warn().Err(err).Msg("deleting the stale failover key")
		return
	}
	if err == nil {
		e.log.Info().Str("reason", why).Msg("deleted the stale failover key")
	}
}

// failoverAsLeader acts on the failover key while this node leads
// (decide.AsLeader): a due switchover is carried out, a stale key deleted
// (guarded by the token), a scheduled one left until its time. It reports
// whether it took this loop over (a switchover ran or was refused).
func (e *Elector) failoverAsLeader(ctx context.Context, loc local, cl *dcs.Cluster) bool {
	k := failoverKey(cl)
	if k == nil {
		return false
	}
	switch act, why := decide.AsLeader(*k, e.cfg.Name, time.Now(), e.scheduledLate()); act {
	case decide.LeaderHandOver:
		e.switchover(ctx, loc, cl, k.Member)
		return true
	case decide.LeaderDrop:
		rctx, cancel := context.WithTimeout(ctx, e.requestTimeout())
		defer cancel()
		if err := e.dcs.LeaderTxn(rctx, e.token, dcs.OpDeleteFailover(e.dcs)); err != nil {
			e.log.Warn().Err(err).Msg("deleting the stale failover key")
		} else {
			e.log.Info().Str("reason", why).Msg("deleted the stale failover key")
		}
	}
	return false
}

// failoverDone reports whether the failover key asked for this node, which
// now runs as the primary: the leader deletes it with its status.
func (e *Elector) failoverDone(cl *dcs.Cluster) bool {
	k := failoverKey(cl)
	if k == nil {
		return false
	}
	act, _ := decide.AsLeader(*k, e.cfg.Name, time.Now(), e.scheduledLate())
	return act == decide.LeaderDone
}

// switchover hands the leader key to candidate: checkpoint while serving,
// stop writes (a clean shutdown sends all WAL to connected standbys), then
// release the key with the shutdown checkpoint's position and let the
// candidate, named by the failover key, take it once it has received that
// checkpoint. A primary that did not stop cleanly has no checkpoint to
// hand over: it keeps the key and leads again.
func (e *Elector) switchover(ctx context.Context, loc local, cl *dcs.Cluster, candidate string) {
	log := e.log.With().Str("candidate", candidate).Logger()
	refuse := func(why string) {
		log.Warn().Str("reason", why).Msg("switchover refused")
		rctx, cancel := context.WithTimeout(ctx, e.requestTimeout())
		defer cancel()
		_ = e.dcs.LeaderTxn(rctx, e.token, dcs.OpDeleteFailover(e.dcs))
		e.lead(e.slots(cl))
	}
	m := cl.Member(candidate)
	if m == nil {
		refuse("no such member")
		return
	}
	cand := e.members(&dcs.Cluster{Members: []dcs.Member{*m}})[0]
	lagFrom := loc.position()
	if key := syncKeyOf(cl); e.syncMode() == decide.SyncOn && key.Leader == e.cfg.Name && key.Lists(candidate) {
		// A synchronous standby has every acknowledged commit; what it
		// lacks now reaches it with the shutdown checkpoint, which it
		// must show before it may take the key.
		lagFrom = 0
	}
	if ok, why := decide.Eligible(cand, lagFrom, e.dyn.MaximumLagOnFailover); !ok {
		refuse(why)
		return
	}
	if ok, why := decide.SyncFailoverTarget(e.syncMode(), syncKeyOf(cl), candidate, true); !ok {
		refuse(why)
		return
	}
	streaming := false
	for _, r := range loc.status.Replication {
		if r.ApplicationName == candidate && r.State == "streaming" {
			streaming = true
		}
	}
	if !streaming {
		refuse("the candidate is not streaming from this primary")
		return
	}
	validity := func() time.Duration { return e.lease.ValidUntil.Sub(e.clock.Now()) - 2*time.Second }
	log.Info().Msg("switchover: checkpointing while still serving")
	cctx, cancel := context.WithTimeout(ctx, min(10*time.Second, max(validity(), 0)))
	if err := e.checkpoint(cctx); err != nil {
		log.Warn().Err(err).Msg("checkpoint before switchover")
	}
	cancel()
	if !e.stopWrites(ctx, "switchover", validity()) {
		log.Warn().Msg("switchover: the primary did not stop in time; it keeps leading")
		e.lead(e.slots(cl))
		return
	}
	if e.stopPosition(ctx) <= 0 {
		refuse("the primary did not stop cleanly, so there is no shutdown checkpoint the candidate could be checked against; it keeps leading")
		return
	}
	if err := e.release(ctx, "switchover"); err != nil {
		return
	}
	e.follow(candidate)
}
