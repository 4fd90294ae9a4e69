package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	pgstate "github.com/pg-ha/pg-ha/lib/state"
	"github.com/pg-ha/pg-ha/lib/testcluster"
)

// TestLockdRestartPausedKeepsPrimary: in maintenance mode the primary's
// pg-lockd is killed and started again without its heartbeat file, so it
// cannot adopt its predecessor's lease at start and finds the leader key
// of its own name on a lease it does not renew. Nothing automatic may
// demote the primary while paused: PostgreSQL keeps running (the same
// postmaster) as the primary, and the key stays with this node.
func TestLockdRestartPausedKeepsPrimary(t *testing.T) {
	c, w := start(t, testcluster.Options{FIFO: true})
	p := c.WaitPrimary(t, 10*time.Second)
	r := replicasOf(c, p)[0]
	if out, stderr, code := pgFailover(t, r, "pause"); code != 0 || !strings.HasPrefix(out, "paused") {
		t.Fatalf("pause: exit %d, %q, %s", code, out, lastLine(stderr))
	}
	pid := p.PID(testcluster.Postmaster)

	w.Mark("kill -9 pg-lockd of " + p.Name + ", remove its heartbeat, start it again")
	if err := p.Signal(testcluster.Lockd, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if !p.Wait(testcluster.Lockd, 5*time.Second) {
		t.Fatalf("%s pg-lockd survived SIGKILL", p.Name)
	}
	if err := os.Remove(filepath.Join(p.RuntimeDir, pgstate.LockdFile)); err != nil {
		t.Fatal(err)
	}
	p.StartLockd(t)
	// Past the old lease's ttl.
	time.Sleep(c.Options.TTL + 2*time.Second)

	if np := p.PID(testcluster.Postmaster); np != pid {
		t.Errorf("%s's postmaster is %d after pg-lockd's restart in maintenance mode, was %d: the primary was demoted or fenced", p.Name, np, pid)
	}
	if ps := c.Primaries(t.Context()); len(ps) != 1 || ps[0] != p {
		t.Errorf("primaries after pg-lockd's restart in maintenance mode: %v, want [%s]", nodeNames(ps), p.Name)
	}
	leaderIs(t, c, p)
	if out, stderr, code := pgFailover(t, r, "resume"); code != 0 {
		t.Fatalf("resume: exit %d, %q, %s", code, out, lastLine(stderr))
	}
	finish(t, c, w)
}

// TestLockdRestartReplica: pg-failover restart of a replica, twice, reports
// success only once the replica's PostgreSQL runs again with a new
// postmaster.
func TestLockdRestartReplica(t *testing.T) {
	c, w := start(t, testcluster.Options{})
	p := c.WaitPrimary(t, 10*time.Second)
	r := replicasOf(c, p)[0]
	for i := 0; i < 2; i++ {
		pid := r.PID(testcluster.Postmaster)
		w.Mark("restart " + r.Name)
		out, stderr, code := pgFailover(t, p, "restart", r.Name)
		if code != 0 || !strings.HasPrefix(out, "restart of "+r.Name+" done in ") {
			t.Fatalf("restart %s: exit %d, %q, %s", r.Name, code, out, lastLine(stderr))
		}
		if np := r.PID(testcluster.Postmaster); np == 0 || np == pid {
			t.Fatalf("restart %d of %s reported done, yet its postmaster pid is %d, was %d", i+1, r.Name, np, pid)
		}
	}
	finish(t, c, w)
}
