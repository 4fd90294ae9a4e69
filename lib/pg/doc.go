// Package pg is how the pg-ha programs talk to and run PostgreSQL.
//
// It is a leaf package: it imports nothing from this module, only pgx and
// the standard library. It covers four things:
//
//   - Running PostgreSQL binaries (initdb, postgres, pg_basebackup,
//     pg_rewind, pg_controldata, …) as the account that owns the data
//     directory: [Owner], [Command], [Run]. PostgreSQL refuses to run as
//     root, so a root caller always switches to the owner's credentials, and
//     the child gets a clean environment without the caller's PG* and
//     systemd variables.
//   - Reading the cluster's on-disk state without a server:
//     [ReadControlData] and [ParseControlData].
//   - Talking to a running server: [Connect] with [ConnParams] (passwords
//     never appear in process arguments or connection strings), one-round-trip
//     status snapshots with [QueryStatus], and the few administrative
//     actions the daemons need ([Promote], [Checkpoint],
//     [EnsurePhysicalSlots], [DropPhysicalSlots], [TimelineHistory]).
//   - Small value types and file formats: [LSN], timeline history files
//     ([ParseHistory]), pgpass files ([WritePgpass]) and Patroni's
//     replication slot naming ([SlotName]).
//
// Every function that does I/O takes a context; cancelling it aborts the
// child process or the query. Errors are wrapped with the operation that
// failed and keep the underlying error reachable with errors.As, so a caller
// can still inspect a *pgconn.PgError or an *exec.ExitError; [SQLState]
// extracts the SQLSTATE without importing pgconn.
//
// Nothing in this package starts goroutines that outlive a call, keeps
// global state, or logs.
package pg
