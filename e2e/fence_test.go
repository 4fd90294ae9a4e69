package e2e

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/testcluster"
)

// TestSuperviseKilled: the primary's pg-supervise is killed with -9 while
// sessions are in the middle of transactions, CPU-bound statements and a
// COPY, without systemd (the FIFO wiring, so pg-supervise can be started
// again alone). The postmaster dies with its supervisor, but a backend
// running a statement outlives it and can still commit. pg-lockd keeps the
// leader key for as long as any server process of the data directory
// lives, so no other node is promoted while one could commit: whatever
// such a backend acknowledges, it acknowledges before the new primary's
// first write. Started again, pg-supervise kills whatever is left and the
// node rejoins as a replica.
func TestSuperviseKilled(t *testing.T) {
	c, w := start(t, testcluster.Options{FIFO: true})
	old := c.WaitPrimary(t, 10*time.Second)

	holds := w.Hold(t, old, 6*time.Second)
	killed := w.Mark("kill -9 pg-supervise of " + old.Name)
	if err := old.Signal(testcluster.Supervise, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if !old.Wait(testcluster.Supervise, 5*time.Second) {
		t.Fatalf("%s pg-supervise survived SIGKILL", old.Name)
	}
	rs := holds.Wait(t, 40*time.Second)
	np := c.WaitPrimary(t, 40*time.Second, old)
	first := w.WaitAck(t, testcluster.MultiWriter, np.Name, killed, 15*time.Second)
	h := w.Snapshot()
	newFirst, _ := testcluster.FirstAckAfter(h, np.Name, killed)
	if newFirst.Ack.IsZero() || first.Ack.Before(newFirst.Ack) {
		newFirst = first
	}
	for _, r := range rs {
		switch {
		case r.Ended.Before(killed):
			t.Errorf("held session %s ended before the kill: it proves nothing", r)
		case r.Committed && !r.Ended.Before(newFirst.Ack):
			t.Errorf("held session %s committed on the old primary after the new primary %s acknowledged %s",
				r, np.Name, newFirst)
		default:
			t.Logf("held session %s (new primary %s's first ack %s)", r, np.Name, newFirst.Ack.Format("15:04:05.000"))
		}
	}
	if last, ok := lastAck(h, old.Name, h.End); ok && !last.Ack.Before(newFirst.Ack) {
		t.Errorf("old primary %s acknowledged %s, not before the new primary's first ack %s", old.Name, last, newFirst)
	}
	t.Logf("pg-supervise kill -9 on %s: %s took over; first write there %s after the kill",
		old.Name, np.Name, newFirst.Ack.Sub(killed).Round(time.Millisecond))

	w.Mark("start pg-supervise of " + old.Name + " again")
	old.StartSupervise(t)
	if err := c.ReplicasStreamingWithin(45 * time.Second); err != nil {
		t.Errorf("%s did not rejoin: %v", old.Name, err)
	}
	if ps := c.Primaries(context.Background()); len(ps) != 1 {
		t.Errorf("%d primaries at the end: %v", len(ps), nodeNames(ps))
	}
	finish(t, c, w)
}

// TestSuperviseStartSweep: server processes left on the data directory by
// a dead supervisor — a postmaster and backends running statements — are
// killed by the next pg-supervise before anything else, so PostgreSQL
// restarts at once instead of failing on a shared memory block in use.
func TestSuperviseStartSweep(t *testing.T) {
	c, w := start(t, testcluster.Options{FIFO: true})
	old := c.WaitPrimary(t, 10*time.Second)
	holds := w.Hold(t, old, 20*time.Second, testcluster.HoldCPU, testcluster.HoldTxnCPU)
	before := old.ServerPIDs()

	// Both daemons die at once; pg-lockd comes back first, as systemd may
	// start it, so its lease is adopted and the leader key kept.
	killed := w.Mark("kill -9 pg-supervise and pg-lockd of " + old.Name)
	for _, p := range []testcluster.Proc{testcluster.Supervise, testcluster.Lockd} {
		if err := old.Signal(p, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		old.Wait(p, 5*time.Second)
	}
	if len(testcluster.Alive(before)) == 0 {
		t.Fatalf("no server process outlived the supervisor: the test cannot show the sweep")
	}
	old.StartLockd(t)
	old.StartSupervise(t)
	waitUntil(t, 10*time.Second, "the leftover server processes of "+old.Name+" killed", func() bool {
		return len(testcluster.Alive(before)) == 0
	})
	swept := w.Mark("leftovers of " + old.Name + " gone")
	t.Logf("leftover server processes killed %s after the kill", swept.Sub(killed).Round(time.Millisecond))
	testcluster.AssertNoneCommittedAfter(t, holds.Wait(t, 30*time.Second), killed, "the supervisor's death")
	if !old.LogContains(testcluster.Supervise, "left over from a previous supervisor") {
		t.Errorf("%s pg-supervise did not report killing leftovers", old.Name)
	}
	finish(t, c, w)
}
