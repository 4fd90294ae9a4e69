package elector

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pg-ha/pg-ha/lib/clock"
	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/dcs"
	"github.com/pg-ha/pg-ha/lib/pgdata"
	"github.com/pg-ha/pg-ha/lib/state"
)

// TestFailsafeBlocks: a node does not take the free leader key while it
// has promised another leader not to (an unreadable record counts as a
// promise), while the failsafe key does not list it, or within ttl of its
// start while the key exists; its own promise and an expired one do not
// hold it back.
func TestFailsafeBlocks(t *testing.T) {
	fake := clock.NewFake(clock.Now())
	dir := t.TempDir()
	e := &Elector{cfg: &config.Config{Name: "node2"}, node: &pgdata.Node{RuntimeDir: dir}, clock: fake, log: zerolog.Nop(),
		dyn: config.Dynamic{TTL: 8 * time.Second}}
	e.started = fake.Now()
	fake.Advance(10 * time.Second)
	listed := &dcs.Cluster{Failsafe: map[string]string{"node1": "http://a/patroni", "node2": "http://b/patroni"}}
	check := func(cl *dcs.Cluster, want string) {
		t.Helper()
		got := e.failsafeBlocks(cl)
		if (want == "") != (got == "") || !strings.Contains(got, want) {
			t.Errorf("failsafeBlocks = %q, want %q", got, want)
		}
	}
	check(listed, "")
	check(&dcs.Cluster{}, "")
	check(&dcs.Cluster{Failsafe: map[string]string{"node1": "http://a/patroni"}}, "not listed")

	promise := func(leader string, until clock.Time) {
		t.Helper()
		if err := state.Write(dir, state.FailsafeFile, state.Failsafe{Leader: leader, Received: fake.Now(), Until: until}); err != nil {
			t.Fatal(err)
		}
	}
	promise("node1", fake.Now().Add(5*time.Second))
	check(listed, "promised node1")
	check(&dcs.Cluster{}, "promised node1") // whatever failsafe_mode and the key say now
	fake.Advance(5 * time.Second)
	check(listed, "")
	promise("node2", fake.Now().Add(5*time.Second))
	check(listed, "")
	if err := os.WriteFile(filepath.Join(dir, state.FailsafeFile), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	check(listed, "cannot read the promise file")
	if err := os.Remove(filepath.Join(dir, state.FailsafeFile)); err != nil {
		t.Fatal(err)
	}
	e.started = fake.Now().Add(-7 * time.Second)
	check(listed, "started less than ttl ago")
	check(&dcs.Cluster{}, "")
}

// TestFailsafeAsk: the members asked are those of the key as read plus
// those of a write whose outcome is not yet seen, never this node; none
// while failsafe_mode is off or no key was seen.
func TestFailsafeAsk(t *testing.T) {
	client, err := dcs.New(context.Background(), dcs.Options{Endpoints: []string{"http://127.0.0.1:1"}, Prefix: "/service/test/"})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	e := &Elector{cfg: &config.Config{Name: "node1"}, dcs: client, clock: clock.NewFake(clock.Now()), log: zerolog.Nop(),
		dyn: config.Dynamic{FailsafeMode: true}}
	cl := &dcs.Cluster{Members: []dcs.Member{{Name: "node1"}, {Name: "node2", Data: dcs.MemberData{APIURL: "http://b/patroni"}},
		{Name: "node3", Data: dcs.MemberData{APIURL: "http://c/patroni"}}}}
	if ops := e.failsafeKeyOps(cl); len(ops) != 1 || e.ka.fs.ask != nil {
		t.Fatalf("first write: %d ops, ask %v; want one put and nothing asked before a key is seen", len(ops), e.ka.fs.ask)
	}
	cl.Failsafe = map[string]string{"node1": "", "node2": "http://b/patroni"}
	e.setFailsafeAsk(cl)
	if want := map[string]string{"node2": "http://b/patroni", "node3": "http://c/patroni"}; !maps.Equal(e.ka.fs.ask, want) {
		t.Errorf("asked %v, want %v: the key as read plus the write not yet seen", e.ka.fs.ask, want)
	}
	cl.Failsafe = maps.Clone(e.fsWritten)
	e.setFailsafeAsk(cl)
	if e.fsWritten != nil || len(e.ka.fs.ask) != 2 {
		t.Errorf("after the write is seen: written %v, asked %v", e.fsWritten, e.ka.fs.ask)
	}
	if ops := e.failsafeKeyOps(cl); len(ops) != 0 {
		t.Errorf("%d writes of an unchanged key", len(ops))
	}
	e.dyn.FailsafeMode = false
	if ops := e.failsafeKeyOps(cl); len(ops) != 1 {
		t.Errorf("failsafe_mode off with a key: %d ops, want its delete", len(ops))
	}
	e.setFailsafeAsk(cl)
	if e.ka.fs.ask != nil {
		t.Errorf("failsafe_mode off: asked %v", e.ka.fs.ask)
	}
}

// TestFailsafeDeadline: the heartbeat names a failsafe deadline only while
// failsafe rounds, not the lease, make the lead deadline in force, and not
// when an early fence caps it.
func TestFailsafeDeadline(t *testing.T) {
	at := clock.Time(100 * time.Second)
	e := &Elector{}
	e.ka.ttl = 8 * time.Second
	e.ka.lease = dcs.Lease{ID: 1, TTL: 8 * time.Second, ValidUntil: at.Add(5 * time.Second)}
	if _, got := e.failsafeDeadline(); got != 0 {
		t.Errorf("lease alone: %v, want 0", got)
	}
	e.ka.fs.until = at.Add(3 * time.Second)
	if _, got := e.failsafeDeadline(); got != 0 {
		t.Errorf("failsafe earlier than the lease: %v, want 0", got)
	}
	e.ka.fs.until = at.Add(20 * time.Second)
	want := at.Add(20*time.Second - config.FenceMargin)
	if _, got := e.failsafeDeadline(); got != want {
		t.Errorf("failsafe later than the lease: %v, want %v", got, want)
	}
	e.ka.lease = dcs.Lease{}
	if _, got := e.failsafeDeadline(); got != want {
		t.Errorf("failsafe without a lease: %v, want %v", got, want)
	}
	e.ka.fencedAt = at.Add(10 * time.Second)
	if _, got := e.failsafeDeadline(); got != 0 {
		t.Errorf("capped by an early fence: %v, want 0", got)
	}
	if armed, _ := e.failsafeDeadline(); armed {
		t.Error("armed without members to ask")
	}
	e.ka.fs.ask = map[string]string{"node2": "http://b/patroni"}
	if armed, _ := e.failsafeDeadline(); !armed {
		t.Error("not armed with members to ask")
	}
}
