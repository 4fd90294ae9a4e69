package health

import (
	"context"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/pg"
	"github.com/pg-ha/pg-ha/lib/pg/pgtest"
)

// The integration tests run PostgreSQL 15 (see pgtest): PGHA_TEST_PG_BINDIR,
// default /usr/lib/postgresql/15/bin. Missing binaries skip the tests, or
// fail them under PGHA_TEST_DISALLOW_SKIP=1.

// pgNode is one PostgreSQL instance of a test. Every instance reports to
// its primary every second (wal_receiver_status_interval=1s).
type pgNode struct {
	*pgtest.Instance
	t testing.TB
}

// startPrimary copies the template and starts it.
func startPrimary(t testing.TB) *pgNode {
	t.Helper()
	n := &pgNode{Instance: pgtest.New(t), t: t}
	n.Start("-c", "wal_receiver_status_interval=1s")
	return n
}

// startReplica clones from with pg_basebackup and starts it streaming.
func (from *pgNode) startReplica(t testing.TB) *pgNode {
	t.Helper()
	n := &pgNode{Instance: from.Standby(t), t: t}
	n.Start("-c", "wal_receiver_status_interval=1s")
	return n
}

func (n *pgNode) exec(sql string) {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pg.Connect(ctx, n.Params())
	if err != nil {
		n.t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		n.t.Fatalf("%s: %v", sql, err)
	}
}

func (n *pgNode) promote() {
	n.t.Helper()
	n.exec("SELECT pg_promote(true, 10)")
}
