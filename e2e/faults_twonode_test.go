package e2e

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/testcluster"
)

// TestTwoNodes: a cluster of one primary and one replica under continuous
// writes goes through a switchover, the death and return of its replica, a
// hang of the primary's lock holder past ttl, and the death of the
// primary's node. Each fault that ends the primary's tenure strikes while
// sessions on it are mid-transaction, mid-statement and mid-COPY, and none
// of them commits afterwards; the replica's death moves nothing; nothing
// acknowledged is lost and there is never a second writable primary.
func TestTwoNodes(t *testing.T) {
	c, w := start(t, testcluster.Options{Nodes: 2})
	ttl := c.Options.TTL
	other := func(n *testcluster.Node) *testcluster.Node {
		if n == c.Nodes[0] {
			return c.Nodes[1]
		}
		return c.Nodes[0]
	}

	// Switchover.
	p := c.WaitPrimary(t, 10*time.Second)
	c.WaitReplicasStreaming(t, 30*time.Second)
	waitMembersStreaming(t, c, p, 10*time.Second)
	r := other(p)
	holds := w.Hold(t, p, 5*time.Second)
	began := w.Mark("switchover " + p.Name + " → " + r.Name)
	switchTo(t, c, p, r)
	t.Logf("switchover %s → %s done in %s", p.Name, r.Name, time.Since(began).Round(time.Millisecond))
	testcluster.AssertNoneCommittedAfter(t, holds.Wait(t, 30*time.Second), began, "the switchover")
	holdTenure(time.Now())

	// Replica death and return: the primary keeps its key and its writes.
	p, r = r, p
	stop := make(chan struct{})
	seen := leaderWatch(c, stop)
	killed := w.Mark("kill replica node " + r.Name)
	r.KillAll()
	time.Sleep(ttl + 2*time.Second) // past the dead replica's member key
	w.Mark("start " + r.Name + " again")
	r.Start(t)
	if err := c.ReplicasStreamingWithin(45 * time.Second); err != nil {
		t.Fatalf("replica %s did not return: %v", r.Name, err)
	}
	close(stop)
	leaders := <-seen
	for _, l := range leaders {
		if l != p.Name && l != "?" {
			t.Errorf("leader key changed while replica %s was dead: %v", r.Name, leaders)
			break
		}
	}
	if gap := testcluster.MaxGapSince(w.Snapshot(), testcluster.MultiWriter, killed); gap > time.Second {
		t.Errorf("%s writer's longest gap while replica %s was dead is %s, want at most 1s", testcluster.MultiWriter, r.Name, gap.Round(time.Millisecond))
	}
	t.Logf("replica %s dead and back: streaming again %s after the kill; leader key values seen %v",
		r.Name, time.Since(killed).Round(time.Millisecond), leaders)
	waitMembersStreaming(t, c, p, 10*time.Second)

	// The lock holder hangs past ttl: the primary is fenced, the replica
	// takes over, and the old primary rejoins once pg-lockd runs again.
	holds = w.Hold(t, p, ttl+8*time.Second)
	stopped := w.Mark("SIGSTOP pg-lockd of " + p.Name)
	if err := p.Signal(testcluster.Lockd, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	np := c.WaitPrimary(t, ttl+10*time.Second, p)
	w.Mark("SIGCONT pg-lockd of " + p.Name)
	if err := p.Signal(testcluster.Lockd, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	first := w.WaitAck(t, testcluster.MultiWriter, np.Name, stopped, 15*time.Second)
	t.Logf("pg-lockd of %s stopped: %s's first write %s later", p.Name, np.Name, first.Ack.Sub(stopped).Round(time.Millisecond))
	if err := c.ReplicasStreamingWithin(45 * time.Second); err != nil {
		t.Fatalf("%s did not rejoin after its pg-lockd ran again: %v", p.Name, err)
	}
	testcluster.AssertNoneCommittedAfter(t, holds.Wait(t, 30*time.Second), stopped, "the lock holder's hang")
	waitMembersStreaming(t, c, np, 10*time.Second)

	// Node death of the primary.
	p = np
	holds = w.Hold(t, p, 4*time.Second)
	killed = w.Mark("kill node " + p.Name)
	p.KillAll()
	np = c.WaitPrimary(t, ttl+15*time.Second, p)
	first = w.WaitAck(t, testcluster.MultiWriter, np.Name, killed, 15*time.Second)
	t.Logf("node death of %s: %s's first write %s later", p.Name, np.Name, first.Ack.Sub(killed).Round(time.Millisecond))
	testcluster.AssertNoneCommittedAfter(t, holds.Wait(t, 30*time.Second), killed, "the node's death")
	w.Mark("start " + p.Name + " again")
	p.Start(t)
	if ps := c.Primaries(context.Background()); len(ps) != 1 {
		t.Errorf("%d primaries after %s started again: %v", len(ps), p.Name, nodeNames(ps))
	}
	finish(t, c, w)
}
