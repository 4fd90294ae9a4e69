package pg_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pg-ha/pg-ha/lib/pg"
	"github.com/pg-ha/pg-ha/lib/pg/pgtest"
)

// These tests run a real PostgreSQL 15 (see pgtest): PGHA_TEST_PG_BINDIR,
// default /usr/lib/postgresql/15/bin. Set PGHA_TEST_DISALLOW_SKIP=1 to make
// missing binaries a failure instead of a skip.

// hba asks for a password over TCP and trusts the unix socket.
const hba = "local all all trust\nlocal replication all trust\n" +
	"host all all 127.0.0.1/32 scram-sha-256\nhost replication all 127.0.0.1/32 scram-sha-256\n"

// node is one PostgreSQL instance of a test.
type node struct {
	*pgtest.Instance
	t *testing.T
}

// startPrimary starts a copy of the template with pg_hba.conf set to hba.
func startPrimary(t *testing.T) *node {
	t.Helper()
	p := &node{Instance: pgtest.New(t), t: t}
	p.WriteFile("pg_hba.conf", hba)
	p.Start()
	return p
}

// startStandby clones p by pg_basebackup and starts the clone as a
// streaming standby with the extra arguments.
func (p *node) startStandby(t *testing.T, extra ...string) *node {
	t.Helper()
	s := &node{Instance: p.Standby(t), t: t}
	s.Start(extra...)
	return s
}

func (n *node) connect() *pgx.Conn {
	t := n.t
	t.Helper()
	conn, err := pg.Connect(t.Context(), n.Params())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func (n *node) status(conn *pgx.Conn) pg.Status {
	n.t.Helper()
	st, err := pg.QueryStatus(n.t.Context(), conn)
	if err != nil {
		n.t.Fatal(err)
	}
	return st
}

func (n *node) controlData() pg.ControlData {
	n.t.Helper()
	cd, err := pg.ReadControlData(n.t.Context(), n.Owner, pgtest.BinDir, n.DataDir)
	if err != nil {
		n.t.Fatal(err)
	}
	return cd
}

// waitFor polls cond every 20 ms for up to 15 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func slotNames(t *testing.T, conn *pgx.Conn) map[string]bool {
	t.Helper()
	rows, err := conn.Query(t.Context(),
		"SELECT slot_name::text FROM pg_replication_slots WHERE slot_type = 'physical' AND restart_lsn IS NOT NULL")
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	set := make(map[string]bool)
	for _, n := range names {
		set[n] = true
	}
	return set
}

func TestIntegrationPrimary(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	p := startPrimary(t)
	conn := p.connect()

	st := p.status(conn)
	if st.InRecovery || st.Timeline != 1 || st.WriteLSN == 0 || st.ReceiveLSN != 0 || st.ReplayLSN != 0 {
		t.Errorf("primary status = %+v, want not in recovery, timeline 1, a write LSN only", st)
	}
	if st.Position() != st.WriteLSN {
		t.Errorf("Position() = %v, want the write LSN %v", st.Position(), st.WriteLSN)
	}
	if st.ServerVersion < 150000 || st.ServerVersion >= 160000 {
		t.Errorf("ServerVersion = %d, want 15xxxx", st.ServerVersion)
	}
	if age := time.Since(st.PostmasterStart); age < 0 || age > time.Minute {
		t.Errorf("PostmasterStart = %v, want moments ago", st.PostmasterStart)
	}
	if st.PendingRestart || st.ReplayPaused || st.ReceiverStatus != "" || st.ReceiverSender != "" || len(st.Replication) != 0 {
		t.Errorf("primary status = %+v, want no restart pending, no pause, no receiver, no replicas", st)
	}

	cd := p.controlData()
	if cd.State != pg.StateInProduction || !pg.IsPrimaryState(cd.State) || cd.TimelineID != 1 {
		t.Errorf("control data of a running primary: state %q timeline %d", cd.State, cd.TimelineID)
	}
	if cd.SystemIdentifier == 0 || cd.SystemIdentifier != st.SystemIdentifier {
		t.Errorf("system identifier: control data %d, QueryStatus %d", cd.SystemIdentifier, st.SystemIdentifier)
	}

	if err := pg.Checkpoint(ctx, conn); err != nil {
		t.Fatal(err)
	}
	if after := p.controlData(); after.CheckpointLSN <= cd.CheckpointLSN {
		t.Errorf("checkpoint location %v after CHECKPOINT, was %v", after.CheckpointLSN, cd.CheckpointLSN)
	}

	// A setting changed in the config file that needs a restart.
	if _, err := conn.Exec(ctx, "ALTER SYSTEM SET max_connections = 90"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "pending_restart", func() bool { return p.status(conn).PendingRestart })

	t.Run("slots", func(t *testing.T) {
		if err := pg.EnsurePhysicalSlots(ctx, conn, []string{"node_a", "node_b", "node_a"}); err != nil {
			t.Fatal(err)
		}
		if got := slotNames(t, conn); !got["node_a"] || !got["node_b"] || len(got) != 2 {
			t.Fatalf("slots with reserved WAL = %v, want node_a and node_b", got)
		}
		if err := pg.EnsurePhysicalSlots(ctx, conn, []string{"node_a", "node_c"}); err != nil {
			t.Fatalf("second EnsurePhysicalSlots: %v", err)
		}
		if got := slotNames(t, conn); len(got) != 3 {
			t.Fatalf("slots = %v, want node_a, node_b, node_c: nothing dropped", got)
		}
		err := pg.EnsurePhysicalSlots(ctx, conn, []string{"Bad-Name", "node_d"})
		if err == nil || !strings.Contains(err.Error(), `"Bad-Name"`) {
			t.Errorf("invalid slot name: error %v, want one naming the slot", err)
		}
		if got := slotNames(t, conn); !got["node_d"] {
			t.Errorf("a bad name kept node_d from being created: %v", got)
		}
		dropped, err := pg.DropPhysicalSlots(ctx, conn, []string{"node_b", "node_x", "node_c", "node_b"})
		if err != nil || strings.Join(dropped, ",") != "node_b,node_c" {
			t.Fatalf("DropPhysicalSlots(node_b, node_x, node_c) dropped %q, %v; want node_b and node_c", dropped, err)
		}
		if got := slotNames(t, conn); !got["node_a"] || !got["node_d"] || len(got) != 2 {
			t.Fatalf("slots after DropPhysicalSlots(node_b, node_x, node_c) = %v, want node_a and node_d: only named slots go", got)
		}
		if dropped, err := pg.DropPhysicalSlots(ctx, conn, nil); err != nil || len(dropped) != 0 || len(slotNames(t, conn)) != 2 {
			t.Fatalf("DropPhysicalSlots(nil) dropped %q, %v", dropped, err)
		}

		// Advancing: forward only, never past the flush position, never
		// a slot not named.
		restart := func(name string) pg.LSN {
			var s string
			if err := conn.QueryRow(ctx, "SELECT restart_lsn::text FROM pg_replication_slots WHERE slot_name = $1", name).Scan(&s); err != nil {
				t.Fatal(err)
			}
			l, err := pg.ParseLSN(s)
			if err != nil {
				t.Fatal(err)
			}
			return l
		}
		before := restart("node_a")
		if _, err := conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS adv(x int); INSERT INTO adv SELECT generate_series(1, 20000)"); err != nil {
			t.Fatal(err)
		}
		var flushText string
		if err := conn.QueryRow(ctx, "SELECT pg_current_wal_flush_lsn()::text").Scan(&flushText); err != nil {
			t.Fatal(err)
		}
		flush, _ := pg.ParseLSN(flushText)
		target := before + (flush-before)/2
		moved, err := pg.AdvancePhysicalSlots(ctx, conn, map[string]int64{"node_a": int64(target), "node_x": int64(target)})
		if err != nil || strings.Join(moved, ",") != "node_a" {
			t.Fatalf("AdvancePhysicalSlots(node_a, node_x) moved %q, %v; want node_a", moved, err)
		}
		if got := restart("node_a"); got != target {
			t.Fatalf("node_a at %s after advancing to %s (from %s)", got, target, before)
		}
		if restart("node_d") != before && restart("node_d") > target {
			t.Fatalf("node_d moved without being named")
		}
		if moved, err := pg.AdvancePhysicalSlots(ctx, conn, map[string]int64{"node_a": int64(before)}); err != nil || len(moved) != 0 || restart("node_a") != target {
			t.Fatalf("advancing node_a back to %s: moved %q, %v, now at %s; want no move", before, moved, err, restart("node_a"))
		}
		if moved, err := pg.AdvancePhysicalSlots(ctx, conn, map[string]int64{"node_a": int64(flush) + 1<<40}); err != nil || len(moved) != 1 || restart("node_a") > flush+1<<20 {
			t.Fatalf("advancing node_a far ahead: moved %q, %v, now at %s; want at most the flush position %s", moved, err, restart("node_a"), flush)
		}
	})

	t.Run("password over TCP", func(t *testing.T) {
		password := `p:a\ss w'rd`
		if _, err := conn.Exec(ctx, "ALTER ROLE postgres PASSWORD "+quoteLiteral(password)); err != nil {
			t.Fatal(err)
		}
		tcp := pg.ConnParams{Host: "127.0.0.1", Port: p.Port, User: "postgres", ConnectTimeout: time.Second,
			Passfile: filepath.Join(t.TempDir(), "pgpass")}
		_, err := pg.Connect(ctx, tcp)
		if err == nil {
			t.Fatal("connected over TCP without a password")
		}
		wantPrefix := fmt.Sprintf("connect to postgres at 127.0.0.1:%d: ", p.Port)
		if !strings.HasPrefix(err.Error(), wantPrefix) {
			t.Errorf("error %q, want prefix %q", err, wantPrefix)
		}
		entries := []pg.PassEntry{
			{Host: "127.0.0.1", Port: "1", User: "postgres", Password: "wrong"},
			{Host: "127.0.0.1", Port: fmt.Sprint(p.Port), Database: "*", User: "postgres", Password: password},
		}
		if err := pg.WritePgpass(tcp.Passfile, pg.Owner{UID: uint32(os.Geteuid()), GID: uint32(os.Getegid())}, entries); err != nil {
			t.Fatal(err)
		}
		c, err := pg.Connect(ctx, tcp)
		if err != nil {
			t.Fatalf("connect with passfile: %v", err)
		}
		c.Close(ctx)

		tcp.Passfile = ""
		tcp.Password = password
		c, err = pg.Connect(ctx, tcp)
		if err != nil {
			t.Fatalf("connect with password: %v", err)
		}
		if got := p.status(c); got.SystemIdentifier != st.SystemIdentifier {
			t.Errorf("system identifier over TCP %d, want %d", got.SystemIdentifier, st.SystemIdentifier)
		}
		c.Close(ctx)

		tcp.Password = "wrong"
		if _, err := pg.Connect(ctx, tcp); pg.SQLState(err) != "28P01" {
			t.Errorf("wrong password: error %v (SQLSTATE %q), want 28P01", err, pg.SQLState(err))
		}
	})

	if err := pg.Promote(ctx, conn, time.Second); !errors.Is(err, pg.ErrNotInRecovery) {
		t.Errorf("Promote on a primary: %v, want ErrNotInRecovery", err)
	}
	if h, err := pg.TimelineHistory(ctx, p.Params(), 1); err != nil || len(h) != 0 {
		t.Errorf("TimelineHistory(1) = %v, %v; want nothing", h, err)
	}
	if _, err := pg.TimelineHistory(ctx, p.Params(), 2); err == nil {
		t.Error("TimelineHistory(2) on a server that never left timeline 1 succeeded")
	}

	conn.Close(ctx)
	p.StopFast()
	if cd := p.controlData(); cd.State != pg.StateShutDown || !pg.IsPrimaryState(cd.State) {
		t.Errorf("state after a fast shutdown = %q, want %q", cd.State, pg.StateShutDown)
	}
	if _, err := pg.QueryStatus(ctx, conn); err == nil {
		t.Error("QueryStatus on a closed connection succeeded")
	}
}

func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

func TestIntegrationStandby(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	p := startPrimary(t)
	pconn := p.connect()
	if err := pg.EnsurePhysicalSlots(ctx, pconn, []string{"standby1", "spare"}); err != nil {
		t.Fatal(err)
	}
	pst := p.status(pconn)

	s := p.startStandby(t, "-c", "primary_slot_name=standby1", "-c", "cluster_name=standby1")
	sconn := s.connect()

	var st pg.Status
	waitFor(t, "the standby to stream", func() bool {
		st = s.status(sconn)
		return st.ReceiverStatus == "streaming"
	})
	if !st.InRecovery || st.Timeline != 1 || st.ReceiveLSN == 0 || st.ReplayLSN == 0 || st.WriteLSN != 0 {
		t.Errorf("standby status = %+v, want in recovery on timeline 1 with receive and replay LSNs", st)
	}
	if st.Position() != max(st.ReceiveLSN, st.ReplayLSN) {
		t.Errorf("Position() = %v, want max(%v, %v)", st.Position(), st.ReceiveLSN, st.ReplayLSN)
	}
	if want := fmt.Sprintf("%s:%d", p.SockDir, p.Port); st.ReceiverSender != want {
		t.Errorf("ReceiverSender = %q, want %q", st.ReceiverSender, want)
	}
	if st.SystemIdentifier != pst.SystemIdentifier || st.ReplayPaused {
		t.Errorf("standby status = %+v, want the primary's system identifier %d, replay not paused", st, pst.SystemIdentifier)
	}
	if cd := s.controlData(); cd.State != pg.StateInArchiveRecovery || pg.IsPrimaryState(cd.State) {
		t.Errorf("control data state of a running standby = %q", cd.State)
	}

	var replicas []pg.Replica
	waitFor(t, "the primary to list the standby as streaming", func() bool {
		replicas = p.status(pconn).Replication
		return len(replicas) == 1 && replicas[0].State == "streaming"
	})
	if r := replicas[0]; r.ApplicationName != "standby1" || r.SyncState != "async" || r.SentLSN == 0 || r.ClientAddr != "" {
		t.Errorf("replica = %+v, want standby1, async, over the unix socket, with a sent LSN", r)
	}

	// The active slot survives; the idle one goes.
	if dropped, err := pg.DropPhysicalSlots(ctx, pconn, []string{"standby1", "spare"}); err != nil || strings.Join(dropped, ",") != "spare" {
		t.Fatalf("DropPhysicalSlots(standby1, spare) dropped %q, %v; want spare only", dropped, err)
	}
	if got := slotNames(t, pconn); !got["standby1"] || got["spare"] {
		t.Errorf("slots after DropPhysicalSlots(standby1, spare) = %v, want only the active standby1", got)
	}

	// Writes on the primary reach the standby.
	if _, err := pconn.Exec(ctx, "CREATE TABLE t AS SELECT 1 AS x"); err != nil {
		t.Fatal(err)
	}
	target := p.status(pconn).WriteLSN
	waitFor(t, "the standby to replay "+target.String(), func() bool {
		st = s.status(sconn)
		return st.ReplayLSN >= target
	})
	beforePromote := st.ReplayLSN
	// IDENTIFY_SYSTEM on the standby names the timeline it replays.
	if sys, err := pg.IdentifySystem(ctx, s.Params()); err != nil || sys.Timeline != 1 ||
		sys.SystemID != pst.SystemIdentifier || sys.XLogPos < target {
		t.Errorf("IdentifySystem(standby) = %+v, %v; want timeline 1 at or past %v", sys, err, target)
	}
	// The standby reports each flush back.
	waitFor(t, "the primary to see the standby's flush", func() bool {
		replicas = p.status(pconn).Replication
		return len(replicas) == 1 && replicas[0].FlushLSN >= target
	})
	if r := replicas[0]; r.SentLSN < target || r.WriteLSN < target {
		t.Errorf("replica = %+v, want sent and written up to %v", r, target)
	}
	// A standby keeps a copy of a peer's slot, advanced as far as it
	// replayed and no further.
	if err := pg.EnsurePhysicalSlots(ctx, sconn, []string{"peer"}); err != nil {
		t.Fatalf("creating a slot on the standby: %v", err)
	}
	if moved, err := pg.AdvancePhysicalSlots(ctx, sconn, map[string]int64{"peer": int64(target) + 1<<40}); err != nil || len(moved) > 1 {
		t.Fatalf("advancing a slot on the standby: moved %q, %v", moved, err)
	}
	var peerText string
	if err := sconn.QueryRow(ctx, "SELECT restart_lsn::text FROM pg_replication_slots WHERE slot_name = 'peer'").Scan(&peerText); err != nil {
		t.Fatal(err)
	}
	if peer, _ := pg.ParseLSN(peerText); peer < target || peer > s.status(sconn).ReplayLSN {
		t.Errorf("the standby's copy is at %s, want between %s and its replay position %s", peerText, target, s.status(sconn).ReplayLSN)
	}

	start := time.Now()
	if err := pg.Promote(ctx, sconn, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("promotion took %v", time.Since(start).Round(time.Millisecond))
	st = s.status(sconn)
	if st.InRecovery || st.Timeline != 2 || st.WriteLSN < beforePromote {
		t.Errorf("promoted status = %+v, want a primary on timeline 2", st)
	}
	if _, err := sconn.Exec(ctx, "INSERT INTO t VALUES (2)"); err != nil {
		t.Errorf("write after promotion: %v", err)
	}
	if cd := s.controlData(); cd.State != pg.StateInProduction {
		t.Errorf("control data state after promotion = %q", cd.State)
	}
	if err := pg.Promote(ctx, sconn, time.Second); !errors.Is(err, pg.ErrNotInRecovery) {
		t.Errorf("second Promote: %v, want ErrNotInRecovery", err)
	}

	// A replication connection from Connect speaks the replication protocol.
	rp := s.Params()
	rp.Replication = true
	rconn, err := pg.Connect(ctx, rp)
	if err != nil {
		t.Fatal(err)
	}
	res, err := rconn.PgConn().Exec(ctx, "IDENTIFY_SYSTEM").ReadAll()
	rconn.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(res[0].Rows[0][0]); got != fmt.Sprint(pst.SystemIdentifier) {
		t.Errorf("IDENTIFY_SYSTEM systemid = %s, want %d", got, pst.SystemIdentifier)
	}
	if sys, err := pg.IdentifySystem(ctx, s.Params()); err != nil || sys.Timeline != 2 || sys.XLogPos < beforePromote {
		t.Errorf("IdentifySystem(promoted) = %+v, %v; want timeline 2", sys, err)
	}

	h, err := pg.TimelineHistory(ctx, s.Params(), 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 1 || h[0].Timeline != 1 || h[0].SwitchLSN < beforePromote || h[0].SwitchLSN > st.WriteLSN ||
		h[0].Reason != "no recovery target specified" {
		t.Errorf("TimelineHistory(2) = %+v, want timeline 1 ending between %v and %v", h, beforePromote, st.WriteLSN)
	}
	if _, err := pg.TimelineHistory(ctx, s.Params(), 3); err == nil || pg.SQLState(err) == "" {
		t.Errorf("TimelineHistory(3): %v, want a server error", err)
	}
}

// A cascaded standby that followed its upstream's promotion by streaming
// replays the new timeline; once its upstream is gone, the SQL functions
// name only its last checkpoint's timeline, ReplayTimeline the one it
// replays.
func TestIntegrationReplayTimelineAfterUpstreamLeft(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	p := startPrimary(t)
	s1 := p.startStandby(t, "-c", "cluster_name=s1")
	s1conn := s1.connect()
	waitFor(t, "s1 to stream", func() bool { return s1.status(s1conn).ReceiverStatus == "streaming" })
	s2 := s1.startStandby(t, "-c", "cluster_name=s2")
	s2conn := s2.connect()
	waitFor(t, "s2 to stream from s1", func() bool { return s2.status(s2conn).ReceiverStatus == "streaming" })

	if err := pg.Promote(ctx, s1conn, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := s1conn.Exec(ctx, "CREATE TABLE t AS SELECT 1 AS x"); err != nil {
		t.Fatal(err)
	}
	target := s1.status(s1conn).WriteLSN
	waitFor(t, "s2 to stream timeline 2", func() bool {
		st := s2.status(s2conn)
		return st.ReceiverStatus == "streaming" && st.Timeline == 2 && st.ReplayLSN >= target
	})
	s1.StopFast()
	var st pg.Status
	waitFor(t, "s2 to stop streaming", func() bool {
		st = s2.status(s2conn)
		return st.ReceiverStatus != "streaming"
	})
	t.Logf("status of s2 without its upstream: timeline %d (the last checkpoint's), receiver %q", st.Timeline, st.ReceiverStatus)
	if got := pg.ReplayTimeline(ctx, s2.Params(), st); got != 2 {
		t.Errorf("ReplayTimeline = %d, want 2", got)
	}
	// A primary's and a streaming standby's timeline are taken as they are.
	if got := pg.ReplayTimeline(ctx, pg.ConnParams{}, pg.Status{Timeline: 7}); got != 7 {
		t.Errorf("ReplayTimeline(primary) = %d, want 7", got)
	}
}
