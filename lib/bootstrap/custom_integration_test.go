package bootstrap

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/pg"
	"github.com/pg-ha/pg-ha/lib/pg/pgtest"
	"github.com/pg-ha/pg-ha/lib/pgdata"
)

// pitrSource is an archiving PostgreSQL 15 with a tar base backup taken
// after batch 0, batches 1 and 2 committed after it (only in the archive),
// and a time between them.
type pitrSource struct {
	owner   pg.Owner
	root    string // 0755, holds archive/ and backup/
	archive string
	tar     string
	target  string // between batch 1 and batch 2
}

func newPITRSource(t *testing.T) *pitrSource {
	t.Helper()
	src := pgtest.New(t)
	s := &pitrSource{owner: src.Owner, root: src.Root}
	s.archive = filepath.Join(s.root, "archive")
	for _, d := range []string{s.archive, filepath.Join(s.root, "backup")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, int(s.owner.UID), int(s.owner.GID)); err != nil {
			t.Fatal(err)
		}
	}
	src.Start("-c", "archive_mode=on", "-c", "archive_command=cp %p "+s.archive+"/%f.tmp && mv "+s.archive+"/%f.tmp "+s.archive+"/%f")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pg.Connect(ctx, src.Params())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	now := func() string {
		var at string
		if err := conn.QueryRow(ctx, "SELECT clock_timestamp()::text").Scan(&at); err != nil {
			t.Fatal(err)
		}
		return at
	}
	exec := func(sql string, args ...any) {
		if _, err := conn.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	exec("CREATE TABLE pitr (batch int NOT NULL)")
	exec("INSERT INTO pitr SELECT 0 FROM generate_series(1, 10)")
	if _, err := pg.Run(ctx, s.owner, pgtest.BinDir, "pg_basebackup", []string{"-D", filepath.Join(s.root, "backup"),
		"-Ft", "-X", "fetch", "-c", "fast", "--no-sync", "-h", src.SockDir, "-p", strconv.Itoa(src.Port), "-U", "postgres"}); err != nil {
		t.Fatal(err)
	}
	s.tar = filepath.Join(s.root, "backup", "base.tar")
	exec("INSERT INTO pitr SELECT 1 FROM generate_series(1, 10)")
	time.Sleep(200 * time.Millisecond)
	s.target = now()
	time.Sleep(200 * time.Millisecond)
	exec("INSERT INTO pitr SELECT 2 FROM generate_series(1, 10)")
	var last string
	if err := conn.QueryRow(ctx, "SELECT pg_walfile_name(pg_switch_wal())").Scan(&last); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(s.archive, last)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not archived within 15s", last)
		}
	}
	return s
}

// restored extracts the backup into a new data directory and returns a
// Bootstrapper for it.
func (s *pitrSource) restored(t *testing.T, name string) *Bootstrapper {
	t.Helper()
	dir := filepath.Join(s.root, name)
	run := filepath.Join(s.root, name+"-run")
	for _, d := range []string{dir, run} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, int(s.owner.UID), int(s.owner.GID)); err != nil {
			t.Fatal(err)
		}
	}
	tar, err := exec.LookPath("tar")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := pg.Run(ctx, s.owner, filepath.Dir(tar), "tar", []string{"-xf", s.tar, "-C", dir}); err != nil {
		t.Fatal(err)
	}
	yml := fmt.Sprintf("scope: pitr\nname: node1\netcd3: {host: 127.0.0.1:2379}\npostgresql:\n  data_dir: %s\n  bin_dir: %s\n  listen: 127.0.0.1:%d\n  authentication: {superuser: {username: postgres}}\n",
		dir, pgtest.BinDir, pgtest.FreePort(t))
	cfg, _, err := config.Parse([]byte(yml), nil)
	if err != nil {
		t.Fatal(err)
	}
	return &Bootstrapper{Node: &pgdata.Node{Cfg: cfg, RuntimeDir: run, Owner: s.owner}, Log: zerolog.New(zerolog.NewTestWriter(t))}
}

// batches counts the rows of each batch.
func batches(ctx context.Context, conn *pgx.Conn) (map[int]int, error) {
	rows, err := conn.Query(ctx, "SELECT batch, count(*) FROM pitr GROUP BY batch")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int]int{}
	for rows.Next() {
		var b, n int
		if err := rows.Scan(&b, &n); err != nil {
			return nil, err
		}
		out[b] = n
	}
	return out, rows.Err()
}

// TestRecoverToTarget: a restored base backup recovers from the archive to
// a time between two batches and ends as a primary with exactly the rows
// committed before it, whatever recovery_target_action says: promote;
// pause (recovery is resumed, which ends it); shutdown (it recovers to the
// same target again and promotes, rather than replaying the restored WAL
// past the target). A target the archive does not reach fails with
// PostgreSQL's own reason. The server is stopped afterwards in every
// case.
func TestRecoverToTarget(t *testing.T) {
	s := newPITRSource(t)
	for _, action := range []string{"promote", "pause", "shutdown"} {
		t.Run(action, func(t *testing.T) {
			b := s.restored(t, "data-"+action)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			settings := pgdata.RecoveryParams(map[string]any{
				"restore_command":        "cp " + s.archive + "/%f %p",
				"recovery_target_time":   s.target,
				"recovery_target_action": action,
			})
			var got map[int]int
			start := time.Now()
			err := b.recoverThen(ctx, settings, func(ctx context.Context, conn *pgx.Conn) error {
				var err error
				got, err = batches(ctx, conn)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("recovered in %s", time.Since(start).Round(time.Millisecond))
			if got[0] != 10 || got[1] != 10 || got[2] != 0 {
				t.Errorf("rows per batch %v, want batches 0 and 1 (10 each) and none of batch 2", got)
			}
			cd, err := pg.ReadControlData(ctx, s.owner, pgtest.BinDir, b.Node.DataDir())
			if err != nil || cd.State != "shut down" {
				t.Errorf("control data state %q (%v), want a clean shutdown", cd.State, err)
			}
			if _, err := os.Stat(filepath.Join(b.Node.DataDir(), "recovery.signal")); err == nil {
				t.Error("recovery.signal is left")
			}
		})
	}
	t.Run("unreached target", func(t *testing.T) {
		b := s.restored(t, "data-unreached")
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		err := b.recoverThen(ctx, pgdata.RecoveryParams(map[string]any{
			"restore_command":        "cp " + s.archive + "/%f %p",
			"recovery_target_time":   time.Now().Add(time.Hour).UTC().Format("2006-01-02 15:04:05+00"),
			"recovery_target_action": "promote",
		}), func(context.Context, *pgx.Conn) error { return nil })
		if err == nil || !strings.Contains(err.Error(), "recovery failed") || !strings.Contains(err.Error(), "FATAL") {
			t.Errorf("recovery to a time the archive does not reach: %v, want recovery failed with the server's FATAL line", err)
		} else {
			t.Logf("%v", err)
		}
	})
}
