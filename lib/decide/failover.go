package decide

import (
	"fmt"
	"time"
)

// FailoverKey is the failover key (Patroni's leader, member, scheduled_at)
// as a deciding node sees it.
type FailoverKey struct {
	// Leader is the leader a switchover starts from ("" for a failover).
	Leader string
	// Member is the requested candidate ("" for none).
	Member string
	// ScheduledAt is when the leader carries a switchover out; zero for now.
	ScheduledAt time.Time
	// Force: a manual failover (pg-failover --failover --force) that may
	// promote a candidate lagging more than maximum_lag_on_failover.
	Force bool
}

// Switchover reports whether k asks the named leader to hand over.
func (k FailoverKey) Switchover() bool { return k.Leader != "" }

// KeyVerdict is what a node without a leader makes of the failover key.
type KeyVerdict int

// Verdicts of WithoutLeader.
const (
	// KeyHonour: only the key's candidate races.
	KeyHonour KeyVerdict = iota
	// KeyWait: the candidate has not reported since the leader key vanished;
	// nobody races yet.
	KeyWait
	// KeyStale: the key does not apply (scheduled, no candidate, candidate
	// gone or not eligible, or not taken in time). It is deleted and the
	// normal election proceeds.
	KeyStale
)

// WithoutLeader judges the failover key of e (not nil) when nobody holds
// the leader key, as Patroni does: a scheduled request is for the leader
// alone at its time, so one not yet due (or overdue by more than Late) is
// stale here — a due one is the leader handing over; a request for a candidate is
// honoured only while that candidate is eligible — running, not tagged
// nofailover, failover_priority above 0 and, unless forced, within
// maximum_lag_on_failover of the last leader position — and only for
// KeyGrace after the leader key vanished (or the key was written), so that a candidate that does not
// take the key (it lacks the old primary's shutdown checkpoint, or its
// pg-lockd is gone) does not block the election. It is pure.
func WithoutLeader(e Election) (KeyVerdict, string) {
	k := *e.Failover
	switch {
	case !k.ScheduledAt.IsZero() && e.Now.Before(k.ScheduledAt):
		return KeyStale, "a switchover scheduled at " + k.ScheduledAt.Format(time.RFC3339) +
			" is carried out only by its leader at its time, and the leader is gone"
	case !k.ScheduledAt.IsZero() && e.Now.Sub(k.ScheduledAt) > e.Late:
		return KeyStale, "its scheduled time " + k.ScheduledAt.Format(time.RFC3339) + " is long past"
	case k.Member == "":
		return KeyStale, "the failover key names no candidate"
	case e.KeyGrace > 0 && e.KeyWaited > e.KeyGrace:
		return KeyStale, fmt.Sprintf("%s did not take the leader key within %s", k.Member, e.KeyGrace)
	}
	var target *Member
	if e.Self.Name == k.Member {
		target = &e.Self
	}
	for i := range e.Others {
		if target == nil && e.Others[i].Name == k.Member {
			target = &e.Others[i]
		}
	}
	if target == nil {
		return KeyStale, k.Member + " is not a member"
	}
	if !target.Fresh && !e.SettleExpired {
		return KeyWait, "waiting for " + k.Member + ", the requested candidate, to report"
	}
	if !target.Fresh {
		return KeyStale, k.Member + ", the requested candidate, did not report"
	}
	last := e.LastLeaderPosition
	if k.Force {
		last = 0 // forced: no lag bound
	}
	if ok, why := Eligible(*target, last, e.MaxLag); !ok {
		return KeyStale, k.Member + ", the requested candidate, is not eligible: " + why
	}
	return KeyHonour, "the requested candidate"
}

// LeaderAction is what the leader does about the failover key.
type LeaderAction int

// Actions of AsLeader.
const (
	// LeaderKeep: nothing yet (a scheduled switchover not due).
	LeaderKeep LeaderAction = iota
	// LeaderDrop: delete the key, it is stale or invalid.
	LeaderDrop
	// LeaderHandOver: switch over to the key's candidate now.
	LeaderHandOver
	// LeaderDone: this node is the candidate; the key is deleted once it
	// runs as primary.
	LeaderDone
)

// AsLeader decides what leader self does with failover key k at wall time
// now, with Patroni's semantics: a key naming another leader is stale
// (that leader is gone); a key naming self as the candidate is done; a
// switchover is carried out at its scheduled time, and one whose time
// passed more than late ago without being carried out (the leader was down
// or paused) is stale; a key without a candidate is invalid. It is pure.
func AsLeader(k FailoverKey, self string, now time.Time, late time.Duration) (LeaderAction, string) {
	switch {
	case k.Member == self:
		return LeaderDone, "this node is the requested candidate"
	case k.Leader != "" && k.Leader != self:
		return LeaderDrop, "it names " + k.Leader + " as the leader, but " + self + " leads"
	case k.Member == "":
		return LeaderDrop, "it names no candidate"
	case !k.ScheduledAt.IsZero() && now.Before(k.ScheduledAt):
		return LeaderKeep, "scheduled at " + k.ScheduledAt.Format(time.RFC3339)
	case !k.ScheduledAt.IsZero() && now.Sub(k.ScheduledAt) > late:
		return LeaderDrop, fmt.Sprintf("its scheduled time %s passed %s ago", k.ScheduledAt.Format(time.RFC3339),
			now.Sub(k.ScheduledAt).Round(time.Second))
	}
	return LeaderHandOver, "switchover to " + k.Member
}

// HasCheckpoint reports whether a switchover candidate has received the old
// primary's shutdown checkpoint: its position lies beyond the checkpoint's
// location (the old primary publishes the location, where the record
// starts, when it releases the key). Without the location it has not. It is
// pure.
func HasCheckpoint(position, checkpoint int64) bool {
	return checkpoint > 0 && position > checkpoint
}
