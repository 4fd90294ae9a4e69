package e2e

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pg-ha/pg-ha/lib/syncrep"
	"github.com/pg-ha/pg-ha/lib/testcluster"
)

// The synchronous replication tests (Patroni 4's synchronous_mode on,
// quorum and strict): whatever fails, no acknowledged write is lost, only a
// synchronous standby is promoted, a nosync member is never listed, and
// strict mode holds commits back while no standby can confirm them.

// syncNodeDeaths is how many times in a row each synchronous mode's
// failover test kills the primary's node (and starts it again); each costs
// about 11 s. PGHA_TEST_SYNC_NODE_DEATHS overrides it.
const syncNodeDeaths = 10

func nodeDeaths(t testing.TB) int {
	if v := os.Getenv("PGHA_TEST_SYNC_NODE_DEATHS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("PGHA_TEST_SYNC_NODE_DEATHS=%q: want a positive number", v)
		}
		return n
	}
	return syncNodeDeaths
}

// syncOptions is a cluster of nodes in synchronous mode with one
// synchronous standby. Its ttl of 6s is 2s below pg-ha's default, so that
// the repeated failovers fit the suite's time; with loop_wait 1 and
// retry_timeout 3 it keeps the start-up budget (loop_wait + retry_timeout +
// the 1s fence margin ≤ ttl).
func syncOptions(nodes int, mode string, strict bool) testcluster.Options {
	return testcluster.Options{
		Nodes: nodes, SyncMode: mode, SyncStrict: strict, SyncNodeCount: 1,
		TTL: 6 * time.Second, LoopWait: time.Second, RetryTimeout: 3 * time.Second,
	}
}

// synced reports whether s is the steady state of mode with want
// synchronous standbys: the sync key names the leader and exactly the
// standbys the leader's synchronous_standby_names lists, FIRST 1 of one
// for on, ANY 1 of want for quorum.
func synced(s testcluster.SyncState, mode string, want int) bool {
	if !s.Agrees() || len(s.Parsed.Names) != want || s.Parsed.Num != 1 {
		return false
	}
	if mode == testcluster.SyncQuorum {
		return s.Parsed.Method == syncrep.Quorum
	}
	return s.Parsed.Method == syncrep.Priority
}

// waitSynced waits until every running node streams from the leader and
// synchronous replication has settled with want standbys (see synced), and
// returns that state.
func waitSynced(t testing.TB, c *testcluster.Cluster, mode string, want int) testcluster.SyncState {
	t.Helper()
	c.WaitReplicasStreaming(t, 45*time.Second)
	began := time.Now()
	s := c.WaitSync(t, 30*time.Second, fmt.Sprintf("synchronous replication (%s) with %d standby(s)", mode, want),
		func(s testcluster.SyncState) bool { return synced(s, mode, want) })
	t.Logf("synchronous: %s (settled after %s)", s, time.Since(began).Round(time.Millisecond))
	return s
}

// startSync starts a cluster with o, waits until synchronous replication
// has settled with want standbys, then starts the workload and lets it warm
// up. The workload's first commit thus goes to a standby that counts: a
// commit made while the primary still waits for a standby it has not
// listed is released only by that standby's next reply, which an idle
// standby sends once per wal_receiver_status_interval (10s).
func startSync(t testing.TB, o testcluster.Options, want int) (*testcluster.Cluster, *testcluster.Workload) {
	t.Helper()
	c := testcluster.Start(t, o)
	waitSynced(t, c, o.SyncMode, want)
	w := testcluster.StartWorkload(t, c)
	time.Sleep(warmUp)
	return c, w
}

// finishSync is finish for synchronous mode: the cluster must be whole
// again and no acknowledged write may be lost, not even one acknowledged
// in the last moment before a failover.
func finishSync(t testing.TB, c *testcluster.Cluster, w *testcluster.Workload) *testcluster.History {
	t.Helper()
	return finishWith(t, c, w)
}

// TestSyncOnFailovers proves, for synchronous_mode on: syncNodeDeaths node
// deaths of the primary in a row (the old node started again each time),
// then a pg-lockd SIGSTOPped past ttl on the primary, then the primary cut
// off from etcd and from its replicas while clients reach it, then a
// switchover,
// each promote the synchronous standby the sync key named, never leave two
// nodes acknowledging writes, and lose no acknowledged write.
func TestSyncOnFailovers(t *testing.T) {
	t.Parallel() // with the other two, after every other test: they mostly wait
	syncFailovers(t, testcluster.SyncOn, false)
}

// TestSyncQuorumFailovers is TestSyncOnFailovers for synchronous_mode
// quorum (3 nodes, synchronous_node_count 1: ANY 1 of both replicas): only
// a listed voter is promoted, and nothing acknowledged is lost.
func TestSyncQuorumFailovers(t *testing.T) {
	t.Parallel() // with the other two, after every other test: they mostly wait
	syncFailovers(t, testcluster.SyncQuorum, false)
}

// TestSyncStrictFailovers is TestSyncOnFailovers with
// synchronous_mode_strict: after each failover, writes resume once the
// remaining replica is the new primary's synchronous standby, and nothing
// acknowledged is lost.
func TestSyncStrictFailovers(t *testing.T) {
	t.Parallel() // with the other two, after every other test: they mostly wait
	syncFailovers(t, testcluster.SyncOn, true)
}

func syncFailovers(t *testing.T, mode string, strict bool) {
	want := 1
	if mode == testcluster.SyncQuorum {
		want = 2 // every replica votes
	}
	o := syncOptions(3, mode, strict)
	o.EtcdProxy = true
	c, w := startSync(t, o, want)
	ttl := c.Options.TTL

	// promotedListed checks that the node promoted after a fault was a
	// synchronous standby in the state before it.
	promotedListed := func(fault string, before testcluster.SyncState, np *testcluster.Node) {
		t.Helper()
		if !before.Lists(np.Name) {
			t.Errorf("%s: %s was promoted, but it was not a synchronous standby: %s", fault, np.Name, before)
		}
	}

	deaths := nodeDeaths(t)
	for i := range deaths {
		s := waitSynced(t, c, mode, want)
		old := s.Leader
		fault := fmt.Sprintf("node death %d/%d of primary %s", i+1, deaths, old.Name)
		holds := w.Hold(t, old, 4*time.Second)
		killed := w.Mark(fault)
		old.KillAll()
		np := c.WaitPromoted(t, ttl+15*time.Second, old)
		promotedListed(fault, s, np)
		testcluster.AssertNoneCommittedAfter(t, holds.Wait(t, 30*time.Second), killed, fault)
		first := w.WaitAck(t, testcluster.MultiWriter, np.Name, killed, 30*time.Second)
		t.Logf("%s: %s promoted; first write there %s after the kill", fault, np.Name, first.Ack.Sub(killed).Round(time.Millisecond))
		w.Mark("start " + old.Name + " again")
		restarted := time.Now()
		old.Start(t)
		c.WaitReplicasStreaming(t, 45*time.Second)
		t.Logf("%s started again and streaming from %s after %s", old.Name, np.Name, time.Since(restarted).Round(time.Millisecond))
	}

	s := waitSynced(t, c, mode, want)
	old := s.Leader
	fault := "pg-lockd of primary " + old.Name + " stopped past ttl"
	// Long statements and open transactions on the old primary, busy past
	// the new primary's promotion: none may commit after the hang.
	holds := w.Hold(t, old, ttl+8*time.Second)
	stopped := w.Mark(fault)
	if err := old.Signal(testcluster.Lockd, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	np := c.WaitPromoted(t, ttl+15*time.Second, old)
	testcluster.AssertNoneCommittedAfter(t, holds.Wait(t, 40*time.Second), stopped, fault)
	w.Mark("SIGCONT pg-lockd of " + old.Name)
	if err := old.Signal(testcluster.Lockd, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	promotedListed(fault, s, np)
	first := w.WaitAck(t, testcluster.MultiWriter, np.Name, stopped, 30*time.Second)
	t.Logf("%s: %s promoted; first write there %s after SIGSTOP", fault, np.Name, first.Ack.Sub(stopped).Round(time.Millisecond))

	// The primary cut off from etcd and from its replicas (their WAL
	// receivers stopped) while clients still reach it: no commit can be
	// acknowledged without a synchronous standby, so nothing it took is
	// lost; it is fenced early, and a listed standby takes over once its
	// receiver runs again.
	s = waitSynced(t, c, mode, want)
	old = s.Leader
	fault = "primary " + old.Name + " cut off from etcd and from its replicas"
	holds = w.Hold(t, old, ttl+8*time.Second)
	cut, resume := isolate(t, c, w, old)
	pid := old.PID(testcluster.Postmaster)
	for deadline := cut.Add(ttl); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if p := old.PID(testcluster.Postmaster); p == 0 || p != pid {
			break
		}
	}
	t.Logf("%s: its postmaster gone %s after the cut", fault, time.Since(cut).Round(time.Millisecond))
	resume()
	np = c.WaitPromoted(t, ttl+15*time.Second, old)
	promotedListed(fault, s, np)
	testcluster.AssertNoneCommittedAfter(t, holds.Wait(t, 40*time.Second), cut, fault)
	first = w.WaitAck(t, testcluster.MultiWriter, np.Name, cut, 30*time.Second)
	t.Logf("%s: %s promoted; first write there %s after the cut", fault, np.Name, first.Ack.Sub(cut).Round(time.Millisecond))
	w.Mark("heal " + old.Name + "'s partition")
	old.HealEtcd()
	c.WaitReplicasStreaming(t, 45*time.Second)

	s = waitSynced(t, c, mode, want)
	to := c.Node(s.Key.Standbys[0])
	waitSwitchable(t, c, s.Leader, to, 15*time.Second)
	holds = w.Hold(t, s.Leader, 20*time.Second)
	began := w.Mark("switchover " + s.Leader.Name + " → " + to.Name)
	switchTo(t, c, s.Leader, to)
	testcluster.AssertNoneCommittedAfter(t, holds.Wait(t, 40*time.Second), began, "the switchover")
	finishSync(t, c, w)
}

// waitSwitchable waits up to timeout until pg-failover --dry-run finds
// to eligible for a switchover from leader, and fails t with the member
// keys and pg-failover's last reason otherwise. The member keys trail the
// servers by up to a loop_wait, so a candidate that just caught up may be
// refused for a moment.
func waitSwitchable(t testing.TB, c *testcluster.Cluster, leader, to *testcluster.Node, timeout time.Duration) {
	t.Helper()
	bin := testcluster.Binaries(t)
	deadline := time.Now().Add(timeout)
	for {
		_, stderr, code, err := runPGFailover(bin, leader, "--dry-run", "--to", to.Name)
		if err == nil && code == 0 {
			return
		}
		if time.Now().After(deadline) {
			ms, merr := c.Members(context.Background())
			var keys []string
			for _, n := range c.Nodes {
				keys = append(keys, n.Name+": "+fmtJSON(ms[n.Name]))
			}
			status, _ := c.Get(context.Background(), c.Key("status"))
			t.Fatalf("%s not eligible for a switchover within %s: exit %d %v: %s\nmember keys (%v):\n  %s\nstatus key: %s",
				to.Name, timeout, code, err, lastLine(stderr), merr, strings.Join(keys, "\n  "), status)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// syncWatch samples the sync state every 100ms until stop is closed and
// returns every sample in which check failed (with its error), at most 10.
func syncWatch(c *testcluster.Cluster, stop <-chan struct{}, check func(testcluster.SyncState) error) <-chan []string {
	out := make(chan []string, 1)
	go func() {
		var bad []string
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			s, err := c.Sync(ctx)
			cancel()
			if err == nil {
				if err := check(s); err != nil && len(bad) < 10 {
					bad = append(bad, time.Now().Format("15:04:05.000")+": "+err.Error())
				}
			}
			select {
			case <-stop:
				out <- bad
				return
			case <-tick.C:
			}
		}
	}()
	return out
}

// TestSyncNoSyncMember proves that a member tagged nosync is never a
// synchronous standby: with synchronous_node_count 2 it is left out of the
// sync key and of synchronous_standby_names although there is room for it,
// and still when the only other replica dies and it is the one standby
// left (non-strict: commits then go on without a synchronous standby). The
// state is sampled every 100ms throughout.
func TestSyncNoSyncMember(t *testing.T) {
	o := syncOptions(3, testcluster.SyncOn, false)
	o.SyncNodeCount = 2
	o.Tags = func(i int) map[string]any { return map[string]any{"nosync": i == 2} }
	c := testcluster.Start(t, o)
	nosync := c.Nodes[2]
	if p := c.WaitPrimary(t, 30*time.Second); p == nosync {
		// It won the bootstrap race; as the leader it lists the others.
		c.WaitReplicasStreaming(t, 45*time.Second)
		waitSwitchable(t, c, p, c.Nodes[0], 15*time.Second)
		switchTo(t, c, p, c.Nodes[0])
	}
	waitSynced(t, c, testcluster.SyncOn, 1)
	w := testcluster.StartWorkload(t, c)
	time.Sleep(warmUp)
	stop := make(chan struct{})
	bad := syncWatch(c, stop, func(s testcluster.SyncState) error {
		if s.Lists(nosync.Name) {
			return fmt.Errorf("nosync member %s listed: %s", nosync.Name, s)
		}
		return nil
	})

	s := waitSynced(t, c, testcluster.SyncOn, 1)
	var other *testcluster.Node
	for _, n := range c.Nodes {
		if n != s.Leader && n != nosync {
			other = n
		}
	}
	if other == nil || !s.Lists(other.Name) {
		t.Fatalf("want the replica without nosync listed: %s", s)
	}
	w.Mark("kill the synchronous standby " + other.Name)
	other.KillAll()
	// Its member key outlives it by up to ttl; watch a few loops past that.
	time.Sleep(c.Options.TTL + 4*time.Second)
	now, err := c.Sync(context.Background())
	t.Logf("with %s dead: %s (%v)", other.Name, now, err)
	if err == nil && (now.Parsed.Num != 0 || now.Parsed.Placeholder) {
		t.Errorf("with the only eligible standby dead, non-strict mode must stop waiting for a standby: %s", now)
	}
	w.Mark("start " + other.Name + " again")
	other.Start(t)
	if s := waitSynced(t, c, testcluster.SyncOn, 1); !s.Lists(other.Name) {
		t.Errorf("after %s came back: %s", other.Name, s)
	}
	close(stop)
	for _, b := range <-bad {
		t.Error(b)
	}
	finishSync(t, c, w)
}

// probeTable is where tests put writes they watch one by one; the
// workload's table only holds the workload's rows.
const probeTable = "pgha_sync_probe"

func createProbeTable(t testing.TB, p *testcluster.Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+probeTable+" (id int PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
}

// startProbe inserts id into probeTable on n in a session of its own with
// no timeout and returns a channel that receives the result once the
// commit returns (nil: acknowledged). The session is closed when the test
// ends.
func startProbe(t testing.TB, n *testcluster.Node, id int) <-chan error {
	t.Helper()
	cfg, err := pgx.ParseConfig(n.DSN())
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["synchronous_commit"] = "on"
	cfg.RuntimeParams["statement_timeout"] = "0"
	ctx, cancel := context.WithCancel(context.Background())
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatalf("probe %d on %s: %v", id, n.Name, err)
	}
	out := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, err := conn.Exec(ctx, "INSERT INTO "+probeTable+" VALUES ($1)", id)
		out <- err
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		conn.Close(context.Background())
	})
	return out
}

// blocked fails t if the probe returns within d, and checks that a backend
// on p waits for synchronous replication (wait event SyncRep) meanwhile.
func blocked(t testing.TB, p *testcluster.Node, probe <-chan error, d time.Duration, why string) {
	t.Helper()
	began := time.Now()
	select {
	case err := <-probe:
		t.Errorf("%s: a write on %s returned after %s (error %v); it must wait for a synchronous standby",
			why, p.Name, time.Since(began).Round(time.Millisecond), err)
		return
	case <-time.After(d):
	}
	var waiting int
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := p.QueryRow(ctx, "SELECT count(*)::int FROM pg_stat_activity WHERE wait_event = 'SyncRep'", nil, &waiting); err != nil {
		t.Errorf("%s: %v", why, err)
	} else if waiting == 0 {
		t.Errorf("%s: a write on %s has not returned after %s, yet no backend waits for synchronous replication", why, p.Name, d)
	}
}

// resumed waits up to d for the probe to be acknowledged and returns how
// long it took; it fails t if the probe fails or does not return.
func resumed(t testing.TB, probe <-chan error, d time.Duration, why string) time.Duration {
	t.Helper()
	began := time.Now()
	select {
	case err := <-probe:
		if err != nil {
			t.Errorf("%s: the held write failed: %v", why, err)
		}
		return time.Since(began)
	case <-time.After(d):
		t.Fatalf("%s: the held write still waits after %s", why, d)
	}
	return 0
}

// acksBetween returns the writes acknowledged by node in (from, to).
func acksBetween(h *testcluster.History, node string, from, to time.Time) []testcluster.Write {
	var out []testcluster.Write
	for _, w := range h.ByNode(node) {
		if w.Ack.After(from) && w.Ack.Before(to) {
			out = append(out, w)
		}
	}
	return out
}

// TestSyncStrictNoStandby proves that in strict mode a primary with every
// standby down acknowledges no write: a write started then does not return
// (its backend waits for synchronous replication) and the workload gets no
// acknowledgement; the write returns and the workload resumes once one
// standby is back; nothing acknowledged is lost.
func TestSyncStrictNoStandby(t *testing.T) {
	c, w := startSync(t, syncOptions(3, testcluster.SyncOn, true), 1)
	s := waitSynced(t, c, testcluster.SyncOn, 1)
	p := s.Leader
	createProbeTable(t, p)
	replicas := replicasOf(c, p)

	killed := w.Mark("kill both replicas")
	for _, r := range replicas {
		r.KillAll()
	}
	probe := startProbe(t, p, 1)
	blocked(t, p, probe, 2*c.Options.TTL, "strict mode, every standby dead")
	restarted := w.Mark("start " + replicas[0].Name + " again")
	// A write acknowledged by the standby just before it died may arrive a
	// moment after the kill.
	if acks := acksBetween(w.Snapshot(), p.Name, killed.Add(500*time.Millisecond), restarted); len(acks) > 0 {
		t.Errorf("%d writes acknowledged by %s while no standby ran, e.g. %s", len(acks), p.Name, acks[0])
	}
	replicas[0].Start(t)
	took := resumed(t, probe, 45*time.Second, "one standby back")
	t.Logf("held write returned %s after %s was started again", took.Round(time.Millisecond), replicas[0].Name)
	w.WaitAck(t, testcluster.MultiWriter, p.Name, restarted, 15*time.Second)
	replicas[1].Start(t)
	finishSync(t, c, w)
	var n int
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.WaitPrimary(t, 10*time.Second).QueryRow(ctx, "SELECT count(*)::int FROM "+probeTable, nil, &n); err != nil || n != 1 {
		t.Errorf("the held write: %d rows on the final primary (%v), want 1", n, err)
	}
}

// TestSyncLaggingAsyncNotPromoted proves that a lagging asynchronous
// member is never promoted over the synchronous standby: the asynchronous
// replica's WAL receiver is stopped so it falls behind (still within
// maximum_lag_on_failover), then the synchronous standby's pg-lockd is
// stopped and the primary's node dies. The asynchronous replica is then
// the only candidate, and would lose acknowledged writes; it must not
// take over. Once the synchronous standby's pg-lockd runs again it is
// promoted, and nothing acknowledged is lost.
func TestSyncLaggingAsyncNotPromoted(t *testing.T) {
	c, w := startSync(t, syncOptions(3, testcluster.SyncOn, false), 1)
	ttl := c.Options.TTL
	s := waitSynced(t, c, testcluster.SyncOn, 1)
	p, sync := s.Leader, c.Node(s.Key.Standbys[0])
	var async *testcluster.Node
	for _, n := range c.Nodes {
		if n != p && n != sync {
			async = n
		}
	}

	receiver := walReceiverPID(t, async)
	w.Mark(fmt.Sprintf("SIGSTOP the WAL receiver of %s (pid %d)", async.Name, receiver))
	if err := syscall.Kill(receiver, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(receiver, syscall.SIGCONT)
	time.Sleep(2 * time.Second) // the workload writes on; async falls behind
	var lag int64
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	err := p.QueryRow(ctx, "SELECT (pg_current_wal_lsn() - flush_lsn)::bigint FROM pg_stat_replication WHERE application_name = $1",
		[]any{async.Name}, &lag)
	cancel()
	t.Logf("%s lags %d bytes behind %s (%v)", async.Name, lag, p.Name, err)
	if err == nil && lag <= 0 {
		t.Fatalf("%s does not lag although its WAL receiver is stopped", async.Name)
	}

	stop := make(chan struct{})
	seen := leaderWatch(c, stop)
	if err := sync.Signal(testcluster.Lockd, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	killed := w.Mark("SIGSTOP pg-lockd of the synchronous standby " + sync.Name + ", kill the primary's node " + p.Name)
	p.KillAll()
	// The dead primary's key lives up to ttl, the stopped standby's member
	// key as long; watch well past both.
	time.Sleep(ttl + 8*time.Second)
	if l, err := c.Leader(context.Background()); err == nil && l == async.Name {
		t.Fatalf("the lagging asynchronous member %s took the leader key while the synchronous standby %s could not run", async.Name, sync.Name)
	}
	if ps := c.Primaries(context.Background()); len(ps) > 0 {
		t.Errorf("%s promoted while the synchronous standby %s could not run: %v", nodeNames(ps)[0], sync.Name, nodeNames(ps))
	}
	w.Mark("SIGCONT pg-lockd of " + sync.Name)
	if err := sync.Signal(testcluster.Lockd, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	np := c.WaitPromoted(t, ttl+15*time.Second, p)
	if np != sync {
		t.Errorf("%s promoted, want the synchronous standby %s", np.Name, sync.Name)
	}
	w.WaitAck(t, testcluster.MultiWriter, np.Name, killed, 30*time.Second)
	close(stop)
	leaders := <-seen
	t.Logf("leader key values seen: %v", leaders)
	for _, l := range leaders {
		if l == async.Name {
			t.Errorf("the lagging asynchronous member %s took the leader key: %v", async.Name, leaders)
		}
	}
	w.Mark("SIGCONT the WAL receiver of " + async.Name + ", start " + p.Name + " again")
	syscall.Kill(receiver, syscall.SIGCONT)
	p.Start(t)
	finishSync(t, c, w)
}

// TestSyncTwoNodesStrict proves, for a primary and one replica in strict
// mode: the primary's node death promotes the replica with every
// acknowledged write, and the new primary then acknowledges nothing until
// the old node is back as its standby; the replica's node death likewise
// holds every write back until it returns; nothing acknowledged is lost
// and there is never a second primary.
func TestSyncTwoNodesStrict(t *testing.T) {
	c, w := startSync(t, syncOptions(2, testcluster.SyncOn, true), 1)
	ttl := c.Options.TTL
	s := waitSynced(t, c, testcluster.SyncOn, 1)
	p, r := s.Leader, c.Node(s.Key.Standbys[0])
	createProbeTable(t, p)

	// The primary's node dies: the replica takes over but has no standby.
	killed := w.Mark("kill the primary's node " + p.Name)
	p.KillAll()
	np := c.WaitPromoted(t, ttl+15*time.Second, p)
	if np != r {
		t.Fatalf("%s promoted, want %s", np.Name, r.Name)
	}
	promoted := w.Mark(r.Name + " promoted")
	t.Logf("%s promoted %s after the kill", r.Name, promoted.Sub(killed).Round(time.Millisecond))
	probe := startProbe(t, r, 1)
	blocked(t, r, probe, 4*time.Second, "strict mode, new primary without its standby")
	restarted := w.Mark("start " + p.Name + " again")
	if acks := acksBetween(w.Snapshot(), r.Name, killed, restarted); len(acks) > 0 {
		t.Errorf("%d writes acknowledged by %s before its standby %s was back, e.g. %s", len(acks), r.Name, p.Name, acks[0])
	}
	p.Start(t)
	took := resumed(t, probe, 45*time.Second, p.Name+" back")
	t.Logf("held write on %s returned %s after %s was started again", r.Name, took.Round(time.Millisecond), p.Name)
	w.WaitAck(t, testcluster.MultiWriter, r.Name, restarted, 15*time.Second)
	waitSynced(t, c, testcluster.SyncOn, 1)

	// The replica's node dies: the primary holds writes back until it returns.
	p, r = r, p
	killed = w.Mark("kill the replica's node " + r.Name)
	r.KillAll()
	probe = startProbe(t, p, 2)
	blocked(t, p, probe, 4*time.Second, "strict mode, the only standby dead")
	restarted = w.Mark("start " + r.Name + " again")
	if acks := acksBetween(w.Snapshot(), p.Name, killed.Add(500*time.Millisecond), restarted); len(acks) > 0 {
		t.Errorf("%d writes acknowledged by %s while its only standby %s was dead, e.g. %s", len(acks), p.Name, r.Name, acks[0])
	}
	r.Start(t)
	took = resumed(t, probe, 45*time.Second, r.Name+" back")
	t.Logf("held write on %s returned %s after %s was started again", p.Name, took.Round(time.Millisecond), r.Name)
	if ps := c.Primaries(context.Background()); len(ps) != 1 || ps[0] != p {
		t.Errorf("primaries %v, want only %s", nodeNames(ps), p.Name)
	}
	finishSync(t, c, w)
}

// TestSyncModeToggle proves that synchronous_mode changed in the config key
// takes effect without restarting anything: turned on, then to quorum,
// then off, synchronous_standby_names and the sync key follow within a few
// seconds, and no postmaster or daemon has a new PID.
func TestSyncModeToggle(t *testing.T) {
	c, w := start(t, testcluster.Options{})
	pids := func() map[string]int {
		out := map[string]int{}
		for _, n := range c.Nodes {
			for _, p := range []testcluster.Proc{testcluster.Postmaster, testcluster.Lockd, testcluster.Supervise} {
				out[n.Name+" "+p.String()] = n.PID(p)
			}
		}
		return out
	}
	before := pids()
	if s, err := c.Sync(context.Background()); err != nil || !s.Key.Empty() || s.Parsed.Num != 0 {
		t.Fatalf("asynchronous cluster: %s (%v), want no sync key and no synchronous standby", s, err)
	}

	steps := []struct {
		mode  any
		name  string
		check func(testcluster.SyncState) bool
	}{
		{true, "on", func(s testcluster.SyncState) bool { return synced(s, testcluster.SyncOn, 1) }},
		{"quorum", "quorum", func(s testcluster.SyncState) bool { return synced(s, testcluster.SyncQuorum, 2) }},
		{false, "off", func(s testcluster.SyncState) bool { return s.Key.Empty() && s.Parsed.Num == 0 && !s.Parsed.Placeholder }},
	}
	for _, st := range steps {
		w.Mark("synchronous_mode: " + st.name)
		began := time.Now()
		err := c.UpdateConfig(context.Background(), func(cfg map[string]any) { cfg["synchronous_mode"] = st.mode })
		if err != nil {
			t.Fatal(err)
		}
		s := c.WaitSync(t, 8*time.Second, "synchronous_mode "+st.name+" in effect", st.check)
		t.Logf("synchronous_mode %s in effect after %s: %s", st.name, time.Since(began).Round(time.Millisecond), s)
	}
	after := pids()
	for k, pid := range before {
		if after[k] != pid {
			t.Errorf("%s: pid %d before, %d after the changes: restarted", k, pid, after[k])
		}
	}
	finishSync(t, c, w)
}
