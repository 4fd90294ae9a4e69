package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/testcluster"
)

// TestLockdIsolatedPrimaryFencesEarly: the primary is cut off from etcd
// and, at the same moment, no replica receives its WAL any more (their WAL
// receivers are stopped with SIGSTOP) while clients still reach it, at the
// timing of the measured partition (ttl 10 s, loop_wait 1 s, retry_timeout
// 4 s). Every write it acknowledges from then on is lost in the failover
// that follows, so it must stop taking writes about retry_timeout after the
// cut, not at the end of its validity (ttl − 1 s).
func TestLockdIsolatedPrimaryFencesEarly(t *testing.T) {
	o := testcluster.Options{EtcdProxy: true, TTL: 10 * time.Second, LoopWait: time.Second, RetryTimeout: 4 * time.Second}
	c, w := start(t, o)
	old := c.WaitPrimary(t, 10*time.Second)
	cut, resume := isolate(t, c, w, old)
	defer resume()
	// Until the isolated primary is fenced (its postmaster gone), at most
	// until its lease runs out.
	pid := old.PID(testcluster.Postmaster)
	for deadline := cut.Add(o.TTL); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if np := old.PID(testcluster.Postmaster); np == 0 || np != pid {
			break
		}
	}
	h := w.Snapshot()
	last, ok := lastAck(h, old.Name, h.End)
	resume()
	if !ok {
		t.Fatalf("%s acknowledged no write", old.Name)
	}
	atRisk := 0
	for _, wr := range h.ByNode(old.Name) {
		if wr.Ack.After(cut) {
			atRisk++
		}
	}
	stoppedAfter := last.Ack.Sub(cut)
	np := c.WaitPrimary(t, o.TTL+15*time.Second, old)
	w.WaitAck(t, testcluster.MultiWriter, np.Name, cut, 15*time.Second)
	old.HealEtcd()
	h = finish(t, c, w)
	final, _ := testcluster.FinalWrites(t, c)
	loss := testcluster.Lost(h, final)
	t.Logf("isolated primary %s: last acknowledged write %s after the cut (retry_timeout %s, ttl − 1 s = %s); %d writes acknowledged after the cut, %d acknowledged writes lost (a stopped receiver still gets the WAL its socket buffered); new primary %s",
		old.Name, stoppedAfter.Round(time.Millisecond), o.RetryTimeout, o.TTL-time.Second, atRisk, len(loss.Lost), np.Name)
	if limit := o.RetryTimeout + 1500*time.Millisecond; stoppedAfter > limit {
		t.Errorf("%s acknowledged writes until %s after it was cut off from etcd and from its replicas, want at most retry_timeout + 1.5 s = %s",
			old.Name, stoppedAfter.Round(time.Millisecond), limit)
	}
}

// TestLockdEtcdStallKeepsPrimary: the primary loses etcd for a bit less
// than ttl − fence margin − loop_wait while its replicas stream. Keepalives
// run on their own timer, so the first one after the stall renews the lease
// before the lead line's deadline: PostgreSQL is not fenced (same
// postmaster), the leader key does not move, and writes go on throughout.
func TestLockdEtcdStallKeepsPrimary(t *testing.T) {
	c, w := start(t, testcluster.Options{EtcdProxy: true})
	o := c.Options
	p := c.WaitPrimary(t, 10*time.Second)
	pid := p.PID(testcluster.Postmaster)
	stall := o.TTL - time.Second - o.LoopWait - 300*time.Millisecond

	cut := w.Mark("partition " + p.Name + " (primary) from etcd")
	p.PartitionFromEtcd()
	time.Sleep(stall)
	w.Mark("heal " + p.Name + "'s partition from etcd")
	p.HealEtcd()
	time.Sleep(3 * time.Second)

	h := w.Snapshot()
	gap := testcluster.MaxGapSince(h, testcluster.MultiWriter, cut)
	t.Logf("etcd stalled for %s (ttl %s, loop_wait %s): postmaster %d → %d, longest %s gap %s",
		stall, o.TTL, o.LoopWait, pid, p.PID(testcluster.Postmaster), testcluster.MultiWriter, gap.Round(time.Millisecond))
	if np := p.PID(testcluster.Postmaster); np != pid {
		t.Errorf("%s's postmaster is %d after a %s etcd stall, was %d: the primary was fenced", p.Name, np, stall, pid)
	}
	leaderIs(t, c, p)
	if gap > time.Second {
		t.Errorf("%s writer's longest gap since the stall began is %s, want at most 1 s", testcluster.MultiWriter, gap.Round(time.Millisecond))
	}
	finish(t, c, w)
}

// TestLockdSlowEtcdKeepsPrimary: etcd answers every node slowly for 20 s —
// each request takes about 1.3 s, still within the request timeout
// (retry_timeout / 2 = 1.5 s), so no request fails. One loop of pg-lockd
// makes several requests one after the other (the member key, the cluster
// read, the leader's transaction); together they take longer than the lead
// line's validity lasts past a renewal, so a keepalive that waited behind
// them would renew too late. The keepalive does not wait: the primary is not
// fenced (same postmaster, no fence in pg-supervise's log), its writes go on,
// and the leader key stays where it is.
func TestLockdSlowEtcdKeepsPrimary(t *testing.T) {
	const (
		delay = 650 * time.Millisecond // each way: a request takes 2 × delay more
		slow  = 20 * time.Second
	)
	c, w := start(t, testcluster.Options{EtcdProxy: true})
	o := c.Options
	p := c.WaitPrimary(t, 10*time.Second)
	pid := p.PID(testcluster.Postmaster)
	stop := make(chan struct{})
	leaders := leaderWatch(c, stop)

	began := w.Mark(fmt.Sprintf("etcd answers every node %s late each way", delay))
	for _, n := range c.Nodes {
		n.DelayEtcd(delay)
	}
	time.Sleep(slow)
	for _, n := range c.Nodes {
		n.DelayEtcd(0)
	}
	w.Mark("etcd answers at once again")
	time.Sleep(2 * time.Second)
	close(stop)
	seen := <-leaders

	h := w.Snapshot()
	gap := testcluster.MaxGapSince(h, testcluster.MultiWriter, began)
	np := p.PID(testcluster.Postmaster)
	t.Logf("etcd slow for %s (%s each way; ttl %s, loop_wait %s, retry_timeout %s): postmaster %d → %d, leader key %v, longest %s gap %s",
		slow, delay, o.TTL, o.LoopWait, o.RetryTimeout, pid, np, seen, testcluster.MultiWriter, gap.Round(time.Millisecond))
	if p.LogContains(testcluster.Supervise, "validity ran out") {
		t.Errorf("%s's pg-supervise fenced the primary while etcd was slow", p.Name)
	}
	if np != pid {
		t.Errorf("%s's postmaster is %d after etcd was slow, was %d: the primary was fenced or restarted", p.Name, np, pid)
	}
	if len(seen) != 1 || seen[0] != p.Name {
		t.Errorf("leader key while etcd was slow: %v, want [%s] throughout", seen, p.Name)
	}
	if gap > time.Second {
		t.Errorf("%s writer's longest gap since etcd became slow is %s, want at most 1 s", testcluster.MultiWriter, gap.Round(time.Millisecond))
	}
	finish(t, c, w)
}
