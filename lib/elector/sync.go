package elector

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/dcs"
	"github.com/pg-ha/pg-ha/lib/decide"
	"github.com/pg-ha/pg-ha/lib/rolepipe"
	"github.com/pg-ha/pg-ha/lib/syncrep"
)

// syncState is what the leader remembers of synchronous replication
// between loops.
type syncState struct {
	// names is synchronous_standby_names as lead lines carry it; nil leaves
	// the configuration's value in force (synchronous_mode off).
	names *rolepipe.SyncNames
	// prepared is the token under which the pre-promotion writes were done.
	prepared int64
	// token is the term ready belongs to.
	token int64
	ready syncrep.Readiness
	// recheck: standbys were just listed; look again soon.
	recheck bool
	// note is the last condition warned about (commits wait for no standby,
	// or block), so that it is logged once.
	note string
}

// syncMode converts the configured synchronous_mode.
func (e *Elector) syncMode() decide.SyncMode {
	switch e.dyn.SyncMode {
	case config.SyncOn:
		return decide.SyncOn
	case config.SyncQuorum:
		return decide.SyncQuorum
	}
	return decide.SyncOff
}

// syncKeyOf converts the cluster's sync key for lib/decide; empty if absent.
func syncKeyOf(cl *dcs.Cluster) decide.SyncKey {
	if cl == nil || cl.Sync == nil {
		return decide.SyncKey{}
	}
	return decide.SyncKey{Leader: cl.Sync.Leader, Standbys: cl.Sync.Standbys, Quorum: cl.Sync.Quorum}
}

// lineNames converts a synchronous_standby_names setting for a lead line.
func lineNames(n decide.StandbyNamesSetting) *rolepipe.SyncNames {
	return &rolepipe.SyncNames{Quorum: n.Quorum, Num: n.Num, Names: n.Names}
}

// settingOf converts synchronous_standby_names as parsed.
func settingOf(n syncrep.StandbyNames) decide.StandbyNamesSetting {
	s := decide.StandbyNamesSetting{Quorum: n.Method == syncrep.Quorum, Num: n.Num}
	if n.Method == syncrep.Off {
		return decide.StandbyNamesSetting{}
	}
	for _, name := range n.Names {
		if name != "*" {
			s.Names = append(s.Names, name)
		}
	}
	return s
}

// syncBeforeLead runs before every lead line of the leader. The first time
// under a token, in synchronous mode, it prepares the promotion as Patroni
// does (decide.SyncPrepromote): the sync key names this node before
// PostgreSQL leaves recovery, and the first lead line carries the
// synchronous_standby_names every commit must wait for. A server that
// already runs as the primary (pg-lockd restarted under the key it holds)
// keeps the setting it uses until the loop changes it. It reports false
// when leading must wait: the sync key could not be written.
func (e *Elector) syncBeforeLead(ctx context.Context, loc local, cl *dcs.Cluster) bool {
	if e.sync.prepared == e.token {
		return true
	}
	mode := e.syncMode()
	switch {
	case mode == decide.SyncOff:
		e.sync.names = nil
	case loc.primary():
		if e.sync.names == nil {
			cur, err := syncrep.ParseStandbyNames(loc.status.StandbyNames)
			if err == nil {
				e.sync.names = lineNames(settingOf(cur))
			}
		}
	default:
		for _, a := range decide.SyncPrepromote(mode, e.cfg.Name, syncKeyOf(cl), e.dyn.SyncStrict) {
			switch a.Kind {
			case decide.SyncPutKey:
				if err := e.putSync(ctx, a.Key, cl.SyncRev); err != nil {
					e.log.Warn().Err(err).Msg("writing the sync key before promotion; not promoting yet")
					return false
				}
			case decide.SyncSetStandbyNames:
				e.sync.names = lineNames(a.Names)
			}
		}
		e.log.Info().Str("synchronous_standby_names", e.sync.names.String()).Str("mode", mode.String()).
			Msg("synchronous replication prepared for promotion")
	}
	e.sync.prepared = e.token
	return true
}

// putSync writes the sync key under the fencing token; modRev as read (0:
// it must be absent, -1: no check).
func (e *Elector) putSync(ctx context.Context, k decide.SyncKey, modRev int64) error {
	rctx, cancel := context.WithTimeout(ctx, e.requestTimeout())
	defer cancel()
	err := e.dcs.PutSync(rctx, e.token, dcs.SyncKey{Leader: k.Leader, Standbys: k.Standbys, Quorum: k.Quorum}, modRev)
	if err == nil {
		e.log.Info().Str("leader", k.Leader).Strs("sync_standby", k.Standbys).Int("quorum", k.Quorum).Msg("sync key written")
	}
	return err
}

// manageSync moves synchronous replication one step towards what the
// standbys streaming now allow, on a leader whose PostgreSQL runs as the
// primary: synchronous_standby_names through the lead line, the sync key
// through guarded writes, in the order lib/decide gives. A change of
// synchronous_standby_names ends the step: nothing that depends on it is
// written before PostgreSQL is seen to use it.
func (e *Elector) manageSync(ctx context.Context, loc local, cl *dcs.Cluster) {
	e.sync.recheck = false
	mode := e.syncMode()
	if mode == decide.SyncOff {
		e.syncOff(ctx, cl)
		return
	}
	if e.sync.token != e.token {
		e.sync.ready, e.sync.token = syncrep.Readiness{}, e.token
	}
	changed, err := e.sync.ready.Observe(loc.status.StandbyNames, uint64(loc.status.FlushLSN))
	if err != nil {
		e.log.Warn().Err(err).Str("synchronous_standby_names", loc.status.StandbyNames).Msg("cannot read synchronous_standby_names; taking it as off")
	}
	if changed {
		e.nudgeStandbys(ctx)
	}
	key := syncKeyOf(cl)
	var published []string
	if strings.EqualFold(key.Leader, e.cfg.Name) {
		published = key.Standbys
	}
	st := e.sync.ready.State(e.syncObservation(loc, cl),
		syncrep.Options{Quorum: mode == decide.SyncQuorum, NodeCount: e.dyn.SyncNodeCount, MaxLagOnSyncNode: e.dyn.MaxLagOnSyncNode},
		published)
	if mode == decide.SyncOn {
		e.syncOnStep(ctx, cl, key, st)
		return
	}
	e.syncQuorumStep(ctx, cl, key, st)
}

// nudgeStandbys writes a little WAL (a transaction that does not wait for
// a standby) after synchronous_standby_names changed: a standby replies when
// it flushes WAL, and on an idle primary it would otherwise reply only every
// wal_receiver_status_interval, keeping commits that wait for it waiting and
// its confirmation late.
func (e *Elector) nudgeStandbys(ctx context.Context) {
	if e.conn == nil {
		return
	}
	qctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if _, err := e.conn.Exec(qctx, "BEGIN; SET LOCAL synchronous_commit = off; SELECT pg_catalog.txid_current(); COMMIT", pgx.QueryExecModeSimpleProtocol); err != nil {
		e.log.Debug().Err(err).Msg("writing WAL for the standbys to confirm")
	}
}

// syncOff leaves synchronous mode: the sync key goes first (it would keep
// asynchronous members from being promoted), then the lead line stops
// carrying synchronous_standby_names, so the configuration's value is back.
func (e *Elector) syncOff(ctx context.Context, cl *dcs.Cluster) {
	if cl.Sync != nil && cl.Sync.Leader != "" {
		rctx, cancel := context.WithTimeout(ctx, e.requestTimeout())
		err := e.dcs.DeleteSync(rctx, e.token, cl.SyncRev)
		cancel()
		if err != nil {
			e.log.Warn().Err(err).Msg("deleting the sync key")
			return
		}
		e.log.Info().Msg("synchronous_mode is off: sync key deleted")
	}
	if e.sync.names != nil {
		e.sync.names = nil
		e.sync.note = ""
		e.lead(e.slots(cl))
	}
}

func (e *Elector) syncOnStep(ctx context.Context, cl *dcs.Cluster, key decide.SyncKey, st syncrep.State) {
	plan := decide.SyncStep(decide.SyncOnState{
		Self: e.cfg.Name, Key: key, Current: settingOf(st.Current),
		Active: st.Active, Confirmed: st.Confirmed, NodeCount: e.dyn.SyncNodeCount, Strict: e.dyn.SyncStrict,
	})
	e.syncWarn(plan.Blocking, plan.Async, plan.Reason)
	modRev := cl.SyncRev
	for _, a := range plan.Actions {
		switch a.Kind {
		case decide.SyncPutKey:
			if err := e.putSync(ctx, a.Key, modRev); err != nil {
				e.logSyncWrite(err)
				return
			}
			modRev = -1
		case decide.SyncSetStandbyNames:
			e.setStandbyNames(cl, lineNames(a.Names), plan.Reason)
			e.sync.recheck = true
			return
		}
	}
	e.sync.recheck = plan.Recheck
}

func (e *Elector) syncQuorumStep(ctx context.Context, cl *dcs.Cluster, key decide.SyncKey, st syncrep.State) {
	cur := settingOf(st.Current)
	confirmed := 0
	for _, n := range cur.Names {
		if e.sync.ready.Ready(n) {
			confirmed++
		}
	}
	leader, voters, quorum := key.Leader, key.Standbys, key.Quorum
	if leader == "" {
		// No sync key: synchronous replication starts here, with no former
		// leader to count as a voter.
		leader, voters, quorum = e.cfg.Name, nil, 0
	}
	trs, err := decide.QuorumTransitions(decide.QuorumState{
		Leader: leader, Quorum: quorum, Voters: voters,
		NumSync: cur.Num, Sync: cur.Names, NumSyncConfirmed: confirmed,
		Active: st.Active, SyncWanted: e.dyn.SyncNodeCount, LeaderWanted: e.cfg.Name,
	})
	if err != nil {
		e.log.Warn().Err(err).Msg("synchronous replication left as it is")
		return
	}
	modRev := cl.SyncRev
	for _, t := range trs {
		switch t.Kind {
		case decide.QuorumSetStandbyNames:
			n := &rolepipe.SyncNames{Quorum: true, Num: t.Num, Names: t.Names}
			if len(t.Names) == 0 || t.Num == 0 {
				if e.dyn.SyncStrict {
					// Strict: commits keep waiting for the standbys listed
					// until one is back, rather than for none.
					e.syncWarn(true, false, "no standby may be synchronous and synchronous_mode_strict is on: commits wait")
					return
				}
				n = &rolepipe.SyncNames{}
			}
			e.syncWarn(false, n.Num == 0, "no standby may be synchronous: commits do not wait for a standby")
			e.setStandbyNames(cl, n, "quorum: "+t.String())
			e.sync.recheck = true
			return
		case decide.QuorumSetSyncKey:
			if err := e.putSync(ctx, decide.SyncKey{Leader: t.Leader, Standbys: t.Names, Quorum: t.Num}, modRev); err != nil {
				e.logSyncWrite(err)
				return
			}
			modRev = -1
		case decide.QuorumRestart:
			e.sync.recheck = true
			return
		}
	}
	if len(trs) == 0 {
		e.syncWarn(false, cur.Num == 0 && len(st.Active) == 0, "no standby may be synchronous: commits do not wait for a standby")
	}
}

// setStandbyNames hands a new synchronous_standby_names to pg-supervise
// with a lead line at once.
func (e *Elector) setStandbyNames(cl *dcs.Cluster, n *rolepipe.SyncNames, why string) {
	if e.sync.names == nil || e.sync.names.String() != n.String() {
		e.log.Info().Str("synchronous_standby_names", n.String()).Str("reason", why).Msg("synchronous_standby_names")
	}
	e.sync.names = n
	e.lead(e.slots(cl))
}

func (e *Elector) logSyncWrite(err error) {
	if errors.Is(err, dcs.ErrConflict) {
		e.log.Info().Err(err).Msg("the sync key changed meanwhile; deciding again")
		return
	}
	e.log.Warn().Err(err).Msg("writing the sync key")
}

// syncWarn logs, once per change, that commits block (strict mode without
// a standby) or no longer wait for a standby.
func (e *Elector) syncWarn(blocking, async bool, reason string) {
	note := ""
	switch {
	case blocking:
		note = "blocking"
	case async:
		note = "async"
	}
	if note == e.sync.note {
		return
	}
	e.sync.note = note
	switch note {
	case "blocking":
		e.log.Warn().Str("reason", reason).Msg("synchronous replication: no synchronous standby, commits WAIT until one is back (synchronous_mode_strict)")
	case "async":
		e.log.Warn().Str("reason", reason).Msg("synchronous replication: no synchronous standby, commits are acknowledged WITHOUT a standby until one is back")
	default:
		e.log.Info().Msg("synchronous replication: a synchronous standby acknowledges commits again")
	}
}

// syncObservation is what lib/syncrep needs to pick the standbys.
func (e *Elector) syncObservation(loc local, cl *dcs.Cluster) syncrep.Observation {
	o := syncrep.Observation{Self: e.cfg.Name, SynchronousCommit: loc.status.SynchronousCommit, PrimaryLSN: uint64(loc.position())}
	for _, m := range cl.Members {
		tags := config.Tags(m.Data.Tags)
		noSync, prio := syncrep.SyncTags(m.Data.Tags)
		rf, _ := m.Data.Tags["replicatefrom"].(string)
		o.Members = append(o.Members, syncrep.Member{Name: m.Name, Running: m.Data.State == "running",
			NoSync: noSync, SyncPriority: prio, NoFailover: tags.NoFailover(), ReplicateFrom: rf})
	}
	for _, r := range loc.status.Replication {
		o.Replication = append(o.Replication, syncrep.Replication{PID: r.PID, ApplicationName: r.ApplicationName,
			State: r.State, SyncState: r.SyncState, WriteLSN: uint64(r.WriteLSN), FlushLSN: uint64(r.FlushLSN), ReplayLSN: uint64(r.ReplayLSN)})
	}
	return o
}
