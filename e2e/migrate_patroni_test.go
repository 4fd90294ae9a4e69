package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/testcluster"
)

// migrationMarker is a file the test puts into every data directory before
// a migration: pg_basebackup would copy the leader's, so each node's holds
// its own random content.
const migrationMarker = "pgha-test-migration.marker"

// nodeIdentity is what must survive a migration in place: a re-clone
// replaces the data directory (new inode, the leader's marker) even though
// the system identifier stays the cluster's.
type nodeIdentity struct {
	sysid  string
	inode  uint64
	marker string
}

func identify(t testing.TB, n *testcluster.Node) nodeIdentity {
	t.Helper()
	var id nodeIdentity
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.QueryRow(ctx, "SELECT system_identifier::text FROM pg_control_system()", nil, &id.sysid); err != nil {
		t.Fatalf("%s: system identifier: %v", n.Name, err)
	}
	st, err := os.Stat(n.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	id.inode = st.Sys().(*syscall.Stat_t).Ino
	b, err := os.ReadFile(filepath.Join(n.DataDir, migrationMarker))
	if err != nil {
		t.Fatalf("%s: marker: %v", n.Name, err)
	}
	id.marker = string(b)
	return id
}

// TestMigratePatroniInPlace moves a running three-node Patroni 3.0.2
// cluster to pg-ha node by node, replicas first, while the workload
// writes, then back to Patroni. The leader's node is moved after a
// switchover to an already moved node, which costs one timeline; on the
// way back pg-ha is stopped on the leader's node last and Patroni elects a
// new leader, one more timeline. Nothing else may change the timeline. No node is cloned again (its data
// directory, marker and system identifier survive), no acknowledged write
// is lost, and there is never more than one primary.
func TestMigratePatroniInPlace(t *testing.T) {
	c, w := start(t, testcluster.Options{Patroni: true})
	began := time.Now()
	leader := c.WaitPrimary(t, 30*time.Second)
	ctx := context.Background()
	tl0, err := leader.Timeline(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]nodeIdentity{}
	for _, n := range c.Nodes {
		b := make([]byte, 8)
		rand.Read(b)
		// Owned like the data directory: pg_rewind copies unknown files.
		path := filepath.Join(n.DataDir, migrationMarker)
		if err := os.WriteFile(path, []byte(n.Name+" "+hex.EncodeToString(b)), 0o600); err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(n.DataDir)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(path, int(st.Sys().(*syscall.Stat_t).Uid), int(st.Sys().(*syscall.Stat_t).Gid)); err != nil {
			t.Fatal(err)
		}
		ids[n.Name] = identify(t, n)
	}

	// Never two primaries: every node is asked every 100ms.
	var most atomic.Int32
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			if k := int32(len(c.Primaries(ctx))); k > most.Load() {
				most.Store(k)
			}
			cancel()
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()

	var replicas []*testcluster.Node
	for _, n := range c.Nodes {
		if n != leader {
			replicas = append(replicas, n)
		}
	}
	// move changes n's manager and waits until it streams again from the
	// unchanged primary want (which keeps its timeline).
	move := func(n *testcluster.Node, toPatroni bool, want *testcluster.Node, tl int) {
		t.Helper()
		step := time.Now()
		w.Mark("move " + n.Name)
		n.Migrate(t, toPatroni)
		c.WaitReplicasStreaming(t, 45*time.Second)
		if p := c.WaitPrimary(t, 10*time.Second); p != want {
			t.Fatalf("moving replica %s changed the primary to %s", n.Name, p.Name)
		}
		if got, err := want.Timeline(ctx); err != nil || got != tl {
			t.Fatalf("primary %s timeline %d (%v) after moving %s, want %d", want.Name, got, err, n.Name, tl)
		}
		t.Logf("%s now runs %s, streaming from %s, in %s", n.Name, manager(n), want.Name, time.Since(step).Round(time.Millisecond))
	}
	// switchover hands the primary from old to the moved node to; the
	// timeline goes up by one.
	switchover := func(old, to *testcluster.Node, tl int) {
		t.Helper()
		step := time.Now()
		w.Mark("switchover " + old.Name + " → " + to.Name)
		if _, stderr, code := pgFailover(t, to, "--to", to.Name); code != 0 {
			t.Fatalf("switchover to %s: exit %d: %s", to.Name, code, lastLine(stderr))
		}
		p := c.WaitPrimary(t, 30*time.Second, old)
		if p != to {
			t.Fatalf("switchover to %s made %s the primary", to.Name, p.Name)
		}
		if got, err := p.Timeline(ctx); err != nil || got != tl+1 {
			t.Fatalf("new primary %s timeline %d (%v), want %d", p.Name, got, err, tl+1)
		}
		c.WaitReplicasStreaming(t, 45*time.Second)
		t.Logf("switchover %s (%s) → %s (%s) in %s", old.Name, manager(old), to.Name, manager(to), time.Since(step).Round(time.Millisecond))
	}

	// To pg-ha: replicas, then the leader's node after a switchover.
	for _, r := range replicas {
		move(r, false, leader, tl0)
	}
	switchover(leader, replicas[0], tl0)
	move(leader, false, replicas[0], tl0+1)
	for _, n := range c.Nodes {
		if n.RunsPatroni() || !n.Running(testcluster.Supervise) {
			t.Fatalf("%s does not run pg-ha's programs", n.Name)
		}
	}
	t.Logf("all nodes on pg-ha after %s", time.Since(began).Round(time.Millisecond))

	// Back to Patroni: replicas first; replicas[0] leads now. Patroni
	// 3.0.2 publishes no WAL receiver state in its member key, so
	// pg-failover finds no Patroni member fit for a switchover: stopping
	// pg-ha on the leader hands the key over instead (PostgreSQL stops
	// first, with its WAL sent to the standbys), and Patroni's own
	// election promotes one of the Patroni nodes.
	for _, r := range []*testcluster.Node{leader, replicas[1]} {
		move(r, true, replicas[0], tl0+1)
	}
	if _, _, code := pgFailover(t, leader, "--dry-run", "--to", leader.Name); code == 0 {
		t.Errorf("pg-failover would switch over to %s, a Patroni 3.0.2 member whose WAL receiver state is unknown", leader.Name)
	}
	step := time.Now()
	w.Mark("stop pg-ha on the leader " + replicas[0].Name + " and start Patroni there")
	replicas[0].Migrate(t, true)
	p := c.WaitPrimary(t, 30*time.Second)
	if got, err := p.Timeline(ctx); err != nil || got != tl0+2 {
		t.Fatalf("new primary %s timeline %d (%v), want %d", p.Name, got, err, tl0+2)
	}
	c.WaitReplicasStreaming(t, 45*time.Second)
	t.Logf("leader %s moved to Patroni, %s leads, in %s", replicas[0].Name, p.Name, time.Since(step).Round(time.Millisecond))

	close(stop)
	<-watched
	if k := most.Load(); k > 1 {
		t.Errorf("%d primaries at once during the migration", k)
	}
	for _, n := range c.Nodes {
		if !n.RunsPatroni() {
			t.Fatalf("%s does not run Patroni", n.Name)
		}
		if got, want := identify(t, n), ids[n.Name]; got != want {
			t.Errorf("%s was re-created: data directory %+v, before the migration %+v", n.Name, got, want)
		}
	}
	t.Logf("there and back in %s", time.Since(began).Round(time.Millisecond))
	h := finishLossless(t, c, w)
	t.Logf("longest pause of the multi-host writer: %s", testcluster.MaxGap(h, testcluster.MultiWriter).Round(time.Millisecond))
}

func manager(n *testcluster.Node) string {
	if n.RunsPatroni() {
		return "Patroni"
	}
	return "pg-ha"
}
