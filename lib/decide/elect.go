package decide

import (
	"fmt"
	"time"
)

// Member is one member as pg-lockd sees it in etcd (or, for itself, from
// its own PostgreSQL just now).
type Member struct {
	Name       string
	Running    bool  // PostgreSQL runs (state "running")
	Primary    bool  // it runs as a primary (not in recovery)
	Timeline   int   // its timeline
	Position   int64 // its WAL position (xlog_location)
	NoFailover bool  // tagged nofailover
	// PrePromoteFailed: its pre_promote script refused a promotion a
	// moment ago (less than ttl), so another candidate is to win.
	PrePromoteFailed bool
	Priority         int // failover_priority; 0 means never
	// Fresh: the member reported after the leader key vanished, so its
	// position is current.
	Fresh bool
}

// Election is what a node without a leader knows when deciding whether to
// race for the leader key.
type Election struct {
	Self   Member
	Others []Member
	// LastLeaderPosition is the last position the leader published
	// (status.optime); 0 if unknown.
	LastLeaderPosition int64
	// MaxLag is maximum_lag_on_failover in bytes.
	MaxLag int64
	// Paused: maintenance mode, no automatic failover.
	Paused bool
	// Failover is the failover key, nil if there is none (see
	// WithoutLeader).
	Failover *FailoverKey
	// KeyWaited is how long the failover key's candidate has been waited
	// for: since the leader key vanished or the failover key was written,
	// whichever is later. KeyGrace is how long it is waited for (0:
	// forever).
	KeyWaited, KeyGrace time.Duration
	// Now is the wall-clock time, for the failover key's scheduled_at;
	// Late is how late a scheduled switchover may still be carried out.
	Now  time.Time
	Late time.Duration
	// SettleExpired: the wait for every running member to report a fresh
	// position is over; members that did not report are ignored.
	SettleExpired bool
	// SyncMode and SyncKey are synchronous replication as configured and as
	// the sync key says it is; see SyncPromotable.
	SyncMode SyncMode
	SyncKey  SyncKey
	// CheckTimeline is check_timeline: a node on a timeline older than
	// ClusterTimeline (the last one the history key knows) never races.
	CheckTimeline   bool
	ClusterTimeline int
}

// syncActive reports whether the sync key restricts who may be promoted.
func (e Election) syncActive() bool { return e.SyncMode != SyncOff && e.SyncKey.Leader != "" }

// Eligible says whether m may become the leader given the last leader's
// position and the lag allowed, and why not.
func Eligible(m Member, lastLeaderPosition, maxLag int64) (bool, string) {
	switch {
	case !m.Running:
		return false, "PostgreSQL is not running"
	case m.NoFailover:
		return false, "tagged nofailover"
	case m.Priority <= 0:
		return false, "failover_priority is 0"
	case m.PrePromoteFailed:
		return false, "its pre_promote script refused a promotion less than ttl ago"
	case lastLeaderPosition > 0 && m.Position < lastLeaderPosition-maxLag:
		return false, fmt.Sprintf("lags %d bytes behind the last leader position, more than maximum_lag_on_failover (%d)",
			lastLeaderPosition-m.Position, maxLag)
	}
	return true, ""
}

// Ahead reports whether a is a better leader than b: a later timeline, then
// more WAL, then a higher failover_priority, then the smaller name.
func Ahead(a, b Member) bool {
	if a.Timeline != b.Timeline {
		return a.Timeline > b.Timeline
	}
	if a.Position != b.Position {
		return a.Position > b.Position
	}
	if a.Priority != b.Priority {
		return a.Priority > b.Priority
	}
	return a.Name < b.Name
}

// Elect decides whether this node races for the free leader key, and why.
// A failover key is judged by WithoutLeader first: honoured, only its
// candidate races — in a switchover only once it has received the old
// primary's shutdown checkpoint (LastLeaderPosition); stale, the normal
// election below proceeds (the caller deletes the key).
func Elect(e Election) (bool, string) {
	self := e.Self
	// An operator's switchover or failover is honoured even in maintenance
	// mode, as in Patroni.
	if e.Failover != nil {
		switch v, why := WithoutLeader(e); v {
		case KeyWait:
			return false, why
		case KeyHonour:
			k := e.Failover
			if k.Member != self.Name {
				return false, "a failover to " + k.Member + " is requested"
			}
			if k.Switchover() && !HasCheckpoint(self.Position, e.LastLeaderPosition) {
				return false, fmt.Sprintf("the requested candidate has not received the old primary's shutdown checkpoint at %d (has %d)",
					e.LastLeaderPosition, self.Position)
			}
			if k.Force {
				return true, "the requested failover target, forced: its lag is not checked and the WAL it lacks is lost"
			}
			if e.syncActive() && e.SyncMode == SyncOn && !e.SyncKey.Lists(self.Name) {
				return false, "the requested failover target is not a synchronous standby: it may lack acknowledged commits (force the failover to accept that)"
			}
			return true, "the requested failover target"
		}
	}
	if e.Paused {
		if self.Running && self.Primary {
			return true, "paused, but this node runs the primary"
		}
		return false, "paused: no automatic failover"
	}
	last := e.LastLeaderPosition
	if e.syncActive() && e.SyncMode == SyncOn && e.SyncKey.Lists(self.Name) {
		// A synchronous standby has every acknowledged commit: what it
		// lacks of the last leader position was never acknowledged.
		last = 0
	}
	if ok, why := Eligible(self, last, e.MaxLag); !ok {
		return false, why
	}
	if e.CheckTimeline && self.Timeline < e.ClusterTimeline {
		return false, fmt.Sprintf("on timeline %d, behind the cluster's timeline %d (check_timeline)", self.Timeline, e.ClusterTimeline)
	}
	if e.syncActive() {
		var peers []SyncPeer
		for _, o := range e.Others {
			peers = append(peers, SyncPeer{Name: o.Name, Reachable: o.Fresh && o.Running, Primary: o.Primary,
				Position: o.Position, NoFailover: o.NoFailover || o.Priority <= 0})
		}
		if ok, why := SyncPromotable(e.SyncMode, self.Name, self.Position, e.SyncKey, peers); !ok {
			return false, why
		}
	}
	for _, o := range e.Others {
		if o.Name == self.Name {
			continue
		}
		if e.syncActive() && e.SyncMode == SyncOn && !e.SyncKey.Lists(o.Name) {
			continue // may not be promoted: not a synchronous standby
		}
		if ok, _ := Eligible(o, last, e.MaxLag); !ok {
			continue
		}
		if !o.Fresh {
			if e.SettleExpired {
				continue
			}
			return false, "waiting for " + o.Name + " to report its position"
		}
		if Ahead(o, self) {
			return false, o.Name + " is ahead"
		}
	}
	if e.syncActive() {
		return true, "the most up-to-date eligible member that has every acknowledged commit (synchronous_mode " + e.SyncMode.String() + ")"
	}
	return true, "the most up-to-date eligible member"
}
