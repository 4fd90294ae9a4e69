package decide

import "time"

// Guard is what a leading pg-lockd knows about being cut off.
type Guard struct {
	// Unrenewed is how long ago the last successful keepalive was sent.
	Unrenewed time.Duration
	// RetryTimeout is retry_timeout.
	RetryTimeout time.Duration
	// StatusKnown: the local server answered the replication query.
	StatusKnown bool
	// Receiving is the number of standbys receiving this primary's WAL now.
	Receiving int
}

// FenceEarly says whether a leader fences its primary before the lease
// deadline: when the lease has not been renewed for retry_timeout and no
// standby receives the primary's WAL (or the server does not answer), every
// write it acknowledges from then on is lost in the failover that follows.
// With a standby receiving, the writes survive on it, so it goes on to the
// deadline.
func FenceEarly(g Guard) bool {
	return g.Unrenewed >= g.RetryTimeout && (!g.StatusKnown || g.Receiving == 0)
}

// OwnKey is what a node knows when the leader key names it but sits on a
// lease other than the one it renews: a previous pg-lockd's.
type OwnKey struct {
	// Adopted: this pg-lockd renewed that lease just now and keeps it.
	Adopted bool
	// Paused: maintenance mode.
	Paused bool
}

// OwnKeyAction is what to do about the leader key of a previous incarnation.
type OwnKeyAction int

// OwnKeyActions.
const (
	// OwnKeyLead: the lease is ours again; lead under the key.
	OwnKeyLead OwnKeyAction = iota
	// OwnKeyHold: send no new role: pg-supervise keeps the line it has
	// (a primary keeps running until that line's deadline).
	OwnKeyHold
	// OwnKeyStandby: stay read-only while the key expires with its lease.
	OwnKeyStandby
)

var ownKeyNames = [...]string{"lead", "hold", "standby"}

func (a OwnKeyAction) String() string { return ownKeyNames[a] }

// DecideOwnKey decides about a leader key of this node's name on a lease
// this pg-lockd does not renew. In maintenance mode nothing automatic may
// demote the primary, so a key that cannot be adopted changes nothing.
func DecideOwnKey(k OwnKey) OwnKeyAction {
	switch {
	case k.Adopted:
		return OwnKeyLead
	case k.Paused:
		return OwnKeyHold
	default:
		return OwnKeyStandby
	}
}

// Shutdown is what a stopping pg-lockd knows about the leader key.
type Shutdown struct {
	// Token is the leader token the loop leads under (0: none).
	Token int64
	// KeyRead: the leader key was read from etcd just now.
	KeyRead bool
	// KeyOnLease: it exists and is attached to this node's lease.
	KeyOnLease bool
	// NotWritable: there is evidence that the local PostgreSQL accepts no
	// writes (stopped, or in recovery).
	NotWritable bool
}

// ShutdownAction is what a stopping pg-lockd does with its lease.
type ShutdownAction int

// ShutdownActions.
const (
	// HandOver: stop writes, then release the key and revoke the lease
	// (or, without evidence that writes stopped, leave both to expire).
	HandOver ShutdownAction = iota
	// RevokeLease: the lease holds no leader key; revoke it.
	RevokeLease
	// LeaveLease: the lease may hold the leader key and PostgreSQL may be
	// writable: touch nothing; pg-supervise fences at the deadline it has.
	LeaveLease
)

var shutdownNames = [...]string{"hand-over", "revoke", "leave"}

func (a ShutdownAction) String() string { return shutdownNames[a] }

// OnShutdown decides how a stopping pg-lockd leaves. A pg-lockd that may
// hold the leader key never revokes its lease without first having
// PostgreSQL stop writes (or evidence that it accepts none), whatever its
// token says: a restarted pg-lockd adopts the lease, and with it the key,
// before it has decided anything.
func OnShutdown(s Shutdown) ShutdownAction {
	switch {
	case s.Token != 0 || (s.KeyRead && s.KeyOnLease):
		return HandOver
	case s.KeyRead || s.NotWritable:
		return RevokeLease
	default:
		return LeaveLease
	}
}
