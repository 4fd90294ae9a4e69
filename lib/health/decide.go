package health

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/pg-ha/pg-ha/lib/clock"
	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/dcs"
	"github.com/pg-ha/pg-ha/lib/state"
)

// Facts are the conclusions drawn from a Snapshot at one instant. Evaluate
// computes them; Decide turns them into a status code per route.
type Facts struct {
	// Running: PostgreSQL answered within Bounds.PG and its last attempt
	// succeeded.
	Running bool
	// InRecovery is from the last answer (meaningful when Running).
	InRecovery bool
	// LeaderConfirmed: etcd was read successfully within Bounds.DCS.
	LeaderConfirmed bool
	// Leader is the leader key's holder in the last etcd view, "" if none.
	Leader string
	// HoldsLeader: LeaderConfirmed and Leader is this node.
	HoldsLeader bool
	// Failsafe: pg-lockd leads with failsafe_mode armed and its lease
	// validity, or the deadline failsafe rounds won while etcd is
	// unreachable, more than Bounds.ValidityMargin away: while etcd cannot
	// confirm the leader key, that deadline stands for it (pg-supervise
	// fences at it), so this node may serve as the primary.
	Failsafe bool
	// FailsafeActive is Patroni's failsafe_mode_is_active: Failsafe on the
	// leader; on another member, a promise given over POST /failsafe that
	// still binds.
	FailsafeActive bool
	// Primary is /primary's answer; Why says why not.
	Primary bool
	Why     string
	// StandbyLeader is /standby-leader's answer.
	StandbyLeader bool
	// Replica: running in recovery, not the standby leader, not tagged
	// noloadbalance — /replica before its lag, tag and replication_state
	// filters.
	Replica bool
	// LeaderOptime is the leader's last WAL position from etcd (the status
	// key's optime), 0 if unknown.
	LeaderOptime int64
	// Replayed is the replayed (standby) position; Received the received one.
	Replayed, Received int64
	// ReplicationState is "streaming", "in archive recovery" or "".
	ReplicationState string
	// Live and Ready are /liveness and /readiness.
	Live, Ready bool
	// State and Role are Patroni's state and role fields.
	State, Role string
	// Progress is the clone's (or restore's) while State is "creating
	// replica" (or "running custom bootstrap script"), nil otherwise and
	// before its first report.
	Progress *state.Progress
	// Paused is the maintenance mode (pg-lockd's view, else etcd's).
	Paused bool
	// SyncStandby and QuorumStandby are Patroni 4's sync_standby and
	// quorum_standby: PostgreSQL runs in recovery, the cluster is not a
	// standby cluster, synchronous_mode is on (SyncStandby) or quorum
	// (QuorumStandby), and the sync key of the last etcd view lists this
	// node as a standby (names compared case-insensitively, as PostgreSQL
	// compares synchronous_standby_names). Whether that view is fresh is
	// LeaderConfirmed.
	SyncStandby, QuorumStandby bool
}

// superviseServing are pg-supervise's states in which a primary may serve.
var superviseServing = map[string]bool{state.Running: true, state.Promoting: true}

// Evaluate draws the Facts from s at now with bounds b. It is pure: no I/O,
// no clock but now.
func Evaluate(s *Snapshot, b Bounds, now clock.Time) Facts { return evaluate(s, b, now, true) }

// evaluate is Evaluate; without explain it leaves Why terse, which spares
// the request path from formatting a message nobody reads.
func evaluate(s *Snapshot, b Bounds, now clock.Time, explain bool) Facts {
	var f Facts
	pgo := &s.PG
	f.Running = pgo.OK != 0 && pgo.OK > pgo.Failed && within(now, pgo.OK, b.PG)
	st := &pgo.Status
	f.InRecovery = st.InRecovery
	if f.Running && st.InRecovery {
		f.Replayed, f.Received = int64(st.ReplayLSN), int64(max(st.ReceiveLSN, st.ReplayLSN))
		switch {
		case st.ReceiverStatus == "streaming":
			f.ReplicationState = "streaming"
		case s.RestoreCommand:
			f.ReplicationState = "in archive recovery"
		}
	}
	if cl := s.DCS.Cluster; cl != nil && !s.Standalone {
		if cl.Leader != nil {
			f.Leader = cl.Leader.Name
		}
		f.LeaderOptime = cl.Status.Optime
		if f.LeaderOptime == 0 && cl.Leader != nil {
			if m := cl.Member(cl.Leader.Name); m != nil && m.Data.XLogLocation != nil {
				f.LeaderOptime = *m.Data.XLogLocation
			}
		}
	}
	f.LeaderConfirmed = !s.Standalone && s.DCS.Cluster != nil && within(now, s.DCS.Confirmed, b.DCS)
	f.HoldsLeader = f.LeaderConfirmed && f.Leader != "" && f.Leader == s.Name
	if l := s.Lockd; l != nil && !s.Standalone && l.Role == "leader" {
		f.Failsafe = l.FailsafeMode && max(l.ValidUntil, l.FailsafeUntil).Sub(now) > b.ValidityMargin
		f.FailsafeActive = l.FailsafeUntil.Sub(now) > b.ValidityMargin
	}
	if s.Promise != nil && s.Promise.Active(now) && !s.Standalone {
		f.FailsafeActive = true
	}
	f.Paused = s.DCS.Paused
	if s.Lockd != nil {
		f.Paused = s.Lockd.Paused
	}

	supOK, supWhy := superviseAllows(s.Supervise, b, now, explain)
	lockdOK, lockdWhy := lockdAllows(s.Lockd, b, now, explain)
	leaderWhy := leaderObjection(s, b, now, &f, explain)
	switch {
	case !f.Running:
		f.Why = "postgres is not answering"
		if pgo.Err != "" && explain {
			f.Why += ": " + pgo.Err
		}
	case s.Standalone && f.InRecovery:
		f.Why = "postgres is in recovery"
	case !supOK:
		f.Why = supWhy
	case s.Standalone:
		f.Primary = true
	case leaderWhy != "":
		f.Why = leaderWhy
	case !lockdOK:
		f.Why = lockdWhy
	case s.DCS.StandbyCluster:
		f.StandbyLeader = f.InRecovery
		f.Why = "standby cluster"
		if !f.InRecovery {
			f.Why = "postgres is not in recovery in a standby cluster"
		}
	case f.InRecovery:
		f.Why = "postgres is in recovery"
	default:
		f.Primary = true
	}
	f.Replica = f.Running && f.InRecovery && !s.NoLoadBalance && !f.StandbyLeader
	f.SyncStandby, f.QuorumStandby = syncListed(s, &f)

	f.State, f.Role, f.Progress = stateAndRole(s, &f)
	f.Live, f.Ready = liveness(s, b, now, &f), readiness(s, &f)
	return f
}

// syncListed says whether the last etcd view lists this running replica as
// a synchronous standby (synchronous_mode on) or a quorum standby
// (synchronous_mode quorum), as Patroni 4's status does: the sync key's
// standbys count whoever its leader is, and a standby cluster has no
// synchronous replication.
func syncListed(s *Snapshot, f *Facts) (sync, quorum bool) {
	cl := s.DCS.Cluster
	if !f.Running || !f.InRecovery || s.Standalone || cl == nil || cl.Sync == nil || s.DCS.StandbyCluster {
		return false, false
	}
	if !listsStandby(cl.Sync, s.Name) {
		return false, false
	}
	switch s.DCS.SyncMode {
	case config.SyncOn:
		return true, false
	case config.SyncQuorum:
		return false, true
	}
	return false, false
}

// listsStandby reports whether k names name among its standbys, ignoring
// case. An empty key (no leader) lists nobody.
func listsStandby(k *dcs.SyncKey, name string) bool {
	if k.Empty() || name == "" {
		return false
	}
	for _, n := range k.Standbys {
		if strings.EqualFold(n, name) {
			return true
		}
	}
	return false
}

func within(now, at clock.Time, bound time.Duration) bool {
	age := now.Sub(at)
	return at != 0 && age <= bound && age >= -time.Second
}

func dcsWhy(s *Snapshot, b Bounds, now clock.Time) string {
	switch {
	case s.DCS.Cluster == nil && s.DCS.Err != "":
		return "etcd not read yet: " + s.DCS.Err
	case s.DCS.Cluster == nil:
		return "etcd not read yet"
	case s.DCS.Err != "":
		return fmt.Sprintf("etcd last read %s ago (bound %s): %s", now.Sub(s.DCS.Confirmed).Round(time.Millisecond), b.DCS, s.DCS.Err)
	}
	return fmt.Sprintf("etcd last read %s ago (bound %s)", now.Sub(s.DCS.Confirmed).Round(time.Millisecond), b.DCS)
}

// superviseAllows: without supervise.json there is nothing to object;
// with it, the state must be running or promoting and the fence deadline
// in force, if any, more than the margin away.
func superviseAllows(sup *state.Supervise, b Bounds, now clock.Time, explain bool) (bool, string) {
	switch {
	case sup == nil:
		return true, ""
	case !superviseServing[sup.State]:
		if !explain {
			return false, "pg-supervise objects"
		}
		return false, "pg-supervise state is " + sup.State
	case sup.Deadline != 0 && sup.Deadline.Sub(now) <= b.ValidityMargin:
		if !explain {
			return false, "pg-supervise fences soon"
		}
		return false, fmt.Sprintf("pg-supervise fences in %s", sup.Deadline.Sub(now).Round(time.Millisecond))
	}
	return true, ""
}

// leaderObjection says why the leader key does not let this node serve as
// the primary, "" if it does: a confirmed etcd view must show this node
// holding the key, or, while etcd cannot confirm it, pg-lockd must lead
// with failsafe_mode armed (Facts.Failsafe): its lease validity, then the
// members' promises not to take the key, last until a deadline pg-supervise
// fences at.
func leaderObjection(s *Snapshot, b Bounds, now clock.Time, f *Facts, explain bool) string {
	switch {
	case f.LeaderConfirmed && f.Leader != "" && f.Leader != s.Name:
		if explain {
			return "leader key held by " + f.Leader
		}
		return "leader key held by another member"
	case !f.LeaderConfirmed && f.Failsafe:
		return ""
	case !f.LeaderConfirmed:
		if explain {
			return "leader key not confirmed: " + dcsWhy(s, b, now)
		}
		return "leader key not confirmed"
	case f.Leader == "":
		return "nobody holds the leader key"
	}
	return ""
}

// lockdAllows: without lockd.json there is nothing to object; with it,
// pg-lockd must say it leads and its lease validity (or the deadline
// failsafe rounds won, if later) must last longer than the margin. Both are
// absolute deadlines, so they hold even when the file is old.
func lockdAllows(l *state.Lockd, b Bounds, now clock.Time, explain bool) (bool, string) {
	switch {
	case l == nil:
		return true, ""
	case l.Role != "leader":
		if !explain {
			return false, "pg-lockd does not lead"
		}
		return false, "pg-lockd role is " + l.Role
	case max(l.ValidUntil, l.FailsafeUntil).Sub(now) <= b.ValidityMargin:
		if !explain {
			return false, "pg-lockd lease validity ends"
		}
		return false, fmt.Sprintf("pg-lockd lease validity ends in %s", max(l.ValidUntil, l.FailsafeUntil).Sub(now).Round(time.Millisecond))
	}
	return true, ""
}

// liveness: the refresh loop ran recently and, with etcd, pg-lockd's
// heartbeat is younger than ttl on a primary, 2·ttl elsewhere (Patroni's
// thresholds for its own loop), or the cluster is paused.
func liveness(s *Snapshot, b Bounds, now clock.Time, f *Facts) bool {
	if !within(now, s.At, b.Loop) {
		return false
	}
	if s.Standalone {
		return true
	}
	l := s.Lockd
	if l == nil {
		return false
	}
	if l.Paused {
		return true
	}
	limit := 2 * s.TTL
	if f.Running && !f.InRecovery {
		limit = s.TTL
	}
	return within(now, l.Updated, limit)
}

// readiness: the leader (primary or standby leader) is ready; any other
// node when PostgreSQL runs, etcd was confirmed (not standalone), and a
// replica is caught up: within maximum_lag_on_failover of the leader's
// optime (standalone: of what it received).
func readiness(s *Snapshot, f *Facts) bool {
	switch {
	case f.Primary || f.StandbyLeader:
		return true
	case !f.Running || !f.InRecovery:
		return false
	case s.Standalone:
		return f.Received-f.Replayed <= s.MaxLagOnFailover
	case !f.LeaderConfirmed:
		return false
	case f.LeaderOptime == 0:
		return true
	}
	return f.LeaderOptime-f.Replayed <= s.MaxLagOnFailover
}

// stateAndRole are Patroni's "state" and "role" (3.0.2 reports a primary as
// "master"), with the progress of a clone in course.
func stateAndRole(s *Snapshot, f *Facts) (string, string, *state.Progress) {
	if f.Running {
		switch {
		case !f.InRecovery:
			return "running", "master", nil
		case s.DCS.StandbyCluster && f.HoldsLeader:
			return "running", "standby_leader", nil
		}
		return "running", "replica", nil
	}
	st, role := stoppedStateAndRole(s)
	if b := s.Bootstrap; b != nil && (b.State == state.CreatingReplica || b.State == state.CustomBootstrap) {
		return b.State, role, b.Progress
	}
	var p *state.Progress
	if st == state.CreatingReplica {
		p = s.Supervise.Progress
	}
	return st, role, p
}

// stoppedStateAndRole are the state and role of a PostgreSQL that does not
// answer.
func stoppedStateAndRole(s *Snapshot) (string, string) {
	role := "uninitialized"
	if s.PG.Known {
		role = "replica"
		if !s.PG.Status.InRecovery {
			role = "master"
		}
	}
	sup := s.Supervise
	if sup == nil {
		if s.PG.Refused {
			return "stopped", role
		}
		return "unknown", role
	}
	switch sup.Role {
	case "primary":
		role = "master"
	case "replica":
		role = "replica"
	}
	switch sup.State {
	case state.Running, state.Promoting:
		return "unknown", role // up as far as pg-supervise knows, yet not answering
	case state.Starting:
		return "starting", role
	case state.Stopping, state.Demoting:
		return "stopping", role
	case state.Stopped:
		return "stopped", role
	case state.Crashed:
		return "crashed", role
	case state.Cloning:
		return state.CreatingReplica, role
	}
	return sup.State, role // fenced, rewinding: pg-ha's own words
}

// Body says what a response carries.
type Body uint8

// Bodies.
const (
	BodyNone     Body = iota // status code only
	BodyStatus               // this node's status JSON
	BodyCluster              // /cluster JSON
	BodyHistory              // /history JSON
	BodyConfig               // /config JSON
	BodyMetrics              // Prometheus text
	BodyFailsafe             // /failsafe JSON: the failsafe key
)

// Decide answers req from s at now: the status code and what the body
// carries. It is pure. The health checks follow Patroni's do_GET (4's for
// the synchronous ones): tag filters apply to every check but /primary,
// /leader and /standby-leader; the lag filter compares the leader's optime
// from etcd with the replayed position.
func Decide(s *Snapshot, b Bounds, now clock.Time, req Request) (int, Body) {
	f := evaluate(s, b, now, false)
	return DecideFacts(s, &f, req)
}

// DecideFacts is Decide with the Facts already evaluated.
func DecideFacts(s *Snapshot, f *Facts, req Request) (int, Body) {
	ok := func(b bool) int {
		if b {
			return http.StatusOK
		}
		return http.StatusServiceUnavailable
	}
	switch req.Route {
	case RouteLiveness:
		return ok(f.Live), BodyNone
	case RouteReadiness:
		return ok(f.Ready), BodyNone
	case RoutePatroni:
		return http.StatusOK, BodyStatus
	case RouteMetrics:
		return http.StatusOK, BodyMetrics
	case RouteCluster, RouteHistory:
		if s.Standalone || s.DCS.Cluster == nil {
			return http.StatusServiceUnavailable, BodyNone
		}
		if req.Route == RouteCluster {
			return http.StatusOK, BodyCluster
		}
		return http.StatusOK, BodyHistory
	case RouteFailsafe:
		// Patroni: the failsafe key of its last etcd view, else 502.
		if s.Standalone || s.DCS.Cluster == nil || s.DCS.Cluster.Failsafe == nil {
			return http.StatusBadGateway, BodyNone
		}
		return http.StatusOK, BodyFailsafe
	case RouteConfig:
		if s.Standalone || s.DCS.Cluster == nil {
			return http.StatusServiceUnavailable, BodyNone
		}
		if s.DCS.Cluster.Config == nil {
			return http.StatusBadGateway, BodyNone // Patroni: send_error(502)
		}
		return http.StatusOK, BodyConfig
	case RoutePrimary:
		return ok(f.Primary), BodyStatus
	case RouteLeader:
		return ok(f.Primary || f.StandbyLeader), BodyStatus
	case RouteStandbyLeader:
		return ok(f.StandbyLeader), BodyStatus
	}

	replica := f.Replica && !lagging(f, req)
	if req.ReplicationState != "" && req.ReplicationState != f.ReplicationState {
		replica = false
	}
	// Patroni answers the synchronous checks only with a view of etcd; pg-ha
	// also wants that view fresh before it calls a node synchronous, so that
	// a load balancer stops sending read-your-writes traffic to a standby
	// whose listing it can no longer vouch for.
	known := !s.Standalone && s.DCS.Cluster != nil
	syncReplica := f.SyncStandby && f.LeaderConfirmed && replica
	quorumReplica := f.QuorumStandby && f.LeaderConfirmed && replica
	var pass bool
	switch req.Route {
	case RouteReplica:
		pass = replica
	case RouteReadOnly:
		pass = f.Primary || f.StandbyLeader || replica
	case RouteHealth:
		pass = f.Running
	case RouteSync:
		pass = known && syncReplica
	case RouteQuorum:
		pass = known && quorumReplica
	case RouteAsync:
		// A replica the last view lists in either role is not asynchronous,
		// even when that view is old: /async errs towards fewer members.
		pass = known && replica && !f.SyncStandby && !f.QuorumStandby
	case RouteReadOnlySync:
		pass = known && (f.Primary || f.StandbyLeader || syncReplica)
	case RouteReadOnlyQuorum:
		pass = known && (f.Primary || f.StandbyLeader || quorumReplica)
	case RouteUnknown:
		pass = false
	}
	if pass {
		for _, t := range req.Tags {
			if v, ok := s.TagText[t.Key]; !ok || v != t.Value {
				pass = false
				break
			}
		}
	}
	return ok(pass), BodyStatus
}

// lagging is Patroni's is_lagging: the leader's optime is known and ahead
// of the replayed position by more than ?lag=.
func lagging(f *Facts, req Request) bool {
	if !req.HasLag || f.LeaderOptime == 0 {
		return false
	}
	limit := f.Replayed + req.MaxLag
	if req.MaxLag > 0 && limit < f.Replayed {
		return false // overflow: no limit reached
	}
	return f.LeaderOptime > limit
}
