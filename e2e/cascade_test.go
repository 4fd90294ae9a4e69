package e2e

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/pg"
	"github.com/pg-ha/pg-ha/lib/testcluster"
)

// waitSeen polls probe every 100ms for up to timeout until it reports ok,
// and fails t otherwise with want and the state probe described last. It
// returns how long it waited.
func waitSeen(t testing.TB, timeout time.Duration, want string, probe func() (ok bool, seen string)) time.Duration {
	t.Helper()
	began := time.Now()
	deadline := began.Add(timeout)
	for {
		ok, seen := probe()
		if ok {
			return time.Since(began)
		}
		if time.Now().After(deadline) {
			t.Fatalf("want %s within %s; seen last: %s", want, timeout, seen)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// portName names the node of c listening on port.
func portName(c *testcluster.Cluster, port int) string {
	for _, n := range c.Nodes {
		if n.PGPort == port {
			return n.Name
		}
	}
	return "port " + strconv.Itoa(port)
}

// receiver returns r's WAL receiver and a description of it for messages.
func receiver(c *testcluster.Cluster, r *testcluster.Node) (testcluster.WALReceiver, bool, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	rcv, err := r.WALReceiver(ctx)
	if err != nil {
		return rcv, false, fmt.Sprintf("%s has no WAL receiver (%v)", r.Name, err)
	}
	return rcv, true, fmt.Sprintf("%s's WAL receiver %q from %s (port %d), timeline %d, slot %q",
		r.Name, rcv.Status, portName(c, rcv.SenderPort), rcv.SenderPort, rcv.ReceivedTLI, rcv.SlotName)
}

// walSenders lists n's pg_stat_replication: application_name → state; nil
// if n did not answer.
func walSenders(n *testcluster.Node) map[string]string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var list string
	err := n.QueryRow(ctx, `SELECT coalesce(string_agg(application_name || '=' || coalesce(state, ''), ',' ORDER BY application_name), '')
		FROM pg_stat_replication`, nil, &list)
	if err != nil {
		return nil
	}
	out := map[string]string{}
	for _, kv := range strings.Split(list, ",") {
		if name, state, ok := strings.Cut(kv, "="); ok {
			out[name] = state
		}
	}
	return out
}

// streamsFrom reports whether r streams from up: r's WAL receiver is
// streaming from up's port and up's pg_stat_replication lists r. seen
// describes both.
func streamsFrom(c *testcluster.Cluster, r, up *testcluster.Node) (bool, string) {
	_, ok, seen := streamsFromVia(c, r, up)
	return ok, seen
}

// streamsFromVia is streamsFrom also returning r's WAL receiver.
func streamsFromVia(c *testcluster.Cluster, r, up *testcluster.Node) (testcluster.WALReceiver, bool, string) {
	rcv, ok, seen := receiver(c, r)
	senders := walSenders(up)
	seen += fmt.Sprintf("; %s's pg_stat_replication %v", up.Name, senders)
	_, listed := senders[r.Name]
	return rcv, ok && rcv.Status == "streaming" && rcv.SenderPort == up.PGPort && listed, seen
}

// cascaded reports whether r streams from replica up through up's slot
// for it and not from leader: streamsFrom(r, up), r's WAL receiver uses
// the slot named after r, that slot is active on up, and leader's
// pg_stat_replication does not list r. seen describes all of it.
func cascaded(c *testcluster.Cluster, r, up, leader *testcluster.Node) (bool, string) {
	rcv, ok, seen := streamsFromVia(c, r, up)
	slot := pg.SlotName(r.Name)
	slots := physicalSlots(up)
	ls := walSenders(leader)
	_, atLeader := ls[r.Name]
	seen += fmt.Sprintf("; %s's physical slots (name=active) %v; %s's pg_stat_replication %v", up.Name, slots, leader.Name, ls)
	return ok && rcv.SlotName == slot && slots[slot] && ls != nil && !atLeader, seen
}

// cascadeWant says what cascaded checks, for messages.
func cascadeWant(r, up, leader *testcluster.Node) string {
	return fmt.Sprintf("%s streaming from %s through slot %q (active on %s, %s listed in its pg_stat_replication) and not listed in leader %s's pg_stat_replication",
		r.Name, up.Name, pg.SlotName(r.Name), up.Name, r.Name, leader.Name)
}

// hasProbe reports whether n has replayed row id of probeTable.
func hasProbe(n *testcluster.Node, id int) (bool, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var count int64
	if err := n.QueryRow(ctx, "SELECT count(*) FROM "+probeTable+" WHERE id = $1", []any{id}, &count); err != nil {
		return false, err.Error()
	}
	return count == 1, fmt.Sprintf("%s has %d rows with id %d in %s", n.Name, count, id, probeTable)
}

// insertProbe inserts row id into probeTable on primary p, creating the
// table if need be.
func insertProbe(t testing.TB, p *testcluster.Node, id int) {
	t.Helper()
	createProbeTable(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Exec(ctx, "INSERT INTO "+probeTable+" VALUES ($1)", id); err != nil {
		t.Fatal(err)
	}
}

// TestCascadeFailover: node3, tagged replicatefrom node2 and nofailover,
// streams from the replica node2 rather than from the leader node1,
// through a slot node2 keeps for it, and node2 (which may become primary)
// keeps slots for the other members too. When node1 is killed, node2 is
// promoted and node3 goes on streaming from it on the new timeline without
// its PostgreSQL restarting; node1, started again, rejoins as a replica of
// node2. With node1 leading again (a switchover), node2 stopped makes node3
// fall back to node1 within a few seconds, and node2 started again takes
// it back. pg-failover topology shows node3 under node2. The application
// writes throughout: no two primaries, nothing acknowledged lost but what
// an asynchronous failover may lose (maximum_lag_on_failover), and every
// replica, node3 included, ends with exactly the final primary's rows.
func TestCascadeFailover(t *testing.T) {
	c, w := start(t, testcluster.Options{
		Node1First: true,
		Tags: func(i int) map[string]any {
			if i == 2 {
				return map[string]any{"replicatefrom": "node2", "nofailover": true}
			}
			return nil
		},
	})
	n1, n2, n3 := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	if p := c.WaitPrimary(t, 10*time.Second); p != n1 {
		t.Fatalf("primary %s, want %s (Options.Node1First)", p.Name, n1.Name)
	}

	// node3 streams from node2, through node2's slot for it.
	took := waitSeen(t, 15*time.Second, cascadeWant(n3, n2, n1), func() (bool, string) { return cascaded(c, n3, n2, n1) })
	t.Logf("%s streams from %s (%s after the cluster was ready)", n3.Name, n2.Name, took.Round(time.Millisecond))

	// node2 may become primary: it keeps a slot for each other member.
	want := []string{pg.SlotName(n1.Name), pg.SlotName(n3.Name)}
	waitSeen(t, 10*time.Second, fmt.Sprintf("%s's physical slots %v", n2.Name, want), func() (bool, string) {
		s := physicalSlots(n2)
		for _, name := range want {
			if _, ok := s[name]; !ok {
				return false, fmt.Sprintf("%s's physical slots (name=active) %v", n2.Name, s)
			}
		}
		return true, ""
	})

	// Failover: node1 dies, node2 is promoted, node3 follows it in place.
	pm3, started3 := n3.PID(testcluster.Postmaster), postmasterStart(t, n3)
	ctx := context.Background()
	tl1, err := n1.Timeline(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w.Mark("kill " + n1.Name + " (leader)")
	n1.KillAll()
	if p := c.WaitPrimary(t, 30*time.Second, n1); p != n2 {
		t.Fatalf("primary after %s was killed: %s, want %s (%s is tagged nofailover)", n1.Name, p.Name, n2.Name, n3.Name)
	}
	w.Mark(n2.Name + " promoted")
	tl2, err := n2.Timeline(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if tl2 <= tl1 {
		t.Errorf("%s's timeline after its promotion is %d, want above %s's %d", n2.Name, tl2, n1.Name, tl1)
	}
	took = waitSeen(t, 15*time.Second, fmt.Sprintf("%s streaming from the new primary %s on its timeline %d", n3.Name, n2.Name, tl2),
		func() (bool, string) {
			rcv, ok, seen := receiver(c, n3)
			return ok && rcv.Status == "streaming" && rcv.SenderPort == n2.PGPort && rcv.ReceivedTLI == tl2, seen
		})
	t.Logf("%s streams from %s on timeline %d, %s after the promotion", n3.Name, n2.Name, tl2, took.Round(time.Millisecond))
	if s := physicalSlots(n2); !s[pg.SlotName(n3.Name)] {
		t.Errorf("new primary %s's slot %q for %s is missing or inactive, want it active: its physical slots (name=active) %v",
			n2.Name, pg.SlotName(n3.Name), n3.Name, s)
	} else if _, ok := s[pg.SlotName(n1.Name)]; !ok {
		t.Errorf("new primary %s has no slot %q for %s (kept from before its promotion): its physical slots (name=active) %v",
			n2.Name, pg.SlotName(n1.Name), n1.Name, s)
	}
	insertProbe(t, n2, 1)
	waitSeen(t, 10*time.Second, fmt.Sprintf("row 1 written on %s after its promotion replayed on %s", n2.Name, n3.Name),
		func() (bool, string) { return hasProbe(n3, 1) })
	if pm, at := n3.PID(testcluster.Postmaster), postmasterStart(t, n3); pm != pm3 || !at.Equal(started3) {
		t.Errorf("%s's PostgreSQL restarted across the failover: postmaster %d started %s, before it %d started %s (%s)",
			n3.Name, pm, at.Format("15:04:05.000"), pm3, started3.Format("15:04:05.000"), rejoined(n3))
	}

	// node1 comes back as a replica of node2.
	w.Mark("start " + n1.Name + " again")
	n1.Start(t)
	took = waitSeen(t, 30*time.Second, fmt.Sprintf("%s back as a replica streaming from %s", n1.Name, n2.Name),
		func() (bool, string) { return streamsFrom(c, n1, n2) })
	t.Logf("%s streams from %s %s after its start (%s)", n1.Name, n2.Name, took.Round(time.Millisecond), rejoined(n1))

	// node1 leads again; node3 streams from node2, now a replica again.
	waitMembersStreaming(t, c, n2, 20*time.Second)
	switchTo(t, c, n2, n1)
	w.Mark("switched over to " + n1.Name)
	waitSeen(t, 20*time.Second, cascadeWant(n3, n2, n1), func() (bool, string) { return cascaded(c, n3, n2, n1) })

	// Fallback: without node2, node3 streams from the leader.
	w.Mark("stop " + n2.Name)
	n2.Stop(t, syscall.SIGTERM)
	took = waitSeen(t, 10*time.Second, fmt.Sprintf("%s streaming from the leader %s while %s is stopped", n3.Name, n1.Name, n2.Name),
		func() (bool, string) { return streamsFrom(c, n3, n1) })
	t.Logf("%s falls back to %s %s after %s stopped", n3.Name, n1.Name, took.Round(time.Millisecond), n2.Name)

	// And back to node2 once it runs again.
	w.Mark("start " + n2.Name + " again")
	n2.Start(t)
	took = waitSeen(t, 30*time.Second, cascadeWant(n3, n2, n1)+" once "+n2.Name+" runs again",
		func() (bool, string) { return cascaded(c, n3, n2, n1) })
	t.Logf("%s streams from %s again %s after %s started", n3.Name, n2.Name, took.Round(time.Millisecond), n2.Name)

	// pg-failover topology: node1, then node2 under it, node3 under node2.
	out, stderr, code := pgFailover(t, n1, "topology")
	if code != 0 {
		t.Fatalf("pg-failover topology: exit %d: %s", code, lastLine(stderr))
	}
	if got, want := topologyMembers(out), []string{n1.Name, "+ " + n2.Name, "  + " + n3.Name}; !slices.Equal(got, want) {
		t.Errorf("pg-failover topology lists members %q, want %q:\n%s", got, want, out)
	}
	finish(t, c, w)
}

// topologyMembers returns the Member cells of a pg-failover topology (or
// list) table, indentation kept, in order.
func topologyMembers(out string) []string {
	var cells []string
	for _, line := range strings.Split(out, "\n") {
		parts := strings.Split(line, "|")
		if len(parts) < 3 {
			continue
		}
		cell := strings.TrimRight(strings.TrimPrefix(parts[1], " "), " ")
		if cell != "Member" {
			cells = append(cells, cell)
		}
	}
	return cells
}

// archiveDir makes a directory the postgres user can write, removed when
// the test ends.
func archiveDir(t testing.TB) string {
	t.Helper()
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	dir, err := os.MkdirTemp("", "pgha-archive-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	return dir
}

// switchWAL makes the primary of c switch to a new WAL segment every
// interval until the returned stop is called (which waits for it), so that
// a replica fed by the WAL archive alone receives the latest writes.
func switchWAL(c *testcluster.Cluster, every time.Duration) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(every):
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			if p, err := c.Primary(ctx); err == nil {
				p.Exec(ctx, "SELECT pg_switch_wal()")
			}
			cancel()
		}
	})
	return sync.OnceFunc(func() { close(done); wg.Wait() })
}

// TestNostreamArchive: node2, tagged nostream, is fed by the WAL archive
// alone: it has no WAL receiver and an empty primary_conninfo, the leader
// node1 keeps no slot for it and has no WAL sender for it, yet a row
// written on node1 reaches it within about 10 s once node1 switches to a
// new WAL segment (archived, then restored by restore_command). It is not
// cloned again or restarted for not streaming: its postmaster is the same
// 40 s later. The application writes throughout and loses nothing.
func TestNostreamArchive(t *testing.T) {
	// Mostly a wait (the window below): it runs beside the other long
	// waits after every other test.
	t.Parallel()
	const window = 40 * time.Second
	archive := archiveDir(t)
	restore := "cp " + archive + "/%f %p"
	c, w := start(t, testcluster.Options{
		Nodes:      2,
		Node1First: true,
		ExtraParameters: map[string]string{"archive_mode": "on",
			"archive_command": "test ! -f " + archive + "/%f && cp %p " + archive + "/%f"},
		Tags: func(i int) map[string]any {
			if i == 1 {
				return map[string]any{"nostream": true}
			}
			return nil
		},
		ExtraPostgres: func(i int) map[string]any {
			if i == 1 {
				return map[string]any{"recovery_conf": map[string]any{"restore_command": restore}}
			}
			return nil
		},
	})
	n1, n2 := c.Nodes[0], c.Nodes[1]
	if p := c.WaitPrimary(t, 10*time.Second); p != n1 {
		t.Fatalf("primary %s, want %s (Options.Node1First)", p.Name, n1.Name)
	}
	pm2, started2 := n2.PID(testcluster.Postmaster), postmasterStart(t, n2)
	until := time.Now().Add(window)
	slot := pg.SlotName(n2.Name)

	// problem returns what is wrong with node2 as a nostream replica right
	// now ("" if nothing, or if a node did not answer).
	problem := func() string {
		if pm := n2.PID(testcluster.Postmaster); pm != pm2 {
			return fmt.Sprintf("%s's postmaster is %d, want %d still (started %s): %s", n2.Name, pm, pm2,
				started2.Format("15:04:05.000"), rejoined(n2))
		}
		if rcv, ok, seen := receiver(c, n2); ok && rcv.Status == "streaming" {
			return "want no streaming WAL receiver on " + n2.Name + "; seen " + seen
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		ci := setting(ctx, n2, "primary_conninfo")
		cancel()
		if ci != "" {
			return fmt.Sprintf("%s's primary_conninfo is %q, want empty", n2.Name, ci)
		}
		if s := physicalSlots(n1); s != nil {
			if _, ok := s[slot]; ok {
				return fmt.Sprintf("leader %s has slot %q for %s, want none; its physical slots (name=active): %v", n1.Name, slot, n2.Name, s)
			}
		}
		if ws := walSenders(n1); ws != nil {
			if st, ok := ws[n2.Name]; ok {
				return fmt.Sprintf("leader %s's pg_stat_replication lists %s (state %q), want no WAL sender for it: %v", n1.Name, n2.Name, st, ws)
			}
		}
		return ""
	}
	if p := problem(); p != "" {
		t.Fatal(p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	rc := setting(ctx, n2, "restore_command")
	cancel()
	if rc != restore {
		t.Fatalf("%s's restore_command is %q, want %q from postgresql.recovery_conf", n2.Name, rc, restore)
	}

	// A write reaches node2 through the archive once its segment is done.
	insertProbe(t, n1, 1)
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	err := n1.Exec(ctx, "SELECT pg_switch_wal()")
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	switched := w.Mark("row 1 written on " + n1.Name + ", WAL switched")
	waitSeen(t, 10*time.Second, fmt.Sprintf("row 1, written on %s before pg_switch_wal(), replayed on %s from the archive", n1.Name, n2.Name),
		func() (bool, string) {
			if p := problem(); p != "" {
				t.Fatal(p)
			}
			return hasProbe(n2, 1)
		})
	t.Logf("row 1 on %s %s after the WAL switch", n2.Name, time.Since(switched).Round(time.Millisecond))

	// Not cloned again, rewound or restarted for not streaming.
	for time.Now().Before(until) {
		if p := problem(); p != "" {
			t.Fatal(p)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if pm, at := n2.PID(testcluster.Postmaster), postmasterStart(t, n2); pm != pm2 || !at.Equal(started2) {
		t.Fatalf("%s's PostgreSQL restarted within %s: postmaster %d started %s, before %d started %s (%s)",
			n2.Name, window, pm, at.Format("15:04:05.000"), pm2, started2.Format("15:04:05.000"), rejoined(n2))
	}
	if len(archived(archive)) == 0 {
		t.Errorf("no WAL segment in the archive %s, want the primary's", archive)
	}
	// Its member key says so, as Patroni's does.
	var rs any
	ok := holdsWithin(10*time.Second, func() bool {
		ms, err := c.Members(context.Background())
		rs = ms[n2.Name]["replication_state"]
		return err == nil && rs == "in archive recovery"
	})
	if !ok {
		t.Errorf("%s's member key replication_state %v, want \"in archive recovery\"", n2.Name, rs)
	}

	// node2 catches up from the archive: the primary switches segments
	// while the workload's rows are compared.
	stop := switchWAL(c, time.Second)
	defer stop()
	finishLossless(t, c, w)
}
