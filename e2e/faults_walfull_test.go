package e2e

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/testcluster"
)

// TestWALDiskFull: the filesystem holding the primary's pg_wal fills up
// under continuous writes, while sessions are mid-transaction,
// mid-statement and mid-COPY. PostgreSQL PANICs and cannot even finish
// crash recovery (its end-of-recovery checkpoint needs a new WAL segment),
// so its postmaster exits at every start. pg-ha keeps the leader key for
// primary_start_timeout, as for any primary that does not come back, then
// gives it up on the evidence that no server process is alive; a replica
// takes over. No held session commits, nothing acknowledged is lost, and
// the old primary, which cannot recover, is cloned again from the new
// leader (remove_data_directory_on_rewind_failure; its data directory kept
// aside) and streams from it.
func TestWALDiskFull(t *testing.T) {
	const startTimeout = 10 * time.Second
	c, w := start(t, testcluster.Options{
		WALFilesystem: 128 << 20,
		ExtraDCS:      map[string]any{"primary_start_timeout": startTimeout.Seconds()},
		// The old primary cannot even replay its WAL for pg_rewind: it is
		// re-created only when this allows it (otherwise it waits for
		// pg-failover reinit).
		ExtraPostgres: func(int) map[string]any { return map[string]any{"remove_data_directory_on_rewind_failure": true} },
	})
	p := c.WaitPrimary(t, 10*time.Second)
	if fi, err := os.Lstat(filepath.Join(p.DataDir, "pg_wal")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("primary %s: pg_wal is not a link to its own filesystem (%v)", p.Name, err)
	}
	holds := w.Hold(t, p, 5*time.Second)
	full := w.Mark("fill up the WAL filesystem of " + p.Name)
	free, err := testcluster.FillFS(filepath.Join(filepath.Dir(p.WALDir()), "filler"), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	w.Mark("WAL filesystem of " + p.Name + " full: " + itoa(int(free>>10)) + " KiB free")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err = p.Exec(ctx, "CREATE TABLE pgha_filler AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 200000) g")
	cancel()
	if err == nil {
		t.Fatalf("%s wrote about 50 MB of WAL into %d KiB", p.Name, free>>10)
	}
	np := c.WaitPrimary(t, startTimeout+20*time.Second, p)
	first := w.WaitAck(t, testcluster.MultiWriter, np.Name, full, 15*time.Second)
	h := w.Snapshot()
	last, _ := lastAck(h, p.Name, h.End)
	t.Logf("WAL disk of %s full: its last ack %s after; %s's first ack %s after (primary_start_timeout %s)",
		p.Name, last.Ack.Sub(full).Round(time.Millisecond), np.Name, first.Ack.Sub(full).Round(time.Millisecond), startTimeout)
	if took := first.Ack.Sub(full); took < startTimeout-time.Second || took > startTimeout+10*time.Second {
		t.Errorf("%s took over %s after %s's WAL disk filled up, want about primary_start_timeout (%s)",
			np.Name, took.Round(time.Millisecond), p.Name, startTimeout)
	}
	if !p.LogContains(testcluster.Supervise, "No space left on device") {
		t.Errorf("%s: PostgreSQL's log does not say the WAL disk is full", p.Name)
	}
	testcluster.AssertNoneCommittedAfter(t, holds.Wait(t, 30*time.Second), full, "the WAL disk filling up")
	handover(t, h, p, np, full)
	finish(t, c, w)
	t.Logf("%s rejoined: it %s", p.Name, rejoined(p))
}
