package pg_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pg-ha/pg-ha/lib/pg"
	"github.com/pg-ha/pg-ha/lib/pg/pgtest"
)

// TestIntegrationLogicalSlotCopy: a logical slot's state file read from the
// primary and put into a stopped standby's pg_replslot gives the standby
// the slot; advanced there to where the consumer confirmed, it lets the
// consumer continue after the standby's promotion with exactly the changes
// it had not confirmed.
func TestIntegrationLogicalSlotCopy(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	logical := []string{"-c", "wal_level=logical", "-c", "hot_standby_feedback=on"}
	p := &node{Instance: pgtest.New(t), t: t}
	p.WriteFile("pg_hba.conf", hba)
	p.Start(logical...)
	pc := p.connect()
	exec := func(c *pgx.Conn, sql string) {
		t.Helper()
		if _, err := c.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	changes := func(c *pgx.Conn) []string {
		t.Helper()
		rows, err := c.Query(ctx, "SELECT data FROM pg_logical_slot_get_changes('cdc', NULL, NULL) WHERE data LIKE 'table%'")
		if err != nil {
			t.Fatal(err)
		}
		out, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if err := pg.CreateLogicalSlot(ctx, pc, "cdc", "test_decoding"); err != nil {
		t.Fatal(err)
	}
	if err := pg.CreateLogicalSlot(ctx, pc, "cdc", "test_decoding"); err != nil {
		t.Fatalf("creating an existing slot again: %v", err)
	}
	exec(pc, "CREATE TABLE t (id int)")
	exec(pc, "INSERT INTO t VALUES (1)")
	if got := changes(pc); len(got) != 1 {
		t.Fatalf("changes before the copy: %q", got)
	}
	// The standby is cloned after the slot was made: its pg_wal starts
	// after the slot's restart_lsn, so a copy taken now is useless there.
	s := &node{Instance: p.Standby(t), t: t}
	exec(pc, "CHECKPOINT") // the state file on disk is written at checkpoints
	state, err := pg.SlotState(ctx, pc, "cdc")
	if err != nil {
		t.Fatal(err)
	}
	early, ok := pg.SlotStateRestartLSN(state, "cdc")
	if !ok || early == 0 {
		t.Fatalf("SlotStateRestartLSN = %s, %v", early, ok)
	}
	if _, ok := pg.SlotStateRestartLSN(state, "other"); ok {
		t.Error("SlotStateRestartLSN took another slot's file")
	}
	if _, err := pg.SlotState(ctx, pc, "../global"); err == nil {
		t.Error("SlotState took a path for a slot name")
	}
	// The consumer confirms past a running-transactions record (written
	// by a checkpoint), which moves the slot's restart_lsn on.
	exec(pc, "CHECKPOINT")
	exec(pc, "INSERT INTO t VALUES (10)")
	changes(pc)
	exec(pc, "CHECKPOINT")
	if state, err = pg.SlotState(ctx, pc, "cdc"); err != nil {
		t.Fatal(err)
	}
	late, _ := pg.SlotStateRestartLSN(state, "cdc")
	if late <= early {
		t.Fatalf("restart_lsn did not move: %s then %s", early, late)
	}

	dir := filepath.Join(s.DataDir, "pg_replslot", "cdc")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "state"), state, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{dir, filepath.Join(dir, "state")} {
		if err := os.Chown(f, int(s.Owner.UID), int(s.Owner.GID)); err != nil {
			t.Fatal(err)
		}
	}
	s.Start(logical...)
	sc := s.connect()
	oldest, err := pg.OldestWAL(ctx, sc)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("slot restart_lsn %s before the clone, %s after; the standby's WAL from %s", early, late, oldest)
	if early >= oldest || late < oldest {
		t.Errorf("OldestWAL = %s: want it after %s and not after %s", oldest, early, late)
	}
	slots, err := pg.LogicalSlots(ctx, sc)
	if err != nil {
		t.Fatal(err)
	}
	if sl, ok := slots["cdc"]; !ok || sl.Plugin != "test_decoding" || sl.Database != "postgres" || sl.Confirmed == 0 {
		t.Fatalf("the standby's slots after the copy: %+v", slots)
	}

	exec(pc, "INSERT INTO t VALUES (2)")
	if got := changes(pc); len(got) != 1 {
		t.Fatalf("changes after the copy: %q", got)
	}
	pos, err := pg.LogicalSlotPositions(ctx, pc, []string{"cdc", "none"})
	if err != nil || pos["cdc"] == 0 || len(pos) != 1 {
		t.Fatalf("LogicalSlotPositions = %v, %v", pos, err)
	}
	confirmed := pg.LSN(pos["cdc"])
	waitFor(t, "the standby to replay the confirmed position", func() bool { return s.status(sc).ReplayLSN >= confirmed })
	end, err := pg.AdvanceSlot(ctx, sc, "cdc", confirmed)
	if err != nil || end != confirmed {
		t.Fatalf("AdvanceSlot on the standby = %s, %v; want %s", end, err, confirmed)
	}
	exec(pc, "INSERT INTO t VALUES (3)") // never confirmed: must come again
	target := s.status(pc).WriteLSN
	waitFor(t, "the standby to replay the last insert", func() bool { return s.status(sc).ReplayLSN >= target })

	if err := pg.Promote(ctx, sc, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	exec(sc, "INSERT INTO t VALUES (4)")
	got := changes(sc)
	want := []string{"table public.t: INSERT: id[integer]:3", "table public.t: INSERT: id[integer]:4"}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("changes on the promoted standby: %q, want %q", got, want)
	}
	if dropped, err := pg.DropSlot(ctx, sc, "cdc"); err != nil || !dropped {
		t.Errorf("DropSlot = %v, %v", dropped, err)
	}
	if dropped, err := pg.DropSlot(ctx, sc, "cdc"); err != nil || dropped {
		t.Errorf("DropSlot of a slot gone = %v, %v", dropped, err)
	}
}
