package e2e

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/testcluster"
)

// TestDivergedReplicaRewindsAtOnce: a replica that received WAL the new
// leader never had (it was ahead of the member that was promoted, because
// it may not lead) cannot stream from the new timeline. pg-supervise must
// see that from the leader's timeline history within seconds and rewind it,
// not wait for a long not-streaming timeout: in synchronous mode such a
// replica may be the only standby commits can wait for.
func TestDivergedReplicaRewindsAtOnce(t *testing.T) {
	// r lags by more than the socket buffers between it and the primary
	// hold (loopback buffers grow to several MB), so that it cannot catch up when the primary dies; it stays
	// eligible within maximum_lag_on_failover.
	c, w := start(t, testcluster.Options{MaximumLagOnFailover: 64 << 20})
	p := c.WaitPrimary(t, 10*time.Second)
	// r will be promoted although it lags; ahead may not lead.
	r, ahead := replicasOf(c, p)[0], replicasOf(c, p)[1]
	tagNoFailover(t, c, w, ahead, p)

	pid := walReceiverPID(t, r)
	w.Mark("freeze the WAL receiver of " + r.Name)
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(pid, syscall.SIGCONT)
	// ahead receives WAL that r does not: more than the socket buffers
	// hold, then the table to look for.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	writeWAL(t, p, 32)
	if err := p.Exec(ctx, "CREATE TABLE pgha_diverge AS SELECT 1 AS x"); err != nil {
		t.Fatal(err)
	}
	var created bool
	deadline := time.Now().Add(10 * time.Second)
	for !created && time.Now().Before(deadline) {
		_ = ahead.QueryRow(ctx, "SELECT to_regclass('pgha_diverge') IS NOT NULL", nil, &created)
		time.Sleep(50 * time.Millisecond)
	}
	if !created {
		t.Fatalf("%s never replayed the table created on %s", ahead.Name, p.Name)
	}

	w.Mark("node death of primary " + p.Name)
	p.KillAll()
	syscall.Kill(pid, syscall.SIGCONT)
	np := c.WaitPrimary(t, 30*time.Second, p)
	promoted := time.Now()
	if np != r {
		t.Fatalf("%s was promoted, want %s (the other replica is tagged nofailover)", np.Name, r.Name)
	}
	w.Mark(r.Name + " promoted")

	// ahead streams the new primary's timeline once rewound. (Before, it
	// shows as streaming the old timeline for a moment at each retry.)
	tli, err := r.Timeline(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got testcluster.WALReceiver
	streams := func() bool {
		return got.Status == "streaming" && got.SenderPort == r.PGPort && got.ReceivedTLI == tli
	}
	for time.Since(promoted) < 45*time.Second {
		rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
		got, _ = ahead.WALReceiver(rctx)
		rcancel()
		if streams() {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	took := time.Since(promoted)
	t.Logf("%s streams timeline %d from %s %v after the promotion", ahead.Name, tli, r.Name, took.Round(time.Millisecond))
	switch {
	case !streams():
		t.Errorf("%s does not stream timeline %d from %s 45s after the promotion: %+v", ahead.Name, tli, r.Name, got)
	case took > 15*time.Second:
		t.Errorf("%s took %v to stream from %s, want under 15s", ahead.Name, took.Round(time.Millisecond), r.Name)
	}
	if !ahead.LogContains(testcluster.Supervise, "diverged from the leader's timeline") {
		t.Errorf("%s's pg-supervise did not report the divergence", ahead.Name)
	}
	var has bool
	if err := ahead.QueryRow(ctx, "SELECT to_regclass('pgha_diverge') IS NOT NULL", nil, &has); err != nil || has {
		t.Errorf("%s still has the table the new primary never had (%v): not rewound", ahead.Name, err)
	}

	w.Mark("start " + p.Name + " again")
	p.Start(t)
	finish(t, c, w)
}
