// Package syncrep is the pure part of pg-ha's synchronous replication:
// synchronous_standby_names in PostgreSQL's syntax (ParseStandbyNames,
// NewStandbyNames, StandbyNames.String, QuoteName), and which standbys may
// be synchronous given what the primary observes — members and their tags
// from etcd, rows of pg_stat_replication — ordered as Patroni orders them
// (Standbys, SyncTags), and which of them have caught up since they were
// listed (Readiness).
//
// It does no I/O and reads no clock: the caller queries PostgreSQL and
// etcd, hands the results in, and gives the State to the decisions in
// lib/decide (decide.SyncStep for synchronous_mode: on, decide.QuorumTransitions
// for quorum), which say what to change and in which order.
//
// Names are compared case-insensitively, as PostgreSQL compares
// application_name with synchronous_standby_names. With strict mode and no
// standby, synchronous_standby_names lists StrictPlaceholder, a name no
// standby has, so commits wait instead of going on without a copy; it is
// Patroni's placeholder, so a cluster moved between Patroni and pg-ha keeps
// blocking.
package syncrep
