package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/testcluster"
)

// standbySlot is the main cluster's permanent slot the standby cluster
// streams through.
const standbySlot = "dr_standby"

// hasWrite reports whether n has replayed the workload's row of wr.
func hasWrite(n *testcluster.Node, wr testcluster.Write) (bool, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var count int64
	err := n.QueryRow(ctx, "SELECT count(*) FROM "+testcluster.WritesTable+" WHERE writer = $1 AND seq = $2",
		[]any{wr.Writer, wr.Seq}, &count)
	if err != nil {
		return false, err.Error()
	}
	return count == 1, fmt.Sprintf("%s has %d rows %s#%d", n.Name, count, wr.Writer, wr.Seq)
}

// waitReplayed waits until every node of ns has replayed a write the
// workload had acknowledged on the main cluster after the call began.
func waitReplayed(t testing.TB, w *testcluster.Workload, timeout time.Duration, ns ...*testcluster.Node) {
	t.Helper()
	wr := w.WaitAck(t, testcluster.MultiWriter, "", time.Now(), 10*time.Second)
	for _, n := range ns {
		waitSeen(t, timeout, fmt.Sprintf("%s (acknowledged by the main cluster's %s) replayed on %s", wr, wr.Node, n.Name),
			func() (bool, string) { return hasWrite(n, wr) })
	}
}

// followsRemote reports whether standby leader sl streams from the main
// cluster through HAProxy's port rw and the slot standbySlot, on timeline
// tl unless tl is 0.
func followsRemote(sc *testcluster.Cluster, sl *testcluster.Node, rw, tl int) (bool, string) {
	rcv, ok, seen := receiver(sc, sl)
	return ok && rcv.Status == "streaming" && rcv.SenderPort == rw && rcv.SlotName == standbySlot &&
		(tl == 0 || rcv.ReceivedTLI == tl), seen
}

// slotActive reports whether p's physical slot standbySlot is active.
func slotActive(p *testcluster.Node) (bool, string) {
	s := physicalSlots(p)
	return s[standbySlot], fmt.Sprintf("%s's physical slots (name=active) %v", p.Name, s)
}

// checkStandbyRoles fails t unless sl is the standby cluster's only
// standby leader, in its member key and at pg-healthd, and no member is a
// primary by either; when describes the moment.
func checkStandbyRoles(t testing.TB, sc *testcluster.Cluster, sl *testcluster.Node, when string) {
	t.Helper()
	waitSeen(t, 5*time.Second, "the member keys and pg-healthd of the standby cluster naming "+sl.Name+" alone standby leader "+when,
		func() (bool, string) {
			ms, err := sc.Members(context.Background())
			if err != nil {
				return false, err.Error()
			}
			var seen []string
			ok := true
			for _, n := range sc.Nodes {
				role := ms[n.Name]["role"]
				wantRole, wantSL := "replica", 503
				if n == sl {
					wantRole, wantSL = "standby_leader", 200
				}
				slCode, pCode := healthStatus(n, "standby-leader"), healthStatus(n, "primary")
				ok = ok && role == wantRole && slCode == wantSL && pCode == 503
				seen = append(seen, fmt.Sprintf("%s: role %v, /standby-leader %d, /primary %d", n.Name, role, slCode, pCode))
			}
			return ok, strings.Join(seen, "; ")
		})
}

// standbyPair is a main cluster behind HAProxy and a standby cluster
// following it, as standbyClusters starts them.
type standbyPair struct {
	main *testcluster.Cluster
	w    *testcluster.Workload // writing to the main cluster
	mp   *testcluster.Node     // the main cluster's primary
	rw   int                   // HAProxy's primary port, the standby cluster's upstream
	sc   *testcluster.Cluster  // the standby cluster
	sl   *testcluster.Node     // its standby leader
	// other is the standby cluster's other member, streaming from sl.
	other *testcluster.Node
	// primaries watches the standby cluster's members for one out of
	// recovery from the standby cluster's start until stopWatching.
	primaries    <-chan []primariesSeen
	stopWatching func()
}

// standbyClusters starts a two-node main cluster (with the permanent slot
// standbySlot and the workload writing to it), HAProxy in front of it
// (examples/haproxy.cfg), and a two-node standby cluster whose
// standby_cluster is HAProxy's primary port and standbySlot. It waits until
// the standby leader alone leads (member keys, pg-healthd), streams from
// HAProxy through the slot, active on the main primary, and the other
// member streams from it, as their member keys say too.
func standbyClusters(t *testing.T) *standbyPair {
	t.Helper()
	bin := testcluster.HAProxyBinary(t)
	main, w := start(t, testcluster.Options{Nodes: 2, Healthd: true,
		ExtraDCS: map[string]any{"slots": map[string]any{standbySlot: map[string]any{"type": "physical"}}}})
	mp := main.WaitPrimary(t, 10*time.Second)

	// HAProxy's primary port always reaches the main cluster's primary.
	rw, ro, stats := testcluster.FreePort(t), testcluster.FreePort(t), testcluster.FreePort(t)
	testcluster.StartHAProxy(t, bin, haproxyConfig(t, main, rw, ro, stats))
	statsURL := fmt.Sprintf("http://127.0.0.1:%d", stats)
	want := map[string]string{}
	for _, n := range main.Nodes {
		want["primary/"+n.Name] = "DOWN"
	}
	want["primary/"+mp.Name] = "UP"
	testcluster.WaitHAProxyStatus(t, statsURL, 15*time.Second, want)

	sc := testcluster.Start(t, testcluster.Options{Nodes: 2, Healthd: true, SecretsOf: main, NamePrefix: "standby",
		ExtraDCS: map[string]any{"standby_cluster": map[string]any{
			"host": "127.0.0.1", "port": rw, "primary_slot_name": standbySlot}}})
	w.Mark("standby cluster started")
	stop, stopWatching := stopWatches(t)
	primaries := primariesWatch(sc, stop)

	// One standby leader following the main cluster, the other member
	// following it; none a primary.
	sl := sc.WaitStandbyLeader(t, 10*time.Second)
	other := sc.Nodes[0]
	if other == sl {
		other = sc.Nodes[1]
	}
	checkStandbyRoles(t, sc, sl, "after the start")
	waitSeen(t, 10*time.Second, fmt.Sprintf("%s streaming from HAProxy's port %d through slot %q", sl.Name, rw, standbySlot),
		func() (bool, string) { return followsRemote(sc, sl, rw, 0) })
	waitSeen(t, 10*time.Second, fmt.Sprintf("slot %q active on the main primary %s", standbySlot, mp.Name),
		func() (bool, string) { return slotActive(mp) })
	waitSeen(t, 10*time.Second, fmt.Sprintf("%s streaming from the standby leader %s", other.Name, sl.Name),
		func() (bool, string) { return streamsFrom(sc, other, sl) })
	waitMembersStreaming(t, sc, sl, 10*time.Second)
	return &standbyPair{main: main, w: w, mp: mp, rw: rw, sc: sc, sl: sl, other: other,
		primaries: primaries, stopWatching: stopWatching}
}

// TestStandbyCluster: a second pg-ha cluster with its own etcd follows a
// two-node main cluster as a standby cluster (standby_cluster in its
// dynamic configuration, host and port HAProxy's primary port in front of
// the main cluster, through the main cluster's permanent slot dr_standby).
// Its first member clones the main cluster and leads as the standby leader,
// in recovery, streaming from HAProxy; the other clones and streams from
// the standby leader. The application writes to the main cluster
// throughout. The main primary is killed: the standby leader follows the
// main cluster's new primary onto its timeline. The standby leader is
// killed: the other member takes over as standby leader, still in
// recovery, and the killed one rejoins under it. A switchover inside the
// standby cluster (pg-failover --to, as patronictl switchover there) moves
// the standby leader role back: the candidate follows the main cluster
// within 10 s, still in recovery, the former standby leader follows it. No
// member of the standby cluster is ever out of recovery meanwhile. Then
// the main cluster is lost
// and standby_cluster removed with pg-failover edit-config: the standby
// leader is promoted within 10 s and accepts writes, the other member
// follows it, and every write the main cluster kept is there.
func TestStandbyCluster(t *testing.T) {
	s := standbyClusters(t)
	main, w, mp, rw, sc, sl, other := s.main, s.w, s.mp, s.rw, s.sc, s.sl, s.other
	primaries, stopWatching := s.primaries, s.stopWatching
	out, stderr, code := pgFailover(t, sl, "list")
	if code != 0 {
		t.Fatalf("pg-failover list: exit %d: %s", code, lastLine(stderr))
	}
	if !strings.Contains(listRow(out, sl.Name), "Standby Leader") {
		t.Errorf("pg-failover list shows %s's row %q, want the role Standby Leader:\n%s", sl.Name, listRow(out, sl.Name), out)
	}
	waitReplayed(t, w, 10*time.Second, sl, other)

	// The main cluster fails over: the standby leader follows its new
	// primary through HAProxy, on the new timeline.
	ctx := context.Background()
	tl0, err := mp.Timeline(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w.Mark("kill the main primary " + mp.Name)
	mp.KillAll()
	np := main.WaitPrimary(t, 30*time.Second, mp)
	promoted := w.Mark("main: " + np.Name + " promoted")
	tl1, err := np.Timeline(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if tl1 <= tl0 {
		t.Fatalf("the main cluster's new primary %s is on timeline %d, want above %d", np.Name, tl1, tl0)
	}
	w.WaitAck(t, testcluster.MultiWriter, np.Name, promoted, 15*time.Second)
	took := waitSeen(t, 30*time.Second, fmt.Sprintf("%s streaming from the main cluster's new primary %s through HAProxy on timeline %d", sl.Name, np.Name, tl1),
		func() (bool, string) { return followsRemote(sc, sl, rw, tl1) })
	t.Logf("%s follows %s on timeline %d %s after its promotion", sl.Name, np.Name, tl1, took.Round(time.Millisecond))
	waitSeen(t, 10*time.Second, fmt.Sprintf("slot %q active on the main cluster's new primary %s", standbySlot, np.Name),
		func() (bool, string) { return slotActive(np) })
	waitReplayed(t, w, 15*time.Second, sl, other)
	if got, err := sc.StandbyLeader(ctx); err != nil {
		t.Fatalf("no standby leader after the main cluster's failover, want %s still: %v", sl.Name, err)
	} else if got != sl {
		t.Fatalf("standby leader %s after the main cluster's failover, want %s still", got.Name, sl.Name)
	}
	checkStandbyRoles(t, sc, sl, "after the main cluster's failover")

	// The standby leader dies: the other member takes over, in recovery,
	// following the main cluster; the dead one comes back under it.
	killed := w.Mark("kill the standby leader " + sl.Name)
	sl.KillAll()
	nsl := sc.WaitStandbyLeader(t, 2*sc.Options.TTL, sl)
	t.Logf("%s standby leader %s after %s was killed", nsl.Name, time.Since(killed).Round(time.Millisecond), sl.Name)
	waitSeen(t, 15*time.Second, fmt.Sprintf("%s streaming from HAProxy's port %d through slot %q on timeline %d", nsl.Name, rw, standbySlot, tl1),
		func() (bool, string) { return followsRemote(sc, nsl, rw, tl1) })
	waitReplayed(t, w, 15*time.Second, nsl)
	sl.Start(t)
	took = waitSeen(t, 30*time.Second, fmt.Sprintf("%s back, streaming from the standby leader %s", sl.Name, nsl.Name),
		func() (bool, string) { return streamsFrom(sc, sl, nsl) })
	t.Logf("%s streams from %s %s after its start (%s)", sl.Name, nsl.Name, took.Round(time.Millisecond), rejoined(sl))
	checkStandbyRoles(t, sc, nsl, "after "+sl.Name+" was killed and started again")
	waitMembersStreaming(t, sc, nsl, 10*time.Second)
	waitReplayed(t, w, 15*time.Second, nsl, sl)

	// A switchover inside the standby cluster, as patronictl switchover
	// does there: the standby leader role moves back to sl, which follows
	// the main cluster in recovery; nothing is promoted; nsl follows sl.
	// From here on nsl names the standby leader again.
	switchStandbyLeader(t, sc, w, nsl, sl, rw, tl1)
	nsl, sl = sl, nsl

	stopWatching()
	for _, s := range <-primaries {
		if len(s.Names) > 0 {
			t.Errorf("a member of the standby cluster out of recovery while it followed the main cluster: primaries seen %s", s)
		}
	}

	// Disaster: the main cluster is lost once the standby cluster has all
	// it kept. Removing standby_cluster promotes the standby leader.
	h := w.Stop()
	kept, last := testcluster.FinalWrites(t, main)
	for _, n := range sc.Nodes {
		waitRows(t, n, kept, fmt.Sprintf("%s holding every row of the main primary %s", n.Name, last.Name))
	}
	for _, n := range main.Nodes {
		n.KillAll()
	}
	t.Logf("main cluster killed")
	out, stderr, code = pgFailover(t, nsl, "edit-config", "--set", "standby_cluster=null", "--force")
	if code != 0 {
		t.Fatalf("pg-failover edit-config --set standby_cluster=null: exit %d: %s", code, lastLine(stderr))
	}
	took = waitSeen(t, 10*time.Second, nsl.Name+" out of recovery", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		p, err := nsl.IsPrimary(ctx)
		return err == nil && p, fmt.Sprintf("%s primary %v (%v)", nsl.Name, p, err)
	})
	t.Logf("%s promoted %s after standby_cluster was removed", nsl.Name, took.Round(time.Millisecond))
	if p := sc.WaitPrimary(t, 10*time.Second); p != nsl {
		t.Fatalf("the standby cluster's primary is %s, want its standby leader %s", p.Name, nsl.Name)
	}
	waitSeen(t, 5*time.Second, nsl.Name+"'s /primary 200", func() (bool, string) {
		code := healthStatus(nsl, "primary")
		return code == 200, fmt.Sprintf("/primary %d", code)
	})
	waitMember(t, sc, nsl.Name, 5*time.Second, "role primary", func(m map[string]any) bool { return m["role"] == "primary" })
	insertProbe(t, nsl, 1)
	waitSeen(t, 10*time.Second, fmt.Sprintf("row 1 written on %s after its promotion replayed on %s", nsl.Name, sl.Name),
		func() (bool, string) { return hasProbe(sl, 1) })
	sc.WaitReplicasStreaming(t, 15*time.Second)
	if ps := sc.Primaries(ctx); len(ps) != 1 || ps[0] != nsl {
		t.Errorf("primaries of the standby cluster after the promotion: %v, want %s alone", nodeNames(ps), nsl.Name)
	}

	// Nothing the main cluster acknowledged is lost but what its own
	// asynchronous failover may lose.
	final, p := testcluster.FinalWrites(t, sc)
	testcluster.AssertSafe(t, h, final, testcluster.LossPolicy{AllowAsync: true, MaxBytes: uint64(main.Options.MaximumLagOnFailover)})
	if !sameRows(final, kept) {
		t.Errorf("the promoted %s's rows differ from the main primary %s's last: %s", p.Name, last.Name, diffRows(final, kept))
	}
	replicasMatch(t, sc, p, final)
}

// switchStandbyLeader runs pg-failover --to to --force against the standby
// cluster sc, whose standby leader is from, and checks that the standby
// leader role moves as in Patroni: the command exits 0; within 10 s to
// holds the leader key and streams from the main cluster through HAProxy's
// port rw and slot standbySlot on timeline tl; no failover key is left;
// the member keys and pg-healthd name to alone standby leader; from
// streams from to; both replay new rows of the main cluster. Neither is
// promoted (checkStandbyRoles here; the caller's primariesWatch
// throughout). It logs how long the command took, and how long from its
// start until to streamed from the remote.
func switchStandbyLeader(t *testing.T, sc *testcluster.Cluster, w *testcluster.Workload, from, to *testcluster.Node, rw, tl int) {
	t.Helper()
	bin := testcluster.Binaries(t)
	args := []string{"--to", to.Name, "--force"}
	type run struct {
		out, stderr string
		code        int
		err         error
		took        time.Duration
	}
	ran := make(chan run, 1)
	began := w.Mark(fmt.Sprintf("standby cluster: pg-failover --to %s --force (from the standby leader %s)", to.Name, from.Name))
	go func() {
		var r run
		r.out, r.stderr, r.code, r.err = runPGFailover(bin, from, args...)
		r.took = time.Since(began)
		ran <- r
	}()
	// The command's output, once it ended, for the messages below.
	var res *run
	result := func(wait time.Duration) string {
		if res == nil {
			select {
			case r := <-ran:
				res = &r
			case <-time.After(wait):
				return "pg-failover still running"
			}
		}
		return fmt.Sprintf("pg-failover %s: exit %d (%v) after %s; stdout %q; stderr:\n%s",
			strings.Join(args, " "), res.code, res.err, res.took.Round(time.Millisecond), strings.TrimSpace(res.out), res.stderr)
	}

	// The new standby leader, timed from the command's start.
	want := fmt.Sprintf("%s holding the standby cluster's leader key and streaming from HAProxy's port %d through slot %q on timeline %d",
		to.Name, rw, standbySlot, tl)
	var seen string
	ok := holdsWithin(10*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		ld, err := sc.Leader(ctx)
		cancel()
		follows, s := followsRemote(sc, to, rw, tl)
		seen = fmt.Sprintf("leader key %q (%v); %s", ld, err, s)
		return err == nil && ld == to.Name && follows
	})
	took := time.Since(began)
	if !ok {
		t.Fatalf("want %s within 10s of pg-failover's start; seen last: %s\n%s", want, seen, result(70*time.Second))
	}
	t.Logf("standby cluster: %s standby leader, streaming from the main cluster, %s after pg-failover --to %s started",
		to.Name, took.Round(time.Millisecond), to.Name)

	// The command reports success.
	result(70 * time.Second)
	if res == nil {
		t.Fatalf("pg-failover %s still running 70s after %s streamed from the main cluster", strings.Join(args, " "), to.Name)
	}
	t.Logf("pg-failover %s → exit %d in %s\n  stdout: %s\n  stderr (last line): %s", strings.Join(args, " "), res.code,
		res.took.Round(time.Millisecond), indent(res.out), lastLine(res.stderr))
	if res.err != nil || res.code != 0 {
		t.Fatalf("switchover in the standby cluster to %s: %s", to.Name, result(0))
	}
	if !strings.HasPrefix(res.out, "switchover to "+to.Name+" done ") {
		t.Errorf("switchover in the standby cluster to %s: stdout %q, want \"switchover to %s done …\"", to.Name, res.out, to.Name)
	}

	// The request is gone, the roles moved, nobody was promoted.
	waitSeen(t, 5*time.Second, "no failover key left in the standby cluster", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		f, err := sc.Get(ctx, sc.Key("failover"))
		return err == nil && f == "", fmt.Sprintf("failover key %q (%v)", f, err)
	})
	checkStandbyRoles(t, sc, to, "after the switchover to "+to.Name)
	took = waitSeen(t, 30*time.Second, fmt.Sprintf("%s streaming from the new standby leader %s", from.Name, to.Name),
		func() (bool, string) { return streamsFrom(sc, from, to) })
	t.Logf("%s streams from %s %s after %s streamed from the main cluster (%s)", from.Name, to.Name,
		took.Round(time.Millisecond), to.Name, rejoined(from))
	waitMembersStreaming(t, sc, to, 10*time.Second)
	if ok, seen := followsRemote(sc, to, rw, tl); !ok {
		t.Errorf("%s no longer streams from the main cluster once %s follows it: %s", to.Name, from.Name, seen)
	}
	waitReplayed(t, w, 15*time.Second, to, from)
	out, stderr, code := pgFailover(t, to, "list")
	if code != 0 {
		t.Fatalf("pg-failover list: exit %d: %s", code, lastLine(stderr))
	}
	if !strings.Contains(listRow(out, to.Name), "Standby Leader") {
		t.Errorf("pg-failover list shows %s's row %q after the switchover, want the role Standby Leader:\n%s", to.Name, listRow(out, to.Name), out)
	}
}

// listRow returns the row of member name in pg-failover list's table, ""
// if there is none.
func listRow(out, name string) string {
	for _, line := range strings.Split(out, "\n") {
		parts := strings.Split(line, "|")
		if len(parts) > 2 && strings.TrimSpace(parts[1]) == name {
			return line
		}
	}
	return ""
}

// waitRows waits up to 15 s until n's workload rows are exactly kept.
func waitRows(t testing.TB, n *testcluster.Node, kept map[string][]int64, want string) {
	t.Helper()
	waitSeen(t, 15*time.Second, want, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		rows, err := n.ReadWrites(ctx)
		if err != nil {
			return false, err.Error()
		}
		return sameRows(rows, kept), diffRows(rows, kept)
	})
}
