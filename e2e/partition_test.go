package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/testcluster"
)

// TestPrimaryPartitionedFromEtcd: the primary's node loses etcd (packets
// dropped both ways, connections left open) while clients still reach its
// PostgreSQL. The old primary must stop acknowledging writes before any
// other node acknowledges one, a replica must take over within about
// ttl + 2s, and once the partition heals the old primary must rejoin as a
// streaming replica of the new one. Sessions mid-transaction, mid-statement
// and mid-COPY on the old primary at the cut never commit.
func TestPrimaryPartitionedFromEtcd(t *testing.T) {
	c, w := start(t, testcluster.Options{EtcdProxy: true})
	ttl := c.Options.TTL
	old := c.WaitPrimary(t, 10*time.Second)

	holds := w.Hold(t, old, ttl+8*time.Second)
	cut := w.Mark("partition " + old.Name + " (primary) from etcd")
	old.PartitionFromEtcd()
	np := c.WaitPrimary(t, ttl+15*time.Second, old)
	w.WaitAck(t, testcluster.MultiWriter, np.Name, cut, 15*time.Second)
	h := w.Snapshot()
	last, first := handover(t, h, old, np, cut)
	takeover := first.Ack.Sub(cut)
	gap := testcluster.MaxGapSince(h, testcluster.MultiWriter, cut)
	t.Logf("primary %s partitioned from etcd: its last ack %s after the cut; %s's first ack %s after the cut, %s after the old one's last; %s writer's longest gap %s (ttl %s)",
		old.Name, last.Ack.Sub(cut).Round(time.Millisecond), np.Name, takeover.Round(time.Millisecond),
		first.Ack.Sub(last.Ack).Round(time.Millisecond), testcluster.MultiWriter, gap.Round(time.Millisecond), ttl)
	if takeover > ttl+2*time.Second {
		t.Errorf("%s acknowledged its first write %s after the partition, want at most ttl + 2s = %s",
			np.Name, takeover.Round(time.Millisecond), ttl+2*time.Second)
	}
	if gap > ttl+2*time.Second {
		t.Errorf("%s writer's longest gap after the partition is %s, want at most ttl + 2s = %s",
			testcluster.MultiWriter, gap.Round(time.Millisecond), ttl+2*time.Second)
	}

	healed := w.Mark("heal " + old.Name + "'s partition from etcd")
	old.HealEtcd()
	if err := c.ReplicasStreamingWithin(30 * time.Second); err != nil {
		t.Errorf("%s did not rejoin within 30s of the heal: %v", old.Name, err)
	} else {
		t.Logf("%s streams from %s again %s after the heal, %s",
			old.Name, np.Name, time.Since(healed).Round(time.Millisecond), rejoined(old))
	}
	checkNotRecloned(t, old)
	testcluster.AssertNoneCommittedAfter(t, holds.Wait(t, 30*time.Second), cut, "the partition from etcd")
	h = finish(t, c, w)
	// Judge the whole history too: the old primary must never have
	// acknowledged a write after the new one's first, partition or not.
	handover(t, h, old, np, cut)
}

// handover returns the last write old acknowledged in h and the first write
// np acknowledged after cut, and fails t unless the former came first.
func handover(t *testing.T, h *testcluster.History, old, np *testcluster.Node, cut time.Time) (last, first testcluster.Write) {
	t.Helper()
	first, ok := testcluster.FirstAckAfter(h, np.Name, cut)
	if !ok {
		t.Fatalf("new primary %s acknowledged no write after %s", np.Name, cut.Format("15:04:05.000"))
	}
	last, ok = lastAck(h, old.Name, h.End)
	if !ok {
		t.Fatalf("old primary %s acknowledged no write at all", old.Name)
	}
	if !last.Ack.Before(first.Ack) {
		t.Errorf("old primary %s acknowledged %s, not before the new primary's first ack %s", old.Name, last, first)
	}
	return last, first
}

// TestReplicaPartitionedFromEtcd: a replica's node loses etcd for longer
// than ttl. The primary must keep acknowledging writes without a gap longer
// than 1s, the leader key must never move, and once the partition heals the
// replica must stream from the primary again.
func TestReplicaPartitionedFromEtcd(t *testing.T) {
	c, w := start(t, testcluster.Options{EtcdProxy: true})
	ttl := c.Options.TTL
	p := c.WaitPrimary(t, 10*time.Second)
	var r *testcluster.Node
	for _, n := range c.Nodes {
		if n != p {
			r = n
			break
		}
	}

	stop := make(chan struct{})
	seen := leaderWatch(c, stop)
	cut := w.Mark("partition " + r.Name + " (replica) from etcd")
	r.PartitionFromEtcd()
	// Past the replica's lease: its member key expires meanwhile.
	time.Sleep(ttl + 3*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	rcv, err := r.WALReceiver(ctx)
	cancel()
	during := "wal receiver " + rcv.Status
	if err != nil {
		during = err.Error()
	}
	healed := w.Mark("heal " + r.Name + "'s partition from etcd")
	r.HealEtcd()
	streamErr := c.ReplicasStreamingWithin(30 * time.Second)
	close(stop)
	leaders := <-seen
	if streamErr != nil {
		t.Errorf("%s did not stream again within 30s of the heal: %v", r.Name, streamErr)
	}
	np := c.WaitPrimary(t, 10*time.Second)

	h := w.Snapshot()
	gap := testcluster.MaxGapSince(h, testcluster.MultiWriter, cut)
	pin := "pin-" + p.Name
	pinGap := testcluster.MaxGapSince(h, pin, cut)
	t.Logf("replica %s partitioned from etcd for %s (%s at the end of it), streaming again %s after the heal; leader key values seen %v; longest gaps since the cut: %s %s, %s %s",
		r.Name, healed.Sub(cut).Round(time.Millisecond), during, time.Since(healed).Round(time.Millisecond), leaders,
		testcluster.MultiWriter, gap.Round(time.Millisecond), pin, pinGap.Round(time.Millisecond))
	if np != p {
		t.Errorf("primary is now %s, want %s: a replica's partition caused a failover", np.Name, p.Name)
	}
	for _, l := range leaders {
		if l != p.Name && l != "?" {
			t.Errorf("leader key changed while replica %s was partitioned: %v", r.Name, leaders)
			break
		}
	}
	for writer, g := range map[string]time.Duration{testcluster.MultiWriter: gap, pin: pinGap} {
		if g > time.Second {
			t.Errorf("%s writer's longest gap since the partition is %s, want at most 1s", writer, g.Round(time.Millisecond))
		}
	}
	finish(t, c, w)
}

// TestMinorityEtcd: etcd runs as three members, every node lists them all.
// Two members are paused (silent, like a partition), so the one the nodes
// can still reach answers but is in the minority: no leader, no quorum. The
// primary must stop acknowledging writes within ttl of the loss of quorum
// and no other node may acknowledge any; once quorum is back the cluster
// must return within 20s to one primary and streaming replicas, a former
// primary rewound rather than cloned again. Sessions mid-transaction,
// mid-statement and mid-COPY on the primary when quorum is lost never
// commit: the fence kills them.
//
// All nodes are on the minority side here: cutting one etcd member off from
// the other two while they keep quorum would need the peer traffic of each
// pair of members controlled separately, which one proxy per member cannot
// do (each member serves and dials both directions of its peer streams).
func TestMinorityEtcd(t *testing.T) {
	c, w := start(t, testcluster.Options{EtcdMembers: 3})
	ttl := c.Options.TTL
	old := c.WaitPrimary(t, 10*time.Second)

	holds := w.Hold(t, old, ttl+8*time.Second)
	lost := w.Mark("pause etcd members " + c.EtcdMembers[1].Name() + " and " + c.EtcdMembers[2].Name() +
		": " + c.EtcdMembers[0].Name() + " alone, without quorum")
	for _, m := range c.EtcdMembers[1:] {
		m.Pause()
	}
	time.Sleep(ttl + 3*time.Second)
	back := w.Mark("resume the paused etcd members")
	for _, m := range c.EtcdMembers[1:] {
		m.Resume()
	}
	np := c.WaitPrimary(t, 30*time.Second)
	first := w.WaitAck(t, testcluster.MultiWriter, np.Name, back, 15*time.Second)

	h := w.Snapshot()
	for _, wr := range h.Writes {
		if !wr.Ack.After(lost) || !wr.Ack.Before(back) {
			continue
		}
		if wr.Node != old.Name {
			t.Errorf("%s acknowledged %s while etcd had no quorum", wr.Node, wr)
		} else if wr.Ack.After(lost.Add(ttl)) {
			t.Errorf("%s acknowledged %s %s after etcd lost quorum, more than ttl %s: not fenced",
				old.Name, wr, wr.Ack.Sub(lost).Round(time.Millisecond), ttl)
		}
	}
	testcluster.AssertNoneCommittedAfter(t, holds.Wait(t, 30*time.Second), lost, "the loss of etcd's quorum")
	last, _ := lastAck(h, old.Name, back)
	t.Logf("etcd without quorum for %s: primary %s before, %s after; old primary's last ack %s after quorum was lost; %s writer's first ack %s after quorum returned",
		back.Sub(lost).Round(time.Millisecond), old.Name, np.Name, last.Ack.Sub(lost).Round(time.Millisecond),
		testcluster.MultiWriter, first.Ack.Sub(back).Round(time.Millisecond))
	if err := c.ReplicasStreamingWithin(20 * time.Second); err != nil {
		t.Errorf("replicas not streaming within 20s of the primary's return: %v", err)
	} else if np != old {
		t.Logf("every replica streams from %s %s after quorum returned; old primary %s %s",
			np.Name, time.Since(back).Round(time.Millisecond), old.Name, rejoined(old))
	}
	if np != old {
		checkNotRecloned(t, old)
	}
	finish(t, c, w)
}

// rejoined says, from its pg-supervise log, how a former primary became a
// replica of the new one.
func rejoined(n *testcluster.Node) string {
	var how []string
	for _, m := range []struct{ msg, what string }{
		{"rewound with pg_rewind", "rewound with pg_rewind"},
		{"no rewind required", "found no rewind required"},
		{"pg_rewind failed", "saw pg_rewind fail"},
		{"re-cloning from the leader", "was cloned again from the leader"},
	} {
		if n.LogContains(testcluster.Supervise, m.msg) {
			how = append(how, m.what)
		}
	}
	if len(how) == 0 {
		return "(its pg-supervise log names no rewind)"
	}
	return strings.Join(how, ", ")
}

// checkNotRecloned fails t if former primary n was cloned again instead of
// rewound: pg_rewind is on, so a clone means it failed.
func checkNotRecloned(t *testing.T, n *testcluster.Node) {
	t.Helper()
	if n.LogContains(testcluster.Supervise, "re-cloning from the leader") {
		t.Errorf("former primary %s was cloned again instead of rewound (%s)", n.Name, rejoined(n))
	}
}
