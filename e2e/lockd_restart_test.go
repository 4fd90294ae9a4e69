package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
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

// TestLockdRestartReplicaLateReader: pg-failover restart of a replica whose
// pg-supervise reads the role pipe late — stopped for 2 s, as a busy or
// descheduled reader may be — so that the stop line and the lines after it
// arrive in one read, where only the newest counts. The restart must not
// be lost that way: pg-failover reports success only once the replica's
// PostgreSQL runs again, with a new postmaster and a new start time.
func TestLockdRestartReplicaLateReader(t *testing.T) {
	c, w := start(t, testcluster.Options{})
	p := c.WaitPrimary(t, 10*time.Second)
	r := replicasOf(c, p)[0]
	pid := r.PID(testcluster.Postmaster)
	started := postmasterStart(t, r)

	w.Mark("stop pg-supervise of " + r.Name + " for 2 s; restart " + r.Name)
	if err := r.Signal(testcluster.Supervise, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resume := sync.OnceFunc(func() {
		if err := r.Signal(testcluster.Supervise, syscall.SIGCONT); err != nil {
			t.Errorf("resume pg-supervise of %s: %v", r.Name, err)
		}
	})
	defer resume()
	type outcome struct {
		out, stderr string
		code        int
		err         error
		took        time.Duration
	}
	done := make(chan outcome, 1)
	bin := testcluster.Binaries(t)
	go func() {
		began := time.Now()
		out, stderr, code, err := runPGFailover(bin, p, "restart", r.Name)
		done <- outcome{out, stderr, code, err, time.Since(began)}
	}()
	time.Sleep(2 * time.Second)
	w.Mark("resume pg-supervise of " + r.Name)
	resume()
	res := <-done
	if res.err != nil {
		t.Fatalf("run pg-failover restart %s: %v", r.Name, res.err)
	}
	t.Logf("pg-failover restart %s → exit %d in %s: %s %s", r.Name, res.code, res.took.Round(time.Millisecond),
		strings.TrimSpace(res.out), lastLine(res.stderr))
	if res.code != 0 || !strings.HasPrefix(res.out, "restart of "+r.Name+" done in ") {
		// Failing is allowed; reporting success without a restart is not.
		t.Logf("restart of %s reported failure: exit %d", r.Name, res.code)
		finish(t, c, w)
		return
	}
	np, nstarted := r.PID(testcluster.Postmaster), postmasterStart(t, r)
	if np == 0 || np == pid || !nstarted.After(started) {
		// Show that it did not restart later either.
		time.Sleep(3 * time.Second)
		t.Errorf("restart of %s reported done, yet PostgreSQL did not restart: postmaster %d started %s, before the request %d started %s (3 s later: postmaster %d started %s)",
			r.Name, np, nstarted.Format("15:04:05.000"), pid, started.Format("15:04:05.000"),
			r.PID(testcluster.Postmaster), postmasterStart(t, r).Format("15:04:05.000"))
	}
	finish(t, c, w)
}

// postmasterStart returns pg_postmaster_start_time() of n's PostgreSQL.
func postmasterStart(t testing.TB, n *testcluster.Node) time.Time {
	t.Helper()
	var at time.Time
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.QueryRow(ctx, "SELECT pg_postmaster_start_time()", nil, &at); err != nil {
		t.Fatalf("postmaster start time of %s: %v", n.Name, err)
	}
	return at
}
