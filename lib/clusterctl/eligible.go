package clusterctl

import (
	"fmt"
	"sort"
	"strings"

	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/dcs"
	"github.com/pg-ha/pg-ha/lib/decide"
)

// Settings are the dynamic settings the decisions need: the YAML's, with
// the config key applied (see SettingsOf).
type Settings struct {
	// MaxLag is maximum_lag_on_failover in bytes.
	MaxLag int64
	// Paused is the maintenance mode (the config key's "pause").
	Paused bool
	// SyncMode is synchronous_mode ("" counts as off); SyncStrict is
	// synchronous_mode_strict.
	SyncMode   config.SyncMode
	SyncStrict bool
	// StandbyCluster: the dynamic configuration describes a standby
	// cluster, which has no synchronous replication.
	StandbyCluster bool
}

// SettingsOf resolves the settings the way pg-lockd does: cfg's dynamic
// settings with the config key's JSON on top. An unreadable config key is
// ignored, as pg-lockd ignores it.
func SettingsOf(cfg *config.Config, cl *dcs.Cluster) Settings {
	d := cfg.Dynamic()
	if cl != nil && cl.Config != nil {
		if nd, err := d.WithJSON(cl.Config, cfg); err == nil {
			d = nd
		}
	}
	return Settings{MaxLag: d.MaximumLagOnFailover, Paused: d.Pause, SyncMode: d.SyncMode, SyncStrict: d.SyncStrict,
		StandbyCluster: d.StandbyCluster != nil}
}

// Assessment says whether one member could become the leader now.
type Assessment struct {
	Name     string `json:"name"`
	Leader   bool   `json:"leader"`
	Role     string `json:"role"`
	State    string `json:"state"`
	Timeline int    `json:"timeline,omitempty"`
	// Position is the member's xlog_location (nil: not published).
	Position *int64 `json:"position,omitempty"`
	// Lag is how far Position is behind the leader's position in bytes
	// (never negative); nil when unknown or for the leader itself.
	Lag *int64 `json:"lag_bytes,omitempty"`
	// ReplicationState is the member's WAL receiver state ("streaming", …).
	ReplicationState string `json:"replication_state,omitempty"`
	Eligible         bool   `json:"eligible"`
	// Reasons say why it is not eligible, one per problem; empty when it is.
	Reasons []string `json:"reasons,omitempty"`
	// Forced is true when the member is eligible only because a forced
	// failover accepts its lag (Reasons then says how much).
	Forced bool `json:"forced,omitempty"`
	// lagOnly: the lag is the one reason it is not eligible.
	lagOnly bool

	member decide.Member
}

// Why joins Reasons for a message ("" when eligible).
func (a Assessment) Why() string { return strings.Join(a.Reasons, "; ") }

// LeaderPosition is the best known WAL position of the current leader: the
// larger of status.optime and the leader's published xlog_location (both
// refreshed once per loop_wait). Without a leader it is status.optime, the
// last position the previous leader published. 0 means unknown.
func LeaderPosition(cl *dcs.Cluster) int64 {
	pos := cl.Status.Optime
	if cl.Leader != nil {
		if m := cl.Member(cl.Leader.Name); m != nil && m.Data.XLogLocation != nil && *m.Data.XLogLocation > pos {
			pos = *m.Data.XLogLocation
		}
	}
	return pos
}

// decideMember converts a member key for lib/decide, the way pg-lockd does:
// a member without a published position does not count as running.
func decideMember(m dcs.Member) decide.Member {
	tags := config.Tags(m.Data.Tags)
	dm := decide.Member{
		Name:       m.Name,
		Running:    m.Data.State == "running" && m.Data.XLogLocation != nil,
		Primary:    m.Data.Role == "primary" || m.Data.Role == "master",
		Timeline:   m.Data.Timeline,
		NoFailover: tags.NoFailover(),
		Priority:   tags.FailoverPriority(),
		Fresh:      true,

		PrePromoteFailed: m.Data.PrePromoteFailed,
	}
	if m.Data.XLogLocation != nil {
		dm.Position = *m.Data.XLogLocation
	}
	return dm
}

// Assess says, for every member, whether it may become the leader now and
// why not. With a leader (a switchover) a candidate must pass
// decide.Eligible against the leader's position, stream from the leader and
// be on its timeline; without one (a failover) decide.Eligible against the
// last published position (status.optime) is enough. It is pure.
func Assess(cl *dcs.Cluster, s Settings) []Assessment {
	leaderPos := LeaderPosition(cl)
	leader := ""
	leaderTL := 0
	if cl.Leader != nil {
		leader = cl.Leader.Name
		if m := cl.Member(leader); m != nil {
			leaderTL = m.Data.Timeline
		}
	}
	out := make([]Assessment, 0, len(cl.Members))
	for _, m := range cl.Members {
		d := m.Data
		a := Assessment{
			Name: m.Name, Leader: m.Name == leader, Role: d.Role, State: d.State, Timeline: d.Timeline,
			Position: d.XLogLocation, ReplicationState: d.ReplicationState, member: decideMember(m),
		}
		if !a.Leader && d.XLogLocation != nil && leaderPos > 0 {
			lag := max(leaderPos-*d.XLogLocation, 0)
			a.Lag = &lag
		}
		if a.Leader {
			a.Reasons = []string{"is the leader"}
			out = append(out, a)
			continue
		}
		if ok, why := decide.Eligible(a.member, leaderPos, s.MaxLag); !ok {
			a.Reasons = append(a.Reasons, explain(why, a, s, leader != ""))
			// lib/decide checks lag last: a lag reason means the rest passed.
			a.lagOnly = strings.HasPrefix(why, "lags")
		}
		if leader != "" && a.member.Running {
			if d.ReplicationState != "streaming" {
				rs := d.ReplicationState
				if rs == "" {
					rs = "none"
				}
				a.Reasons = append(a.Reasons, fmt.Sprintf("not streaming from the leader (WAL receiver: %s)", rs))
			}
			if leaderTL > 0 && d.Timeline != leaderTL {
				a.Reasons = append(a.Reasons, fmt.Sprintf("on timeline %d, the leader on %d", d.Timeline, leaderTL))
			}
		}
		if key := syncKey(cl); s.SyncMode == config.SyncOn && !s.StandbyCluster && key.Leader != "" && !key.Lists(m.Name) {
			if leader != "" {
				_, why := decide.SyncFailoverTarget(decide.SyncOn, key, m.Name, true)
				a.Reasons = append(a.Reasons, why)
			} else {
				// A failover may go to it, forced: what it lacks of the
				// acknowledged commits is lost.
				a.Reasons = append(a.Reasons, "not a synchronous standby (sync_standby: "+strings.Join(key.Standbys, ",")+"), so it may lack acknowledged commits")
				a.lagOnly = len(a.Reasons) == 1 || a.lagOnly && len(a.Reasons) == 2
				a.Eligible = false
				out = append(out, a)
				continue
			}
		}
		a.Eligible = len(a.Reasons) == 0
		a.lagOnly = a.lagOnly && len(a.Reasons) == 1
		out = append(out, a)
	}
	return out
}

// syncKey converts the cluster's sync key; empty if absent.
func syncKey(cl *dcs.Cluster) decide.SyncKey {
	if cl.Sync == nil {
		return decide.SyncKey{}
	}
	return decide.SyncKey{Leader: cl.Sync.Leader, Standbys: cl.Sync.Standbys, Quorum: cl.Sync.Quorum}
}

// explain rewrites lib/decide's reason for operators: the state the member
// published, and the lag in human units.
func explain(why string, a Assessment, s Settings, withLeader bool) string {
	switch {
	case !a.member.Running:
		state := a.State
		if state == "" {
			state = "unknown"
		}
		if state == "running" {
			return "PostgreSQL is not running (no WAL position published)"
		}
		return "PostgreSQL is not running (state " + state + ")"
	case strings.HasPrefix(why, "lags") && a.Lag != nil:
		behind := "the leader"
		if !withLeader {
			behind = "the last leader's last known position"
		}
		return fmt.Sprintf("lags %s behind %s, more than maximum_lag_on_failover (%s)", Bytes(*a.Lag), behind, Bytes(s.MaxLag))
	}
	return why
}

// Find returns the assessment of name, or nil.
func Find(as []Assessment, name string) *Assessment {
	for i := range as {
		if as[i].Name == name {
			return &as[i]
		}
	}
	return nil
}

// Best returns the eligible member that is decide.Ahead of every other
// eligible one (later timeline, then more WAL, then higher
// failover_priority, then the smaller name), or "" if none is eligible. It
// is pure.
func Best(as []Assessment) string {
	var el []decide.Member
	for _, a := range as {
		if a.Eligible {
			el = append(el, a.member)
		}
	}
	if len(el) == 0 {
		return ""
	}
	sort.Slice(el, func(i, j int) bool { return decide.Ahead(el[i], el[j]) })
	return el[0].Name
}

// Bytes formats a byte count for messages: "512 bytes", "64.0 kB",
// "1 MB", "1.5 MB", "52 MB", "2.0 GB" (binary units, as PostgreSQL's
// pg_size_pretty).
func Bytes(n int64) string {
	const (
		kB = 1 << 10
		MB = 1 << 20
		GB = 1 << 30
	)
	neg := ""
	if n < 0 {
		neg, n = "-", -n
	}
	switch {
	case n < kB:
		return fmt.Sprintf("%s%d bytes", neg, n)
	case n < MB:
		return fmt.Sprintf("%s%.1f kB", neg, float64(n)/kB)
	case n < GB:
		if n%MB == 0 || n >= 10*MB {
			return fmt.Sprintf("%s%d MB", neg, (n+MB/2)/MB)
		}
		return fmt.Sprintf("%s%.1f MB", neg, float64(n)/MB)
	}
	return fmt.Sprintf("%s%.1f GB", neg, float64(n)/GB)
}
