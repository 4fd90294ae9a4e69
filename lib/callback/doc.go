// Package callback runs the scripts of Patroni's postgresql.callbacks,
// pre_promote and before_stop for pg-supervise.
//
// Tracker decides, purely, which callback a transition of PostgreSQL fires
// (on_start, on_stop, on_restart, on_reload, on_role_change) and with which
// role. Runner runs callbacks in the background, one at a time, as Patroni
// does: a newer callback kills one still running, on_reload has a slot of
// its own, and every callback is killed after a timeout. Run runs a hook
// (pre_promote, before_stop) to completion within a context. Every script
// runs as the data directory's owner in a process group of its own, which
// is killed as a whole.
package callback
