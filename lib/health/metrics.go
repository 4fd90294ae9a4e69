package health

import (
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pg-ha/pg-ha/lib/state"
)

// collector exports the latest snapshot at scrape time: Patroni's
// patroni_* metrics under the same names (so existing dashboards keep
// working) and pg-ha's own pgha_* ones.
type collector struct {
	s     *Service
	descs map[string]*prometheus.Desc
	sup   *prometheus.Desc
}

type metricDef struct {
	name, help string
	counter    bool
}

var metricDefs = []metricDef{
	{"patroni_version", "Version without periods, two digits per component (pg-ha's version).", false},
	{"patroni_postgres_running", "Value is 1 if Postgres is running, 0 otherwise.", false},
	{"patroni_postmaster_start_time", "Epoch seconds since Postgres started.", false},
	{"patroni_master", "Value is 1 if this node is the leader, 0 otherwise.", false},
	{"patroni_primary", "Value is 1 if this node is the leader, 0 otherwise.", false},
	{"patroni_xlog_location", "Current location of the Postgres transaction log, 0 if this node is not the leader.", true},
	{"patroni_standby_leader", "Value is 1 if this node is the standby_leader, 0 otherwise.", false},
	{"patroni_replica", "Value is 1 if this node is a replica, 0 otherwise.", false},
	{"patroni_sync_standby", "Value is 1 if this node is a sync standby replica, 0 otherwise.", false},
	{"patroni_quorum_standby", "Value is 1 if this node is a quorum standby replica, 0 otherwise.", false},
	{"patroni_xlog_received_location", "Current location of the received Postgres transaction log, 0 if this node is not a replica.", true},
	{"patroni_xlog_replayed_location", "Current location of the replayed Postgres transaction log, 0 if this node is not a replica.", true},
	{"patroni_xlog_replayed_timestamp", "Current timestamp of the replayed Postgres transaction log, 0 if null.", false},
	{"patroni_xlog_paused", "Value is 1 if the Postgres xlog is paused, 0 otherwise.", false},
	{"patroni_postgres_server_version", "Version of Postgres (if running), 0 otherwise.", false},
	{"patroni_cluster_unlocked", "Value is 1 if the cluster is unlocked, 0 if locked.", false},
	{"patroni_failsafe_mode_is_active", "Value is 1 if failsafe mode is active, 0 if inactive.", false},
	{"patroni_postgres_timeline", "Postgres timeline of this node (if running), 0 otherwise.", true},
	{"patroni_dcs_last_seen", "Epoch timestamp when DCS was last contacted successfully.", false},
	{"patroni_pending_restart", "Value is 1 if the node needs a restart, 0 otherwise.", false},
	{"patroni_is_paused", "Value is 1 if auto failover is disabled, 0 otherwise.", false},

	{"pgha_primary_check", "Value is 1 if /primary answers 200 now, 0 otherwise.", false},
	{"pgha_replica_check", "Value is 1 if /replica (no filters) answers 200 now, 0 otherwise.", false},
	{"pgha_leader_confirmed", "Value is 1 if the etcd view was confirmed within the staleness bound, 0 otherwise.", false},
	{"pgha_replication_lag_bytes", "Bytes the replayed position is behind the leader's optime in etcd (replicas with a known optime only).", false},
	{"pgha_lease_valid_seconds", "Seconds until pg-lockd's lease validity runs out (negative: ran out), when lockd.json exists.", false},
	{"pgha_lockd_heartbeat_age_seconds", "Age of pg-lockd's heartbeat file, when it exists.", false},
	{"pgha_postgres_observation_age_seconds", "Age of the last successful PostgreSQL status query.", false},
	{"pgha_etcd_observation_age_seconds", "Age of the last successful etcd read.", false},
}

// superviseStates are exported one-hot by pgha_supervise_state.
var superviseStates = []string{state.Starting, state.Running, state.Stopped, state.Crashed, state.Promoting,
	state.Demoting, state.Fenced, state.Rewinding, state.Cloning, state.Stopping}

func newCollector(s *Service) *collector {
	labels := prometheus.Labels{"scope": s.o.Scope}
	c := &collector{s: s, descs: map[string]*prometheus.Desc{}}
	for _, d := range metricDefs {
		c.descs[d.name] = prometheus.NewDesc(d.name, d.help, nil, labels)
	}
	c.sup = prometheus.NewDesc("pgha_supervise_state", "pg-supervise's state from supervise.json (1 for the current one), when it exists.",
		[]string{"state"}, labels)
	return c
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
	ch <- c.sup
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	v := c.s.view.Load()
	snap := v.snap
	now := c.s.clock.Now()
	f := Evaluate(snap, c.s.bounds, now)
	st := &snap.PG.Status
	kinds := map[string]bool{}
	for _, d := range metricDefs {
		kinds[d.name] = d.counter
	}
	emit := func(name string, val float64) {
		t := prometheus.GaugeValue
		if kinds[name] {
			t = prometheus.CounterValue
		}
		ch <- prometheus.MustNewConstMetric(c.descs[name], t, val)
	}
	b := func(x bool) float64 {
		if x {
			return 1
		}
		return 0
	}
	emit("patroni_version", paddedVersion(snap.Version))
	emit("patroni_postgres_running", b(f.Running))
	var start, location, received, replayed, version, timeline float64
	if f.Running {
		start = float64(st.PostmasterStart.UnixNano()) / 1e9
		version, timeline = float64(st.ServerVersion), float64(st.Timeline)
		if st.InRecovery {
			received, replayed = float64(f.Received), float64(f.Replayed)
		} else {
			location = float64(st.WriteLSN)
		}
	}
	emit("patroni_postmaster_start_time", start)
	emit("patroni_master", b(f.Role == "master"))
	emit("patroni_primary", b(f.Role == "master"))
	emit("patroni_xlog_location", location)
	emit("patroni_standby_leader", b(f.Role == "standby_leader"))
	emit("patroni_replica", b(f.Role == "replica"))
	emit("patroni_sync_standby", b(f.SyncStandby))
	emit("patroni_quorum_standby", b(f.QuorumStandby))
	emit("patroni_xlog_received_location", received)
	emit("patroni_xlog_replayed_location", replayed)
	emit("patroni_xlog_replayed_timestamp", 0)
	emit("patroni_xlog_paused", b(f.Running && st.InRecovery && st.ReplayPaused))
	emit("patroni_postgres_server_version", version)
	emit("patroni_cluster_unlocked", b(!snap.Standalone && (snap.DCS.Cluster == nil || snap.DCS.Cluster.Leader == nil)))
	emit("patroni_failsafe_mode_is_active", 0)
	emit("patroni_postgres_timeline", timeline)
	var seen float64
	if !snap.DCS.LastSeen.IsZero() {
		seen = float64(snap.DCS.LastSeen.Unix())
	}
	emit("patroni_dcs_last_seen", seen)
	emit("patroni_pending_restart", b(f.Running && st.PendingRestart))
	emit("patroni_is_paused", b(f.Paused))

	emit("pgha_primary_check", b(f.Primary))
	emit("pgha_replica_check", b(f.Replica))
	emit("pgha_leader_confirmed", b(f.LeaderConfirmed))
	if f.Running && f.InRecovery && f.LeaderOptime != 0 {
		emit("pgha_replication_lag_bytes", float64(max(f.LeaderOptime-f.Replayed, 0)))
	}
	if l := snap.Lockd; l != nil {
		emit("pgha_lease_valid_seconds", l.ValidUntil.Sub(now).Seconds())
		emit("pgha_lockd_heartbeat_age_seconds", now.Sub(l.Updated).Seconds())
	}
	if snap.PG.OK != 0 {
		emit("pgha_postgres_observation_age_seconds", now.Sub(snap.PG.OK).Seconds())
	}
	if snap.DCS.Confirmed != 0 {
		emit("pgha_etcd_observation_age_seconds", now.Sub(snap.DCS.Confirmed).Seconds())
	}
	if sup := snap.Supervise; sup != nil {
		for _, name := range superviseStates {
			ch <- prometheus.MustNewConstMetric(c.sup, prometheus.GaugeValue, b(sup.State == name), name)
		}
	}
}

// paddedVersion turns "1.2.3-dev" into 010203, as Patroni reports its own.
func paddedVersion(v string) float64 {
	v, _, _ = strings.Cut(v, "-")
	var s strings.Builder
	for _, part := range strings.Split(v, ".") {
		n, err := strconv.Atoi(part)
		if err != nil || n < 0 || n > 99 {
			return 0
		}
		if n < 10 {
			s.WriteByte('0')
		}
		s.WriteString(strconv.Itoa(n))
	}
	f, _ := strconv.ParseFloat(s.String(), 64)
	return f
}
