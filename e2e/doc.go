// Package e2e holds pg-ha's end-to-end fault tests and benchmarks: real
// binaries (built once by lib/testcluster), a real etcd and real
// PostgreSQL 15, three nodes, and the application workload running
// throughout every test. Every test ends by checking the workload's history
// against the final primary: no split brain, no lost acknowledged write
// (asynchronous-replication loss just before a failover is reported and
// must stay within maximum_lag_on_failover; in the synchronous replication
// tests no loss at all), and every replica holding exactly the primary's
// rows.
//
// The tests need root, /usr/bin/etcd, PostgreSQL 15 and the postgres OS
// user; they skip without them unless PGHA_TEST_DISALLOW_SKIP=1.
package e2e
