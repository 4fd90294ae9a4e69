package callback

// Action is a callback's name, passed to the script as its first argument.
type Action string

// The callbacks of postgresql.callbacks.
const (
	OnStart      Action = "on_start"
	OnStop       Action = "on_stop"
	OnRestart    Action = "on_restart"
	OnReload     Action = "on_reload"
	OnRoleChange Action = "on_role_change"
)

// Role is the role passed to a callback as its second argument. pg-ha
// passes Patroni 4's names: "primary" where Patroni 3 passed "master".
type Role string

// Roles passed to callbacks.
const (
	Primary Role = "primary"
	Replica Role = "replica"
	// Demoted is the role of on_stop when a primary is stopped to hand
	// over (a switchover, or a demotion to follow another leader).
	Demoted Role = "demoted"
)

// RoleOf returns Primary or Replica.
func RoleOf(primary bool) Role {
	if primary {
		return Primary
	}
	return Replica
}

// Fire is one callback to run; the zero Fire runs nothing.
type Fire struct {
	Action Action
	Role   Role
}

// StopKind says why PostgreSQL stopped.
type StopKind int

// Kinds of stop.
const (
	// StopPlanned: a stop that was asked for (shutdown, stop line,
	// reinit): on_stop with the role it ran as.
	StopPlanned StopKind = iota
	// StopDemote: a primary stopped to hand over or to follow another
	// leader: on_stop with role demoted.
	StopDemote
	// StopRestart: the first half of a restart: no callback; the start
	// that follows fires on_restart.
	StopRestart
	// StopKilled: fenced, or killed because it answered no query: on_stop
	// with the role it ran as.
	StopKilled
)

// Tracker decides which callback each transition of PostgreSQL fires, with
// Patroni's rules: a start fires on_start once the server answers — or
// on_restart when it completes a restart, or on_role_change when the server
// comes back in another role than it last ran as (a demoted primary
// rejoining as a replica); a promotion fires on_role_change with role
// primary; a stop fires on_stop, a crash nothing. It is pure; the zero value
// is ready for a server that has not run yet.
type Tracker struct {
	last    Role // the role the server last ran as, "" if none
	pending bool // started; the start's callback waits for the server to answer
	restart bool // the pending start completes a restart
}

// Started records that the postmaster was started.
func (t *Tracker) Started() { t.pending = true }

// Answered records that the server answered a query, running as role. The
// first answer after a start fires the start's callback, unless hold: a
// server started as a standby in order to be promoted at once holds it
// until it is promoted (or is no longer to be), so that it reports
// on_start primary, as Patroni does for a new cluster's first node, rather
// than a replica that lived for a moment.
func (t *Tracker) Answered(role Role, hold bool) Fire {
	if !t.pending || hold {
		return Fire{}
	}
	a := OnStart
	switch {
	case t.last != "" && t.last != role:
		a = OnRoleChange
	case t.restart:
		a = OnRestart
	}
	t.pending, t.restart, t.last = false, false, role
	return Fire{Action: a, Role: role}
}

// Promoted records a promotion: on_role_change with role primary, unless
// the start's callback has not fired yet (it then reports the new role).
func (t *Tracker) Promoted() Fire {
	if t.pending {
		return Fire{}
	}
	t.last = Primary
	return Fire{Action: OnRoleChange, Role: Primary}
}

// Stopped records that the server, running as role, stopped for kind.
func (t *Tracker) Stopped(kind StopKind, role Role) Fire {
	t.pending, t.last = false, role
	switch kind {
	case StopRestart:
		t.restart = true
		return Fire{}
	case StopDemote:
		t.restart = false
		if role == Primary {
			return Fire{Action: OnStop, Role: Demoted}
		}
	default:
		t.restart = false
	}
	return Fire{Action: OnStop, Role: role}
}

// Crashed records that the server, running as role, exited without being
// asked to. Patroni runs no callback for a crash; the restart that follows
// fires on_start (or on_restart if a restart was under way).
func (t *Tracker) Crashed(role Role) {
	t.pending, t.last = false, role
}

// Reloaded records a reload of the server's configuration: on_reload.
func (t *Tracker) Reloaded(role Role) Fire {
	return Fire{Action: OnReload, Role: role}
}
