package health

import (
	"time"

	"github.com/pg-ha/pg-ha/lib/clock"
	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/dcs"
	"github.com/pg-ha/pg-ha/lib/pg"
	"github.com/pg-ha/pg-ha/lib/state"
)

// Snapshot is everything pg-healthd knows about its node at one moment: the
// settings it was started with and the latest observation of each source.
// The background refreshers build a new Snapshot for every change and
// publish it; a published Snapshot is never modified, so any number of
// requests may read it at once. Every decision is a pure function of a
// Snapshot and the time of the request.
type Snapshot struct {
	// Node identity and settings.
	Name, Scope string
	// Version is pg-ha's version, reported as patroni.version.
	Version string
	// Standalone means there is no etcd: roles come from PostgreSQL alone.
	Standalone bool
	// Tags are the member's tags as Patroni reports them (the special tags
	// clonefrom, nofailover, noloadbalance and nosync only when true).
	Tags map[string]any
	// TagText is each tag's value as compared with ?tag_<key>=<value>
	// (Python's str(value).lower() for non-strings, as Patroni does).
	TagText map[string]string
	// NoLoadBalance is the noloadbalance tag.
	NoLoadBalance bool
	// MaxLagOnFailover is maximum_lag_on_failover in bytes: how far behind
	// the leader a replica may be and still be ready.
	MaxLagOnFailover int64
	// TTL is the leader lease's time to live.
	TTL time.Duration
	// RestoreCommand says a restore_command is configured, so a replica
	// without a streaming WAL receiver is "in archive recovery".
	RestoreCommand bool

	// At is when this snapshot was assembled (CLOCK_BOOTTIME).
	At clock.Time

	PG  PGObservation
	DCS DCSObservation

	// Lockd is pg-lockd's heartbeat file, nil when absent or unreadable.
	Lockd *state.Lockd
	// Supervise is pg-supervise's state file, nil when absent or unreadable.
	Supervise *state.Supervise
	// Bootstrap is pg-bootstrap's state file while a pg-bootstrap runs, nil
	// otherwise.
	Bootstrap *state.Bootstrap
	// Promise is the failsafe promise this node last gave a leader over
	// POST /failsafe, nil if none.
	Promise *state.Failsafe
}

// PGObservation is what the last queries of the local PostgreSQL returned.
type PGObservation struct {
	// Status is the last successful answer; Known says there was one.
	Status pg.Status
	Known  bool
	// OK is when the last successful query was sent, 0 if none.
	OK clock.Time
	// Failed is when the last failed attempt was sent, 0 if none. The server
	// counts as answering only while OK is after Failed.
	Failed clock.Time
	// Err is the last failure, "" after a success.
	Err string
	// Refused says the last failure was a refused connection or a missing
	// socket: nothing listens, PostgreSQL is stopped.
	Refused bool
}

// DCSObservation is the last view of etcd.
type DCSObservation struct {
	// Cluster is the last successful read, nil if none yet.
	Cluster *dcs.Cluster
	// Confirmed is when the request that produced Cluster was sent
	// (CLOCK_BOOTTIME), 0 if none.
	Confirmed clock.Time
	// LastSeen is the wall-clock time of Confirmed, for dcs_last_seen.
	LastSeen time.Time
	// Err is the last failure, "" after a success.
	Err string
	// StandbyCluster says the dynamic configuration describes a standby
	// cluster (standby_cluster with host, port or restore_command).
	StandbyCluster bool
	// Paused is the dynamic configuration's pause.
	Paused bool
	// SyncMode is the dynamic configuration's synchronous_mode ("" when
	// absent or unreadable: off).
	SyncMode config.SyncMode
}

// Bounds are how old each observation may be before it is refused.
type Bounds struct {
	// PG is the maximum age of the last successful PostgreSQL query; older,
	// PostgreSQL counts as not running.
	PG time.Duration
	// DCS is the maximum age of the last successful etcd read for the
	// leader key to count as confirmed.
	DCS time.Duration
	// ValidityMargin is how long before pg-lockd's lease validity (and
	// pg-supervise's fence deadline) runs out /primary turns 503, so that a
	// load balancer has marked the node down before it is fenced.
	ValidityMargin time.Duration
	// Loop is the maximum age of the snapshot itself for /liveness: older,
	// pg-healthd's own refresh loop is stuck.
	Loop time.Duration
}

// Default bounds. DCS is further capped at ttl/2 by DefaultBounds.
const (
	DefaultPGBound        = 2 * time.Second
	DefaultDCSBound       = 2 * time.Second
	DefaultValidityMargin = 1 * time.Second
	DefaultLoopBound      = 2 * time.Second
)

// DefaultBounds returns the bounds for a lease of ttl: PostgreSQL answered
// within 2 s; etcd confirmed within min(ttl/2, 2 s); /primary refused 1 s
// before the validity runs out; the refresh loop ran within 2 s.
func DefaultBounds(ttl time.Duration) Bounds {
	b := Bounds{PG: DefaultPGBound, DCS: DefaultDCSBound, ValidityMargin: DefaultValidityMargin, Loop: DefaultLoopBound}
	if ttl > 0 && ttl/2 < b.DCS {
		b.DCS = ttl / 2
	}
	return b
}
