package clusterctl

import (
	"fmt"
	"strings"
	"time"

	"github.com/pg-ha/pg-ha/lib/dcs"
)

// Outcome is where a switchover or failover stands.
type Outcome int

// Outcomes of Judge.
const (
	// Waiting: not finished yet.
	Waiting Outcome = iota
	// Done: the candidate holds the leader key, runs as a primary, and the
	// request is gone from etcd.
	Done
	// Dropped: the request is gone but the old leader still leads (a
	// switchover the leader refused).
	Dropped
	// Elsewhere: another member than the candidate leads now.
	Elsewhere
	// Replaced: the failover key now holds someone else's request.
	Replaced
)

// IsPrimary reports whether the member key says PostgreSQL runs as a
// primary (pg-lockd publishes role from pg_is_in_recovery()).
func IsPrimary(m *dcs.Member) bool {
	return m != nil && (m.Data.Role == "primary" || m.Data.Role == "master") && m.Data.State == "running"
}

// isStandbyLeader says whether m runs as a standby cluster's standby
// leader: what a switchover there ends with, nothing being promoted.
func isStandbyLeader(m *dcs.Member) bool {
	return m != nil && m.Data.Role == "standby_leader" && m.Data.State == "running"
}

// Judge says where plan p stands in cl, once p's failover key was
// written. It is pure.
func Judge(p Plan, cl *dcs.Cluster) Outcome {
	ld := ""
	if cl.Leader != nil {
		ld = cl.Leader.Name
	}
	ours := p.pending(cl)
	switch {
	case ld == p.Candidate && (IsPrimary(cl.Member(p.Candidate)) || isStandbyLeader(cl.Member(p.Candidate))) && !ours:
		return Done
	case ld != "" && ld != p.Candidate && ld != p.Leader:
		return Elsewhere
	case cl.Failover != nil && !ours:
		return Replaced
	case cl.Failover == nil && ld != "" && ld == p.Leader:
		return Dropped
	}
	return Waiting
}

// Progress describes, for a timeout message, what is still missing before
// p is done.
func Progress(p Plan, cl *dcs.Cluster) string {
	var parts []string
	switch {
	case cl.Leader == nil:
		parts = append(parts, "nobody holds the leader key")
	case cl.Leader.Name == p.Candidate:
		parts = append(parts, p.Candidate+" holds the leader key")
	default:
		parts = append(parts, cl.Leader.Name+" still holds the leader key")
	}
	if m := cl.Member(p.Candidate); m == nil {
		parts = append(parts, p.Candidate+" has no member key")
	} else {
		parts = append(parts, fmt.Sprintf("%s is %s, %s", p.Candidate, orUnknown(m.Data.Role), orUnknown(m.Data.State)))
	}
	if p.pending(cl) {
		if p.ScheduledAt != nil {
			parts = append(parts, "the request (scheduled at "+p.ScheduledAt.Format("15:04:05Z07:00")+") is still in etcd")
		} else {
			parts = append(parts, "the request is still in etcd")
		}
	}
	return strings.Join(parts, "; ")
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// pending reports whether cl's failover key is p's request.
func (p Plan) pending(cl *dcs.Cluster) bool {
	f := cl.Failover
	if f == nil {
		return false
	}
	want := p.FailoverKey()
	if f.Leader != want.Leader || f.Member != want.Member || (f.ScheduledAt == nil) != (want.ScheduledAt == nil) {
		return false
	}
	// scheduled_at is stored with microseconds at most.
	return f.ScheduledAt == nil || f.ScheduledAt.Truncate(time.Microsecond).Equal(want.ScheduledAt.Truncate(time.Microsecond))
}
