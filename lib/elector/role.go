package elector

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"time"

	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/dcs"
	"github.com/pg-ha/pg-ha/lib/decide"
	"github.com/pg-ha/pg-ha/lib/pg"
	"github.com/pg-ha/pg-ha/lib/rolepipe"
	"github.com/pg-ha/pg-ha/lib/state"
)

// decide chooses this node's role from one consistent view of the cluster.
func (e *Elector) decide(ctx context.Context, loc local, cl *dcs.Cluster, leaseOK bool) {
	ld := cl.Leader
	mine := ld != nil && ld.Name == e.cfg.Name && ld.Lease == e.lease.ID && leaseOK
	switch {
	case mine:
		if e.token != ld.CreateRevision {
			e.log.Info().Int64("token", ld.CreateRevision).Msg("holding the leader key")
			e.token = ld.CreateRevision
			e.downSince = 0
		}
		e.asLeader(ctx, loc, cl)
	case ld != nil:
		if e.token != 0 {
			e.log.Warn().Str("leader", ld.Name).Msg("lost the leader key")
			e.token = 0
		}
		if ld.Name == e.cfg.Name {
			e.ownKeyElsewhere(ctx, loc, cl)
			return
		}
		e.follow(ld.Name)
	default:
		e.token = 0
		if e.line.Verb == rolepipe.Lead && e.clock.Now().Before(e.line.Until) && loc.primary() {
			// The key is gone while this primary still holds validity
			// (kept by failsafe mode through an etcd outage, or the key
			// was deleted): take it again at once. No other node can
			// take it before that validity ends; a standby line now would
			// demote the primary for nothing.
			e.retake(ctx, loc, cl, leaseOK)
			return
		}
		if !leaseOK {
			e.emit(rolepipe.Line{Verb: rolepipe.Standby})
			return
		}
		e.maybeRace(ctx, loc, cl)
	}
}

// retake takes the leader key again for a primary whose lead line is still
// valid. Until it has the key it sends nothing: pg-supervise keeps the lead
// line in force and fences at its deadline if the key is not taken by then.
func (e *Elector) retake(ctx context.Context, loc local, cl *dcs.Cluster, leaseOK bool) {
	if !leaseOK {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, e.requestTimeout())
	token, err := e.dcs.AcquireLeader(rctx, e.cfg.Name, e.lease.ID)
	cancel()
	if err != nil {
		if !errors.Is(err, dcs.ErrLeaderExists) {
			e.log.Warn().Err(err).Msg("taking the leader key again")
		}
		return
	}
	e.token = token
	e.log.Info().Int64("token", token).Dur("validity_left", e.line.Until.Sub(e.clock.Now())).
		Msg("took the leader key again: the primary kept running without it")
	if !e.lead(e.slots(cl)) {
		e.log.Warn().Msg("took the leader key again with too little validity left to lead")
	}
}

// asLeader keeps the primary leading, records its position, finishes a
// manual failover, runs a due switchover, and gives the key up when the
// server has been down too long.
func (e *Elector) asLeader(ctx context.Context, loc local, cl *dcs.Cluster) {
	if e.refusedPromotion(ctx, loc) {
		return
	}
	if e.fenceHung(ctx, loc) {
		return
	}
	if !e.syncBeforeLead(ctx, loc, cl) {
		return
	}
	if e.failoverAsLeader(ctx, loc, cl) {
		return
	}
	if !e.lead(e.slots(cl)) {
		return
	}
	var ops = []clientOp{}
	if loc.primary() {
		e.downSince = 0
		// The status key changes only when the position moves (a quiet
		// primary writes nothing); the lease keeps the leader key.
		st := dcs.Status{Optime: loc.position(), Slots: e.permanentPositions(ctx)}
		if st.Optime != cl.Status.Optime || !maps.Equal(st.Slots, cl.Status.Slots) {
			ops = append(ops, dcs.OpPutStatus(e.dcs, st))
		}
		if e.failoverDone(cl) {
			ops = append(ops, dcs.OpDeleteFailover(e.dcs))
		}
		ops = append(ops, e.failsafeKeyOps(cl)...)
		if e.promotedFrom > 0 && int(loc.status.Timeline) > e.promotedFrom {
			// The first promotion of a new cluster is not a failover.
			if cl.Status.Optime > 0 || len(cl.History) > 0 {
				ops = append(ops, dcs.OpPutHistory(e.dcs, e.history(cl, loc)))
			}
			e.promotedFrom = 0
		}
	} else if e.dyn.StandbyCluster != nil && loc.running() {
		// A standby leader: up while it replays. Its position stands in
		// for the primary's in the elections of its cluster; a promotion
		// (standby_cluster removed) starts from its current timeline.
		e.downSince = 0
		e.promotedFrom = int(loc.status.Timeline)
		if pos := loc.position(); pos != cl.Status.Optime {
			ops = append(ops, dcs.OpPutStatus(e.dcs, dcs.Status{Optime: pos}))
		}
		if e.failoverDone(cl) {
			ops = append(ops, dcs.OpDeleteFailover(e.dcs))
		}
	} else if e.downSince == 0 {
		e.downSince = e.clock.Now()
	}
	if len(ops) > 0 {
		rctx, cancel := context.WithTimeout(ctx, e.requestTimeout())
		if err := e.dcs.LeaderTxn(rctx, e.token, ops...); err != nil {
			e.log.Warn().Err(err).Msg("leader update")
		}
		cancel()
	}
	if loc.primary() {
		e.manageSync(ctx, loc, cl)
	}
	// A leader whose PostgreSQL is down and not coming back gives the key
	// up, but only with evidence that it no longer accepts writes.
	if e.downSince != 0 && !e.dyn.Pause && !e.clock.Now().Before(e.restartGrace) {
		down := e.clock.Now().Sub(e.downSince)
		supGone := !loc.supOK || loc.sup.State == state.Stopped || loc.sup.State == state.Fenced
		if (supGone && down > 2*e.dyn.LoopWait) || down > e.dyn.PrimaryStartTimeout {
			e.releaseDown(ctx, down)
		}
	}
}

func (e *Elector) history(cl *dcs.Cluster, loc local) []dcs.HistoryEntry {
	h := append([]dcs.HistoryEntry(nil), cl.History...)
	reason := "failover"
	if cl.Failover != nil && cl.Failover.Member == e.cfg.Name {
		reason = "switchover"
	}
	tl, lsn := int(loc.status.Timeline)-1, cl.Status.Optime
	if entries, err := readHistoryFile(e.node.DataDir(), loc.status.Timeline); err == nil && len(entries) > 0 {
		last := entries[len(entries)-1]
		tl, lsn = int(last.Timeline), int64(last.SwitchLSN)
	}
	h = append(h, dcs.HistoryEntry{Timeline: tl, LSN: lsn, Reason: reason,
		Timestamp: time.Now().Format("2006-01-02T15:04:05.000000-07:00"), NewLeader: e.cfg.Name})
	if n := e.dyn.MaxTimelinesHistory; n > 0 && len(h) > n {
		h = h[len(h)-n:] // max_timelines_history: the newest n
	}
	return h
}

// stopWrites asks pg-supervise to stop PostgreSQL and waits, up to within,
// for evidence that pg-supervise took the stop line and PostgreSQL no
// longer accepts writes (stopTaken).
func (e *Elector) stopWrites(ctx context.Context, reason string, within time.Duration) bool {
	e.emit(rolepipe.Line{Verb: rolepipe.Stop, Reason: reason})
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if ok, why := e.stopTaken(ctx, 0); ok {
			e.log.Info().Str("evidence", why).Msg("PostgreSQL no longer accepts writes")
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// release deletes the leader key (guarded by the token) together with the
// last position: the supervisor's clean-stop checkpoint if known.
func (e *Elector) release(ctx context.Context, why string) error {
	pos := e.stopPosition(ctx)
	var ops []clientOp
	if pos > 0 {
		ops = append(ops, dcs.OpPutStatus(e.dcs, dcs.Status{Optime: pos}))
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.requestTimeout())
	defer cancel()
	if err := e.dcs.ReleaseLeader(rctx, e.token, ops...); err != nil {
		e.log.Warn().Err(err).Msg("releasing the leader key")
		return err
	}
	e.log.Info().Str("reason", why).Int64("position", pos).Msg("released the leader key")
	e.token, e.releasing = 0, 0
	e.ka.mu.Lock()
	e.ka.held = 0
	e.ka.mu.Unlock()
	return nil
}

// shutdown is the SIGTERM path. A pg-lockd that may hold the leader key
// (it leads, or its lease, perhaps adopted from a previous pg-lockd, carries
// the key) has PostgreSQL stop taking writes first and then releases the
// key; without evidence that writes stopped it leaves key and lease to
// expire (pg-supervise fences at its deadline). See decide.OnShutdown.
func (e *Elector) shutdown() error {
	_ = e.notify.Stopping()
	ctx := context.Background()
	defer e.closeConn(ctx)
	e.lease, _ = e.leaseState()
	s := decide.Shutdown{Token: e.token}
	if e.lease.ID != 0 {
		rctx, cancel := context.WithTimeout(ctx, e.requestTimeout())
		cl, err := e.dcs.Get(rctx)
		cancel()
		if err == nil {
			s.KeyRead = true
			if ld := cl.Leader; ld != nil && ld.Lease == e.lease.ID {
				s.KeyOnLease = true
				if e.token == 0 {
					e.token = ld.CreateRevision
				}
			}
		} else if e.token == 0 {
			s.NotWritable, _ = e.notWritable(ctx)
		}
	}
	switch decide.OnShutdown(s) {
	case decide.HandOver:
		within := e.lease.ValidUntil.Sub(e.clock.Now()) - config.FenceMargin
		e.log.Info().Msg("stopping: PostgreSQL stops taking writes, then the leader key is released")
		if !e.stopWrites(ctx, "shutdown", within) {
			e.log.Warn().Msg("no evidence that PostgreSQL stopped; leaving the key to expire with the lease")
			e.writeHeartbeat()
			return nil
		}
		_ = e.release(ctx, "shutdown")
	case decide.LeaveLease:
		e.log.Warn().Int64("lease_id", e.lease.ID).Msg("stopping without reading the leader key and without evidence that PostgreSQL is read-only: leaving the lease to expire")
		e.writeHeartbeat()
		return nil
	}
	if e.lease.ID != 0 {
		rctx, cancel := context.WithTimeout(ctx, e.requestTimeout())
		defer cancel()
		if err := e.dcs.Revoke(rctx, e.lease.ID); err == nil {
			e.lease = dcs.Lease{}
			e.setLease(dcs.Lease{}, 0)
		}
	}
	e.writeHeartbeat()
	return nil
}

// stopPosition is the location of the shutdown checkpoint of a cleanly
// stopped local server, read from its control file; 0 if it did not stop
// cleanly (then the last published position stands).
func (e *Elector) stopPosition(ctx context.Context) int64 {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cd, err := pg.ReadControlData(cctx, e.node.Owner, e.node.BinDir(), e.node.DataDir())
	switch {
	case err != nil:
		return 0
	case cd.State == pg.StateShutDown:
	case cd.State == pg.StateShutDownInRecovery && e.dyn.StandbyCluster != nil:
		// A standby leader wrote no WAL of its own: its last restartpoint
		// is what the candidate, which follows it, must have.
	default:
		return 0
	}
	return int64(cd.CheckpointLSN)
}

// readHistoryFile reads pg_wal/<tli>.history of the local data directory.
func readHistoryFile(dataDir string, tli uint32) ([]pg.HistoryEntry, error) {
	data, err := os.ReadFile(filepath.Join(dataDir, "pg_wal", fmt.Sprintf("%08X.history", tli)))
	if err != nil {
		return nil, err
	}
	return pg.ParseHistory(string(data))
}
