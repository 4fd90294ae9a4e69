package e2e

import (
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/testcluster"
)

// TestSwitchoverWithoutCheckpoint: the candidate's WAL receiver is frozen
// just before the switchover, so it never receives the old primary's
// shutdown checkpoint (a short wal_sender_timeout lets the old primary stop
// without waiting for it). It must not promote; after one ttl the others
// elect normally, and no acknowledged write is lost.
func TestSwitchoverWithoutCheckpoint(t *testing.T) {
	c, w := start(t, testcluster.Options{ExtraParameters: map[string]string{"wal_sender_timeout": "1s"}})
	p := c.WaitPrimary(t, 10*time.Second)
	cand := replicasOf(c, p)[0]
	pid := walReceiverPID(t, cand)
	w.Mark("freeze " + cand.Name + "'s WAL receiver")
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// Killed, not resumed: the candidate must not get the WAL late.
	defer syscall.Kill(pid, syscall.SIGKILL)
	stop := make(chan struct{})
	seen := leaderWatch(c, stop)
	w.Mark("switchover to " + cand.Name)
	_, stderr, code := pgFailover(t, p, "--to", cand.Name, "--timeout", (2*c.Options.TTL + 10*time.Second).String())
	if code == 0 {
		t.Errorf("switchover to %s reported success though it lacks the shutdown checkpoint", cand.Name)
	}
	t.Logf("pg-failover: exit %d: %s", code, lastLine(stderr))
	np := c.WaitPrimary(t, 2*c.Options.TTL, cand)
	close(stop)
	leaders := <-seen
	t.Logf("leader key: %v; primary now %s", leaders, np.Name)
	if !slices.Contains(leaders, "") {
		t.Fatalf("the leader never released the key (leader key: %v): the scenario was not reached", leaders)
	}
	if slices.Contains(leaders, cand.Name) {
		t.Errorf("%s took the leader key without the old primary's shutdown checkpoint", cand.Name)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	finishLossless(t, c, w)
}
