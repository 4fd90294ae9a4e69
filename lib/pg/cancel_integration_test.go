package pg_test

import (
	"context"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/pg"
)

// TestIntegrationCancelGrace: a statement whose context ends is cancelled
// by a cancel request and the connection, with its backend, stays usable
// when ConnParams.CancelGrace is set; without it the connection is closed,
// as pgx does by default.
func TestIntegrationCancelGrace(t *testing.T) {
	p := startPrimary(t)
	for _, grace := range []time.Duration{2 * time.Second, 0} {
		params := p.Params()
		params.CancelGrace = grace
		conn, err := pg.Connect(t.Context(), params)
		if err != nil {
			t.Fatal(err)
		}
		var pid, again int
		if err := conn.QueryRow(t.Context(), "SELECT pg_backend_pid()").Scan(&pid); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		began := time.Now()
		_, err = conn.Exec(ctx, "SELECT pg_sleep(10)")
		cancel()
		took := time.Since(began)
		if err == nil || took > grace+time.Second {
			t.Fatalf("grace %s: pg_sleep(10) with a 300ms context: %v after %s", grace, err, took)
		}
		if grace == 0 {
			if !conn.IsClosed() {
				t.Errorf("without a grace the connection is still open after %v", err)
			}
			continue
		}
		if code := pg.SQLState(err); code != "57014" || conn.IsClosed() {
			t.Fatalf("grace %s: %v (SQLSTATE %q), closed %v; want 57014 and the connection open", grace, err, code, conn.IsClosed())
		}
		if err := conn.QueryRow(t.Context(), "SELECT pg_backend_pid()").Scan(&again); err != nil || again != pid {
			t.Errorf("grace %s: after the cancel: backend %d, %v; want the same backend %d", grace, again, err, pid)
		}
		conn.Close(context.Background())
	}
}
