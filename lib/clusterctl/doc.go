// Package clusterctl is pg-failover's logic: planning and following a
// switchover or a manual failover, listing the members and the timeline
// history, pausing and resuming automatic failover, asking a member to
// restart or re-initialise itself, and showing and editing the dynamic
// configuration — all through etcd (lib/dcs), never by talking to a node
// directly.
//
// The decisions are pure functions over a *dcs.Cluster read at one revision
// and table-tested: Assess (is each member an eligible candidate, and why
// not, using lib/decide's Eligible), Best (the candidate that is Ahead of the
// others), MakePlan (what to write, or which Failure to report), Judge (has
// a switchover finished, been refused, or ended elsewhere), RenderList and
// RenderHistory (patronictl's tables), Topology and RenderTopology (the
// replication tree), SetPause (the config key with pause set or removed,
// every other field kept), ApplyEdit and UnifiedDiff (edit-config's change
// and its diff), MemberDSN (a member's libpq string), ParseAt and
// ParseSchedule.
//
// Ctl is the thin I/O shell around them: it reads the cluster with
// dcs.Client.Get, writes the failover and config keys with compare-and-set,
// and waits with dcs.Client.Watch (re-reading the cluster on every change)
// until the outcome is known or its context ends.
//
// Every failure a script may want to branch on is a *Failure carrying a
// Reason; Reason.ExitCode gives pg-failover's documented exit code, and
// ExitStatus lists them for --help.
package clusterctl
