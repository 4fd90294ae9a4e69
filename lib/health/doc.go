// Package health is pg-healthd's logic: the HTTP health API that answers
// the requests HAProxy, load balancers and monitoring send to Patroni's REST
// API, with the same status codes, paths, query parameters and JSON field
// names (Patroni 3.0.2; the synchronous checks and fields as Patroni 4).
//
// # Shape
//
// Background refreshers (Service.Run) observe the node: PostgreSQL's status
// query every 250 ms, each attempt bounded by 1 s; etcd through a watch
// (every event triggers a read) and a confirming read every second; the
// state files of pg-lockd (lockd.json) and pg-supervise (supervise.json)
// every 250 ms. Each change publishes a new immutable Snapshot with its JSON
// bodies already rendered, behind an atomic pointer. A request reads that
// pointer and calls Decide, a pure function of the snapshot and the time of
// the request; it never queries PostgreSQL or etcd, so it is answered in
// microseconds even while PostgreSQL or etcd hangs. A snapshot part older
// than its bound (Bounds) is refused: the checks fail closed.
//
// # Endpoints (GET, HEAD and OPTIONS; 200 when the condition holds, else 503)
//
//	/primary, /, /master, /read-write   PostgreSQL answered within 2 s and is not in recovery; with etcd,
//	                                    also: the etcd view was confirmed within min(ttl/2, 2 s), its leader
//	                                    key names this node, not a standby cluster, pg-lockd (if lockd.json
//	                                    exists) says "leader" with more than 1 s of lease validity left;
//	                                    always: pg-supervise (if supervise.json exists) is running or
//	                                    promoting and its fence deadline, if any, is more than 1 s away.
//	/leader                             /primary, or /standby-leader
//	/standby-leader                     as /primary, but PostgreSQL in recovery in a standby cluster
//	/replica                            PostgreSQL answered within 2 s, is in recovery, no noloadbalance
//	                                    tag, not the standby leader; ?lag=<bytes|16MB>: the leader's optime
//	                                    in etcd is at most that far ahead of the replayed position;
//	                                    ?replication_state=streaming: the WAL receiver streams;
//	                                    ?tag_<key>=<value>: the tag has that value
//	/read-only                          /primary or /standby-leader or /replica (same filters)
//	/health                             PostgreSQL answered within 2 s (tag filters apply)
//	/sync, /synchronous                 as /replica (same filters), with etcd only: synchronous_mode is on,
//	                                    not a standby cluster, the sync key lists this node as a standby
//	                                    (case-insensitively), and the etcd view was confirmed within its bound
//	/quorum                             the same with synchronous_mode quorum (a quorum standby)
//	/read-only-sync, /read-only-quorum  /primary or /standby-leader, or /sync (/quorum); etcd only
//	/async, /asynchronous               as /replica, with etcd only: the last etcd view lists this node
//	                                    neither as a sync nor as a quorum standby
//	/liveness                           the refresh loop ran within 2 s and, with etcd, pg-lockd's
//	                                    heartbeat is younger than ttl (primary) or 2·ttl, or paused
//	/readiness                          /primary or /standby-leader, or PostgreSQL in recovery, etcd
//	                                    confirmed, and replayed within maximum_lag_on_failover of the
//	                                    leader's optime (standalone: of what it received)
//	/patroni                            always 200, this node's status
//	/cluster, /history                  200 with the last etcd view; 503 standalone or before the first read
//	/config                             200 with the config key; 502 if absent (as Patroni); 503 standalone
//	/failsafe                           200 with the failsafe key of the last etcd view (member name →
//	                                    api_url); 502 if absent or standalone (as Patroni)
//	/metrics                            200, Prometheus text: Patroni's patroni_* and pg-ha's pgha_*
//	any other path                      503 with the status, as Patroni
//
// The health checks return this node's status JSON (state, postmaster_start_time,
// role, server_version, xlog, sync_standby or quorum_standby when true,
// timeline, replication, cluster_unlocked, failsafe_mode_is_active when true,
// dcs_last_seen, tags, database_system_identifier, pending_restart, patroni
// {version, scope, name}); /liveness and /readiness return no body. HEAD
// returns the same code and headers without a body, OPTIONS the same code
// and no body. The write methods are Patroni's write API (Writer).
//
// Standalone (no etcd): the roles come from PostgreSQL alone; /primary is
// PostgreSQL running and not in recovery (and pg-supervise not objecting).
//
// failsafe_mode: while etcd cannot confirm the leader key, the leader stays
// /primary (and /leader) as long as pg-lockd holds a lead deadline that
// failsafe rounds won (every member promised over POST /failsafe not to take
// the key) more than the validity margin away; pg-supervise fences at that
// deadline. A confirmed etcd view naming another leader still makes it 503.
// failsafe_mode_is_active (status, metrics) is that on the leader and, on
// another member, a promise it gave that still binds, as in Patroni.
//
// # Differences from Patroni 3.0.2
//
//   - HEAD and OPTIONS answer every path as GET does. Patroni sends them all
//     through its health-check routing, so there HEAD /liveness or
//     OPTIONS /patroni is 503.
//   - /leader needs PostgreSQL to answer as the primary or standby leader;
//     Patroni answers 200 from the leader lock alone. Failing closed.
//   - Methods other than GET, HEAD and OPTIONS go to the Writer (Patroni's
//     write API, see write.go); a path it does not serve gets 405 with an
//     Allow header, where Patroni answers 501. A scheduled restart is kept
//     in pg-healthd's memory, as Patroni keeps it, but is not published as
//     scheduled_restart in the member key (pg-lockd writes that key), so
//     patronictl list does not show it and patronictl flush restart skips
//     it (pg-failover flush restart cancels it). POST /reload reloads
//     PostgreSQL only, and POST /reinitialize ignores "force". POST /failsafe
//     also takes "ttl" (seconds; the member's own ttl without it), records
//     the promise in the runtime directory before answering, and answers
//     200 whatever failsafe_mode says here (the promise is kept either way);
//     /sigterm and /citus are not served.
//   - /cluster and /history come from the last etcd view instead of a read
//     per request.
//   - /sync, /quorum and the replica side of /read-only-sync and
//     /read-only-quorum also need the etcd view confirmed within its bound:
//     Patroni answers from whatever view it last had.
//   - The status has no usename or sync_priority in replication entries, and
//     xlog.replayed_timestamp is null.
//   - Headers (request line included) over 16 KiB get 431, request bodies
//     (pg-healthd reads none) over 16 KiB get 413.
//   - Header lines must end in CRLF, as every HTTP client sends them: the
//     HTTP server (fasthttp) does not take bare LFs as the end of the
//     headers, so such a request waits for more and gets 408 after 2 s.
//
// # HTTP server
//
// The server is fasthttp (NewServer, Serve): it reuses its buffers and
// request contexts, so a health check on a kept-alive connection allocates
// nothing. The limits are NewServer's constants. HTTPS speaks HTTP/1.1 only.
package health
