package main

import (
	"context"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/pg"
)

// TestStandinAnswersStatus checks that the stand-in answers the statements
// pg-lockd sends as lib/pg parses them: the status of a standby and of a
// primary, IDENTIFY_SYSTEM, and the replication guard's count.
func TestStandinAnswersStatus(t *testing.T) {
	c := &cluster{scope: "t", sysid: 7000000000000000042}
	p := &node{c: c, name: "m1", port: 5432, timeline: 1, basePos: 0x3000000, baseAt: time.Now(), started: time.Now()}
	r := &node{c: c, name: "m2", port: 5433, timeline: 1, basePos: 0x3000000, baseAt: time.Now(), started: time.Now()}
	c.nodes = []*node{p, r}
	dir := t.TempDir()
	for _, n := range c.nodes {
		n.dir = dir
		n.standin = &standin{node: n}
		if err := n.standin.listen(dir, n.port); err != nil {
			t.Fatal(err)
		}
		defer n.standin.kill()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	params := func(port int) pg.ConnParams {
		return pg.ConnParams{Host: dir, Port: port, User: "postgres", Password: "x", ConnectTimeout: time.Second}
	}
	conn, err := pg.Connect(ctx, params(5433))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	st, err := pg.QueryStatus(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if !st.InRecovery || st.Timeline != 1 || st.SystemIdentifier != c.sysid || st.ReceiverStatus != "" {
		t.Fatalf("standby status: %+v", st)
	}
	sys, err := pg.IdentifySystem(ctx, params(5433))
	if err != nil || sys.SystemID != c.sysid || sys.Timeline != 1 {
		t.Fatalf("IDENTIFY_SYSTEM: %+v, %v", sys, err)
	}

	// m1 is told to lead; m2 to follow it.
	c.mu.Lock()
	p.desired, p.until, p.promoteAt = "lead", 1<<62, time.Now()
	r.leader = "m1"
	c.mu.Unlock()
	pc, err := pg.Connect(ctx, params(5432))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close(ctx)
	ps, err := pg.QueryStatus(ctx, pc)
	if err != nil {
		t.Fatal(err)
	}
	if ps.InRecovery || ps.Timeline != 2 || ps.WriteLSN < 0x3000000 || len(ps.Replication) != 1 {
		t.Fatalf("primary status: %+v", ps)
	}
	st, err = pg.QueryStatus(ctx, conn)
	if err != nil || st.ReceiverStatus != "streaming" || st.Timeline != 2 {
		t.Fatalf("standby status after the promotion: %+v, %v", st, err)
	}
	var n int
	if err := pc.QueryRow(ctx, `SELECT count(*) FROM pg_catalog.pg_stat_replication
WHERE state = 'streaming' AND (write_lsn >= pg_catalog.pg_current_wal_lsn()
  OR pg_catalog.clock_timestamp() - reply_time < pg_catalog.make_interval(secs => $1))`, 1.5).Scan(&n); err != nil || n != 1 {
		t.Fatalf("replicas receiving: %d, %v", n, err)
	}
}
