// Package dcs is pg-ha's view of etcd v3: the lease and its validity clock,
// the leader key and its fencing token, the cluster state under one scope,
// and a watch that never stops silently.
//
// Keys follow Patroni's etcd3 backend exactly, under Options.Prefix
// ("/service/<scope>/"): leader, members/<name>, initialize, config,
// failover, sync, history, status (with the legacy optime/leader), failsafe,
// with Patroni's JSON shapes, so patronictl and existing monitoring read a
// pg-ha cluster.
//
// # Lease validity
//
// Grant and KeepAlive read the injected clock before sending the request and
// return Lease.ValidUntil = send time + TTL granted by the server. The server
// renews (or grants) after it receives the request, so its own expiry is never
// earlier than ValidUntil: a holder that stops acting as leader at ValidUntil
// has stopped before etcd can delete its keys. Nothing in this package uses
// the etcd client's streaming keepalive or concurrency.Session, whose "done"
// signal fires only after the server has already expired the lease.
//
// # Fencing token
//
// AcquireLeader returns the leader key's create revision as the fencing
// token. pg-ha never rewrites the key in place, so its mod revision stays
// equal to the token; every leader-only write (LeaderTxn, ReleaseLeader) is a
// transaction that compares the mod revision with the token, so it fails
// with ErrNotLeader once the key has expired, been deleted, been re-created
// by someone else, or been overwritten in place by anyone.
//
// # Requests
//
// Every request carries clientv3.WithRequireLeader, so an etcd member cut off
// from its quorum answers at once with ErrNoQuorum instead of serving stale
// data, and is bounded by Options.RequestTimeout unless the caller's context
// ends earlier. Errors are wrapped with the operation and the key; the
// sentinels ErrNotLeader, ErrLeaderExists, ErrLeaseNotFound, ErrNoQuorum and
// ErrConflict are matched with errors.Is. Context errors stay in the chain.
package dcs
