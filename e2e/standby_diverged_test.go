package e2e

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/testcluster"
)

// divergeTable is created on the main primary while its replica receives
// nothing: the standby cluster replays it, the main cluster's failover
// discards it.
const divergeTable = "pgha_standby_diverge"

// waitingRewind is what pg-supervise logs each time it finds its pg_rewind
// source not ready (still in recovery, for one).
const waitingRewind = "waiting for the leader to be ready for pg_rewind"

// lsnOf runs query (one pg_lsn as text) on n and parses the result; 0 when
// n did not answer or the result is NULL.
func lsnOf(n *testcluster.Node, query string, args ...any) (uint64, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var s *string
	if err := n.QueryRow(ctx, query, args, &s); err != nil {
		return 0, err.Error()
	}
	if s == nil {
		return 0, "NULL"
	}
	l, err := testcluster.ParseLSN(*s)
	if err != nil {
		return 0, err.Error()
	}
	return l, *s
}

// fmtLSN renders l as PostgreSQL does.
func fmtLSN(l uint64) string { return fmt.Sprintf("%X/%X", l>>32, uint32(l)) }

// hasTable reports whether n has table name (NULL if n did not answer).
func hasTable(n *testcluster.Node, name string) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var has bool
	err := n.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", []any{name}, &has)
	return has, err
}

// walSenderPID returns the pid of the walsender of primary p that serves
// the replica named name, checked to be a live server process of p's data
// directory titled as a walsender.
func walSenderPID(t testing.TB, p *testcluster.Node, name string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var pid int32
	if err := p.QueryRow(ctx, "SELECT pid FROM pg_stat_replication WHERE application_name = $1", []any{name}, &pid); err != nil {
		t.Fatalf("%s: the walsender of %s: %v", p.Name, name, err)
	}
	for _, sp := range p.ServerPIDs() {
		if sp == int(pid) && strings.Contains(testcluster.ServerTitle(sp), "walsender") {
			return sp
		}
	}
	t.Fatalf("%s: pid %d of pg_stat_replication's row for %s is no walsender of its data directory (%q)",
		p.Name, pid, name, testcluster.ServerTitle(int(pid)))
	return 0
}

// TestStandbyClusterDivergedRewinds: the standby cluster of
// TestStandbyCluster (the standby leader streaming from the main cluster
// through HAProxy, the other member cascading from it) receives WAL that
// the main cluster's replica never gets, as asynchronous replication
// allows: the main primary's walsender to its replica is frozen (SIGSTOP)
// while the main primary writes a table of a few hundred KB, which both
// members of the standby cluster replay. The main primary's node dies; its
// replica, within maximum_lag_on_failover, is promoted on a new timeline
// without that WAL. Both members of the standby cluster went past the point
// where the new timeline forked: pg-supervise must see it from its
// upstream's timeline history — the standby leader's upstream is the main
// cluster's new primary, the other member's the standby leader, a standby —
// and rewind each with pg_rewind within seconds, not after the 30 s
// not-streaming fallback. Within 15 s of the promotion the standby leader
// streams the new timeline from HAProxy and the other member streams it
// from the standby leader; the table is gone from both, rows written on
// the new primary reach both, the standby leader keeps its role, and no
// member of the standby cluster is ever out of recovery. Both end with
// exactly the rows the main cluster kept; the writes its failover lost
// are those the freeze left behind.
func TestStandbyClusterDivergedRewinds(t *testing.T) {
	s := standbyClusters(t)
	main, w, mp, rw, sc, sl, other := s.main, s.w, s.mp, s.rw, s.sc, s.sl, s.other
	waitReplayed(t, w, 10*time.Second, sl, other)
	main.WaitReplicasStreaming(t, 10*time.Second)
	r := replicasOf(main, mp)[0]
	ctx := context.Background()
	tl0, err := mp.Timeline(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// The main replica falls behind. Its walsender on the main primary is
	// frozen, not its WAL receiver: a frozen receiver would leave the
	// socket buffers between them (several MB on loopback) to fill, and
	// would read them all once thawed, catching up past the standby
	// cluster. A frozen sender sends nothing more.
	pid := walSenderPID(t, mp, r.Name)
	frozen := w.Mark(fmt.Sprintf("SIGSTOP the main primary %s's walsender to %s (pid %d)", mp.Name, r.Name, pid))
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	thawed := false
	thaw := func() {
		if !thawed {
			thawed = true
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}
	defer thaw()
	// What r has, or can still get, once what the sender had sent arrived.
	var got uint64
	var gotSeen string
	stable := 0
	waitSeen(t, 5*time.Second, r.Name+"'s received position settled", func() (bool, string) {
		sent, sentSeen := lsnOf(mp, "SELECT sent_lsn::text FROM pg_stat_replication WHERE application_name = $1", r.Name)
		recv, recvSeen := lsnOf(r, "SELECT pg_last_wal_receive_lsn()::text")
		now := max(sent, recv)
		if sent == 0 || recv == 0 || now != got {
			stable = 0
		} else {
			stable++
		}
		got = now
		gotSeen = fmt.Sprintf("sent to %s by %s: %s; received by it: %s", r.Name, mp.Name, sentSeen, recvSeen)
		return stable >= 3, gotSeen
	})

	// WAL only the standby cluster gets: ~400 KB (under
	// maximum_lag_on_failover, so that r may still be promoted).
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = mp.Exec(wctx, "CREATE TABLE "+divergeTable+" AS SELECT i, repeat(md5(i::text), 32) AS b FROM generate_series(1, 350) i")
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	target, targetSeen := lsnOf(mp, "SELECT pg_current_wal_lsn()::text")
	if target == 0 {
		t.Fatalf("%s's position: %s", mp.Name, targetSeen)
	}
	for _, n := range sc.Nodes {
		waitSeen(t, 10*time.Second, fmt.Sprintf("%s replayed %s, past %s's %s, with table %s", n.Name, targetSeen, r.Name, fmtLSN(got), divergeTable),
			func() (bool, string) {
				at, seen := lsnOf(n, "SELECT pg_last_wal_replay_lsn()::text")
				has, err := hasTable(n, divergeTable)
				return at >= target && has, fmt.Sprintf("%s replayed up to %s; has %s: %v (%v)", n.Name, seen, divergeTable, has, err)
			})
	}
	recv, recvSeen := lsnOf(r, "SELECT pg_last_wal_receive_lsn()::text")
	if recv == 0 || recv > got {
		t.Fatalf("%s received up to %s while its walsender was frozen, want at most %s (%s)", r.Name, recvSeen, fmtLSN(got), gotSeen)
	}
	if target-got < 256<<10 {
		t.Fatalf("%s is only %d bytes behind %s's %s, want at least 256 KiB", r.Name, target-got, mp.Name, targetSeen)
	}
	t.Logf("%s has up to %s, %d KiB behind %s's %s, which both members of the standby cluster replayed",
		r.Name, fmtLSN(got), (target-got)>>10, mp.Name, targetSeen)

	// The main primary dies; its replica is promoted without that WAL.
	killed := w.Mark("kill the main primary " + mp.Name)
	mp.KillAll()
	if len(testcluster.Alive([]int{pid})) > 0 {
		thaw() // KillAll should have ended it with the rest of the node
	} else {
		thawed = true // gone: its pid may be another process's by now
	}
	np := main.WaitPrimary(t, 30*time.Second, mp)
	promotedAt := time.Now()
	promoted := w.Mark("main: " + np.Name + " promoted")
	if np != r {
		t.Fatalf("the main cluster's new primary is %s, want %s", np.Name, r.Name)
	}
	tl1, err := np.Timeline(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if tl1 <= tl0 {
		t.Fatalf("the main cluster's new primary %s is on timeline %d, want above %d", np.Name, tl1, tl0)
	}
	if has, err := hasTable(np, divergeTable); err != nil || has {
		t.Fatalf("the main cluster's new primary %s has table %s (%v): it got the WAL it was kept from, nothing diverged", np.Name, divergeTable, err)
	}
	t.Logf("%s promoted on timeline %d %s after %s was killed", np.Name, tl1, promotedAt.Sub(killed).Round(time.Millisecond), mp.Name)
	w.WaitAck(t, testcluster.MultiWriter, np.Name, promoted, 15*time.Second)

	// Both members of the standby cluster stream the new timeline again,
	// each from its upstream, rewound, within 15 s of the promotion.
	const within = 15 * time.Second
	type member struct {
		n    *testcluster.Node
		want string
		ok   func() (bool, string)
		took time.Duration
		seen string
	}
	members := []*member{
		{n: sl, want: fmt.Sprintf("streaming from the main cluster's new primary %s through HAProxy's port %d, slot %q, on timeline %d", np.Name, rw, standbySlot, tl1),
			ok: func() (bool, string) { return followsRemote(sc, sl, rw, tl1) }},
		{n: other, want: fmt.Sprintf("streaming from the standby leader %s on timeline %d", sl.Name, tl1),
			ok: func() (bool, string) {
				rcv, ok, seen := streamsFromVia(sc, other, sl)
				return ok && rcv.ReceivedTLI == tl1, seen
			}},
	}
	// Past within, wait on a while to tell slow from broken.
	for left := len(members); left > 0 && time.Since(promotedAt) < 45*time.Second; {
		for _, m := range members {
			if m.took != 0 {
				continue
			}
			var ok bool
			ok, m.seen = m.ok()
			if ok {
				m.took = time.Since(promotedAt)
				left--
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, m := range members {
		switch {
		case m.took == 0:
			t.Errorf("%s not %s 45s after the promotion; seen last: %s\n%s's pg-supervise: %s", m.n.Name, m.want, m.seen, m.n.Name, rejoined(m.n))
		case m.took > within:
			t.Errorf("%s %s only %s after the promotion, want within %s (%s)", m.n.Name, m.want, m.took.Round(time.Millisecond), within, rejoined(m.n))
		default:
			t.Logf("%s %s %s after the promotion (%s)", m.n.Name, m.want, m.took.Round(time.Millisecond), rejoined(m.n))
		}
	}

	// Each was found diverged from its upstream's history and rewound.
	for _, n := range sc.Nodes {
		for _, msg := range []string{"this replica's WAL diverged", "rewound with pg_rewind"} {
			if !n.LogContains(testcluster.Supervise, msg) {
				t.Errorf("%s's pg-supervise log has no %q: the divergence was not seen or not rewound (%s; %d × %q)", n.Name, msg,
					rejoined(n), n.LogCount(testcluster.Supervise, waitingRewind), waitingRewind)
			}
		}
		if n.LogContains(testcluster.Supervise, "not streaming from the leader for a while") {
			t.Errorf("%s was checked by the not-streaming fallback, not by its upstream's history (%s)", n.Name, rejoined(n))
		}
		if has, err := hasTable(n, divergeTable); err != nil {
			t.Errorf("%s: cannot tell whether table %s, which the main cluster's new timeline never had, is gone: %v", n.Name, divergeTable, err)
		} else if has {
			t.Errorf("%s still has table %s, which the main cluster's new timeline never had: not rewound", n.Name, divergeTable)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	waitSeen(t, 10*time.Second, fmt.Sprintf("slot %q active on the main cluster's new primary %s", standbySlot, np.Name),
		func() (bool, string) { return slotActive(np) })
	waitReplayed(t, w, 15*time.Second, sl, other)
	if got, err := sc.StandbyLeader(ctx); err != nil {
		t.Fatalf("no standby leader after the rewinds, want %s still: %v", sl.Name, err)
	} else if got != sl {
		t.Fatalf("standby leader %s after the rewinds, want %s still", got.Name, sl.Name)
	}
	checkStandbyRoles(t, sc, sl, "after the rewinds")
	waitMembersStreaming(t, sc, sl, 10*time.Second)

	s.stopWatching()
	for _, ps := range <-s.primaries {
		if len(ps.Names) > 0 {
			t.Errorf("a member of the standby cluster out of recovery while it followed the main cluster: primaries seen %s", ps)
		}
	}

	// The standby cluster ends with exactly the rows the main cluster kept.
	// The main cluster lost what its primary acknowledged while the
	// walsender was frozen, as its asynchronous failover may: that whole
	// time counts as the last moment before the failover.
	h := w.Stop()
	kept, last := testcluster.FinalWrites(t, main)
	for _, n := range sc.Nodes {
		waitRows(t, n, kept, fmt.Sprintf("%s holding exactly the rows of the main primary %s", n.Name, last.Name))
	}
	testcluster.AssertSafe(t, h, kept, testcluster.LossPolicy{AllowAsync: true,
		MaxBytes: uint64(main.Options.MaximumLagOnFailover), Within: killed.Sub(frozen) + testcluster.DefaultLossWithin})
}
