// Package rolepipe is the line protocol from pg-lockd to pg-supervise.
//
// Each line is one complete desired state, never a delta:
//
//	lead until=<ns> token=<rev> [slots=a,b] [drop=c,d] [sync=first:1:a] [paused=1]
//	follow leader=<name> conn=<url> [slot=<name>] [paused=1]
//	standby [paused=1]
//	stop reason=<word> [paused=1]
//
// until is an absolute deadline on CLOCK_BOOTTIME (lib/clock), the end of the
// lease validity minus the fence margin; token is the leader key's create
// revision; slots are the member slots to keep, drop those of members gone
// for member_slots_ttl (the only slots pg-supervise ever drops). A line read late is therefore never trusted longer than the
// lease. Unknown verbs, unknown keys, garbage and absurd values are errors:
// the reader logs and ignores them, so they never renew a validity and never
// trigger an action.
//
// Writer never blocks its caller: it keeps only the newest line and writes it
// from its own goroutine. Reader publishes only the newest valid line of what
// it read at once, so a backlog in a pipe never replays an older state after
// a newer one.
package rolepipe
