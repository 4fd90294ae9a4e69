package e2e

import (
	"context"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/testcluster"
)

// memberFields are the Patroni fields every members/<name> key must carry.
var memberFields = []string{"conn_url", "api_url", "state", "role", "xlog_location", "timeline"}

// TestBootstrap: three nodes come up as one primary and two streaming
// replicas; the leader key names the primary and every member key carries
// Patroni's fields.
func TestBootstrap(t *testing.T) {
	c, w := start(t, testcluster.Options{})
	ctx := context.Background()

	leader, err := c.Leader(ctx)
	if err != nil {
		t.Fatalf("read leader key: %v", err)
	}
	ps := c.Primaries(ctx)
	if len(ps) != 1 || ps[0].Name != leader {
		t.Errorf("primaries %v, leader key %q: want exactly the leader", nodeNames(ps), leader)
	}

	// Member keys are refreshed every loop; give them a few loops.
	var problems []string
	deadline := time.Now().Add(5 * time.Second)
	for {
		problems = memberProblems(t, c, leader)
		if len(problems) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, p := range problems {
		t.Error(p)
	}
	finish(t, c, w)
}

func memberProblems(t *testing.T, c *testcluster.Cluster, leader string) []string {
	members, err := c.Members(context.Background())
	if err != nil {
		return []string{err.Error()}
	}
	var problems []string
	for _, n := range c.Nodes {
		m, ok := members[n.Name]
		if !ok {
			problems = append(problems, "no member key "+c.Key("members/"+n.Name))
			continue
		}
		for _, f := range memberFields {
			if _, ok := m[f]; !ok {
				problems = append(problems, "member "+n.Name+" lacks field "+f+": "+fmtJSON(m))
			}
		}
		role, _ := m["role"].(string)
		if n.Name == leader && role != "primary" && role != "master" {
			problems = append(problems, "leader "+n.Name+" has role "+role+", want primary (or master)")
		}
		if n.Name != leader && role != "replica" {
			problems = append(problems, "member "+n.Name+" has role "+role+", want replica")
		}
	}
	return problems
}

// TestPostmasterCrash: kill -9 of the primary's postmaster restarts it in
// place; the leader key never moves. Sessions in the middle of a
// transaction or of a long statement at the crash never commit: the
// backends that outlive their postmaster are killed before the restart.
func TestPostmasterCrash(t *testing.T) {
	c, w := start(t, testcluster.Options{})
	old := c.WaitPrimary(t, 10*time.Second)
	pid := old.PID(testcluster.Postmaster)
	if pid == 0 {
		t.Fatalf("%s: no postmaster.pid", old.Name)
	}

	holds := w.Hold(t, old, 6*time.Second)
	before := old.ServerPIDs()
	stop := make(chan struct{})
	seen := leaderWatch(c, stop)
	killed := w.Mark("kill -9 postmaster of " + old.Name)
	if err := old.Signal(testcluster.Postmaster, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, "a new postmaster on "+old.Name, func() bool {
		np := old.PID(testcluster.Postmaster)
		return np != 0 && np != pid
	})
	restarted := w.Mark("new postmaster on " + old.Name)
	if left := testcluster.Alive(before); len(left) > 0 {
		t.Errorf("server processes %v of the crashed postmaster still alive after the restart", left)
	}
	w.WaitAck(t, testcluster.MultiWriter, "", restarted, 30*time.Second)
	p := c.WaitPrimary(t, 30*time.Second)
	close(stop)
	leaders := <-seen

	if p != old {
		t.Errorf("primary is now %s, want %s restarted in place", p.Name, old.Name)
	}
	for _, l := range leaders {
		if l != old.Name && l != "?" {
			t.Errorf("leader key changed during the crash: %v", leaders)
			break
		}
	}
	gap := testcluster.MaxGapSince(w.Snapshot(), testcluster.MultiWriter, killed)
	t.Logf("postmaster crash: restarted %s after the kill; %s writer's longest gap %s",
		restarted.Sub(killed).Round(time.Millisecond), testcluster.MultiWriter, gap.Round(time.Millisecond))
	testcluster.AssertNoneCommittedAfter(t, holds.Wait(t, 30*time.Second), killed, "the postmaster crash")
	finish(t, c, w)
}

// TestNodeDeath: the primary's node dies; a replica accepts writes within
// ttl + 2s; the old node, started again, rejoins as a streaming replica.
func TestNodeDeath(t *testing.T) {
	c, w := start(t, testcluster.Options{})
	ttl := c.Options.TTL
	old := c.WaitPrimary(t, 10*time.Second)

	holds := w.Hold(t, old, ttl+4*time.Second)
	killed := w.Mark("kill node " + old.Name)
	old.KillAll()
	np := c.WaitPrimary(t, ttl+15*time.Second, old)
	first := w.WaitAck(t, testcluster.MultiWriter, np.Name, killed, 15*time.Second)
	gap := testcluster.MaxGapSince(w.Snapshot(), testcluster.MultiWriter, killed)
	t.Logf("node death: %s took over; %s writer's first write there %s after the kill, longest gap %s (ttl %s)",
		np.Name, testcluster.MultiWriter, first.Ack.Sub(killed).Round(time.Millisecond), gap.Round(time.Millisecond), ttl)
	if gap > ttl+2*time.Second {
		t.Errorf("%s writer's longest gap after the node death is %s, want at most ttl + 2s = %s",
			testcluster.MultiWriter, gap.Round(time.Millisecond), ttl+2*time.Second)
	}
	testcluster.AssertNoneCommittedAfter(t, holds.Wait(t, 30*time.Second), killed, "the node's death")

	w.Mark("start " + old.Name + " again")
	old.Start(t)
	if err := c.ReplicasStreamingWithin(45 * time.Second); err != nil {
		t.Errorf("%s did not rejoin: %v", old.Name, err)
		finish(t, c, w)
		return
	}
	ctx := context.Background()
	ptl, err1 := np.Timeline(ctx)
	otl, err2 := old.Timeline(ctx)
	rewound := old.LogContains(testcluster.Supervise, "rewind")
	t.Logf("%s rejoined: timeline %d (primary %s: %d), supervise log mentions rewind: %v", old.Name, otl, np.Name, ptl, rewound)
	if !rewound && (err1 != nil || err2 != nil || otl != ptl) {
		t.Errorf("%s rejoined without a rewind and on timeline %d (%v), primary %s on %d (%v)", old.Name, otl, err2, np.Name, ptl, err1)
	}
	finish(t, c, w)
}

// TestLockdStopped: the primary's pg-lockd is frozen for ttl + 3s. The old
// primary must stop acknowledging writes before a replica is promoted, and
// rejoin as a replica once pg-lockd runs again. Sessions in the middle of a
// transaction, of a CPU-bound statement or of a COPY when the fence comes
// never commit: every server process dies, whatever its process group.
func TestLockdStopped(t *testing.T) {
	c, w := start(t, testcluster.Options{})
	ttl := c.Options.TTL
	old := c.WaitPrimary(t, 10*time.Second)

	holds := w.Hold(t, old, ttl+8*time.Second)
	before := old.ServerPIDs()
	stopped := w.Mark("SIGSTOP pg-lockd of " + old.Name)
	if err := old.Signal(testcluster.Lockd, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	np, _ := c.Primary(context.Background(), old)
	for deadline := time.Now().Add(ttl + 5*time.Second); np == nil && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		np, _ = c.Primary(context.Background(), old)
	}
	if np == nil {
		t.Errorf("no other primary within ttl + 5s of stopping %s's pg-lockd", old.Name)
	} else if left := testcluster.Alive(before); len(left) > 0 {
		t.Errorf("%s is primary while server processes %v of the fenced primary %s are alive", np.Name, left, old.Name)
	}
	time.Sleep(time.Until(stopped.Add(ttl + 3*time.Second)))
	w.Mark("SIGCONT pg-lockd of " + old.Name)
	if err := old.Signal(testcluster.Lockd, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	np = c.WaitPrimary(t, 20*time.Second)
	if np == old {
		t.Errorf("%s is still the primary after its pg-lockd was stopped for ttl + 3s: no failover", old.Name)
		finish(t, c, w)
		return
	}
	w.WaitAck(t, testcluster.MultiWriter, np.Name, stopped, 15*time.Second)
	h := w.Snapshot()
	first, _ := testcluster.FirstAckAfter(h, np.Name, stopped) // any writer's
	if last, ok := lastAck(h, old.Name, h.End); ok {
		t.Logf("old primary %s: last ack %s after SIGSTOP; new primary %s: first ack %s after, %s after the old one's last",
			old.Name, last.Ack.Sub(stopped).Round(time.Millisecond), np.Name,
			first.Ack.Sub(stopped).Round(time.Millisecond), first.Ack.Sub(last.Ack).Round(time.Millisecond))
		if !last.Ack.Before(first.Ack) {
			t.Errorf("old primary %s acknowledged %s, not before the new primary %s's first ack %s at %s",
				old.Name, last, np.Name, first, first.Ack.Format("15:04:05.000"))
		}
	}
	testcluster.AssertNoneCommittedAfter(t, holds.Wait(t, 30*time.Second), stopped, "the fence")
	finish(t, c, w)
}

// TestLockdKilled: with the FIFO wiring, the primary's pg-lockd is killed
// and started again at once, as systemd would. There must be no split
// brain, and the cluster must end with one primary and streaming replicas;
// the goal is no failover at all, which is reported.
func TestLockdKilled(t *testing.T) {
	c, w := start(t, testcluster.Options{FIFO: true})
	ttl := c.Options.TTL
	old := c.WaitPrimary(t, 10*time.Second)

	stop := make(chan struct{})
	seen := leaderWatch(c, stop)
	killed := w.Mark("kill -9 pg-lockd of " + old.Name + " and start it again")
	if err := old.Signal(testcluster.Lockd, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if !old.Wait(testcluster.Lockd, 5*time.Second) {
		t.Fatalf("%s pg-lockd survived SIGKILL", old.Name)
	}
	old.StartLockd(t)
	// The killed pg-lockd's lease lives up to ttl; watch past it.
	time.Sleep(ttl + 3*time.Second)
	p := c.WaitPrimary(t, 30*time.Second)
	close(stop)
	leaders := <-seen
	if ps := c.Primaries(context.Background()); len(ps) != 1 {
		t.Errorf("%d primaries after pg-lockd's restart: %v", len(ps), nodeNames(ps))
	}
	gap := testcluster.MaxGapSince(w.Snapshot(), testcluster.MultiWriter, killed)
	failover := p != old || slices.ContainsFunc(leaders, func(l string) bool { return l != old.Name && l != "?" && l != "" })
	t.Logf("pg-lockd kill -9 and restart on primary %s: failover happened: %v (leader key values seen %v, primary now %s); %s writer's longest gap %s",
		old.Name, failover, leaders, p.Name, testcluster.MultiWriter, gap.Round(time.Millisecond))
	finish(t, c, w)
}

// TestEtcdDown: etcd is down for 2 × ttl. The primary must stop
// acknowledging writes within ttl of losing etcd (it cannot renew its
// lease), and the cluster must come back to one primary and streaming
// replicas once etcd returns. Sessions mid-transaction, mid-statement and
// mid-COPY on the primary when etcd stops never commit: the fence kills
// them.
func TestEtcdDown(t *testing.T) {
	c, w := start(t, testcluster.Options{})
	ttl := c.Options.TTL
	old := c.WaitPrimary(t, 10*time.Second)

	holds := w.Hold(t, old, ttl+8*time.Second)
	down := w.Mark("stop etcd")
	c.Etcd.Stop()
	time.Sleep(2 * ttl)
	up := w.Mark("start etcd")
	c.Etcd.Start()
	np := c.WaitPrimary(t, 30*time.Second)
	w.WaitAck(t, testcluster.MultiWriter, np.Name, up, 15*time.Second)

	testcluster.AssertNoneCommittedAfter(t, holds.Wait(t, 30*time.Second), down, "etcd's stop")
	h := w.Snapshot()
	for _, wr := range h.ByNode(old.Name) {
		if wr.Ack.After(down.Add(ttl)) && wr.Ack.Before(up) {
			t.Errorf("%s acknowledged %s %s after etcd stopped, more than ttl %s: not fenced",
				old.Name, wr, wr.Ack.Sub(down).Round(time.Millisecond), ttl)
			break
		}
	}
	last, _ := lastAck(h, old.Name, up)
	first, _ := testcluster.FirstAckAfter(h, "", up)
	t.Logf("etcd down %s: primary %s before, %s after; old primary's last ack %s after etcd stopped, first ack %s after it started again; %s writer's longest gap %s",
		2*ttl, old.Name, np.Name, last.Ack.Sub(down).Round(time.Millisecond), first.Ack.Sub(up).Round(time.Millisecond),
		testcluster.MultiWriter, testcluster.MaxGap(h, testcluster.MultiWriter).Round(time.Millisecond))
	finish(t, c, w)
}

// TestPlannedStop: SIGTERM to every process of the primary's node; a
// replica accepts writes within 2s. PostgreSQL's fast shutdown ends the
// sessions mid-transaction, mid-statement and mid-COPY without committing
// them: none commits after the stop began, on either node.
func TestPlannedStop(t *testing.T) {
	c, w := start(t, testcluster.Options{})
	old := c.WaitPrimary(t, 10*time.Second)

	holds := w.Hold(t, old, 5*time.Second)
	stopped := w.Mark("SIGTERM every process of " + old.Name)
	old.Stop(t, syscall.SIGTERM)
	np := c.WaitPrimary(t, 15*time.Second, old)
	first := w.WaitAck(t, testcluster.MultiWriter, np.Name, stopped, 10*time.Second)
	gap := testcluster.MaxGapSince(w.Snapshot(), testcluster.MultiWriter, stopped)
	t.Logf("planned stop of %s: %s took over; %s writer's first write there %s after SIGTERM, longest gap %s",
		old.Name, np.Name, testcluster.MultiWriter, first.Ack.Sub(stopped).Round(time.Millisecond), gap.Round(time.Millisecond))
	if gap > 2*time.Second {
		t.Errorf("%s writer's longest gap after the planned stop is %s, want at most 2s", testcluster.MultiWriter, gap.Round(time.Millisecond))
	}
	if old.Running(testcluster.Postmaster) {
		t.Errorf("%s: PostgreSQL still runs after its node was stopped", old.Name)
	}
	testcluster.AssertNoneCommittedAfter(t, holds.Wait(t, 30*time.Second), stopped, "the planned stop")
	finish(t, c, w)
}

func nodeNames(ns []*testcluster.Node) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.Name
	}
	return out
}
