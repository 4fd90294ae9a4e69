package e2e

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/testcluster"
)

// TestServerProcessKilled: kill -9 of each kind of server process on the
// primary but the postmaster — the checkpointer, the WAL writer, a WAL
// sender, the autovacuum launcher, a backend in a transaction — while
// sessions are mid-transaction, mid-statement and mid-COPY. PostgreSQL
// resets itself (every child killed, crash recovery) without its
// postmaster exiting: the postmaster and the leader key stay, no held
// session commits after the kill, and nothing acknowledged is lost.
func TestServerProcessKilled(t *testing.T) {
	c, w := start(t, testcluster.Options{})
	p := c.WaitPrimary(t, 10*time.Second)
	pm := p.PID(testcluster.Postmaster)
	stop := make(chan struct{})
	seen := leaderWatch(c, stop)

	for _, kind := range []string{"checkpointer", "walwriter", "walsender", "autovacuum launcher", "idle in transaction"} {
		holds := w.Hold(t, p, 4*time.Second)
		pid := p.ServerProcess(kind)
		if pid == 0 {
			t.Fatalf("%s: no server process titled %q among %v", p.Name, kind, p.ServerPIDs())
		}
		title := testcluster.ServerTitle(pid)
		before := p.ServerPIDs()
		killed := w.Mark("kill -9 " + title + " (" + p.Name + ")")
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, 20*time.Second, "reset of "+p.Name+" after kill -9 of "+kind, func() bool {
			for _, q := range testcluster.Alive(before) {
				if q != pm {
					return false
				}
			}
			return true
		})
		first := w.WaitAck(t, testcluster.MultiWriter, p.Name, killed, 20*time.Second)
		t.Logf("kill -9 %q: %s's %s writer acknowledged again %s later", title, p.Name, testcluster.MultiWriter,
			first.Ack.Sub(killed).Round(time.Millisecond))
		if np := p.PID(testcluster.Postmaster); np != pm {
			t.Errorf("kill -9 %q: postmaster of %s is %d, want %d reset in place", title, p.Name, np, pm)
			pm = np
		}
		testcluster.AssertNoneCommittedAfter(t, holds.Wait(t, 30*time.Second), killed, "kill -9 of "+kind)
	}
	close(stop)
	leaders := <-seen
	for _, l := range leaders {
		if l != p.Name && l != "?" {
			t.Errorf("leader key changed while server processes of %s were killed: %v", p.Name, leaders)
			break
		}
	}
	if ps := c.Primaries(context.Background()); len(ps) != 1 || ps[0] != p {
		t.Errorf("primaries at the end: %v, want %s alone", nodeNames(ps), p.Name)
	}
	finish(t, c, w)
}
