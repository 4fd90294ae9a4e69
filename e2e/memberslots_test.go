package e2e

import (
	"context"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/pg"
	"github.com/pg-ha/pg-ha/lib/testcluster"
)

// physicalSlots lists n's physical replication slots: name → active; nil
// if n did not answer.
func physicalSlots(n *testcluster.Node) map[string]bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var list string
	err := n.QueryRow(ctx, `SELECT coalesce(string_agg(slot_name || '=' || active::text, ',' ORDER BY slot_name), '')
		FROM pg_replication_slots WHERE slot_type = 'physical'`, nil, &list)
	if err != nil {
		return nil
	}
	out := map[string]bool{}
	for _, kv := range strings.Split(list, ",") {
		if name, active, ok := strings.Cut(kv, "="); ok {
			out[name] = active == "true"
		}
	}
	return out
}

// hasMemberKey reports whether member name has a key in etcd.
func hasMemberKey(c *testcluster.Cluster, name string) bool {
	ms, err := c.Members(context.Background())
	_, ok := ms[name]
	return err != nil || ok // an unreadable etcd proves nothing
}

// TestMemberSlotsTTL: with an application writing, the primary keeps a
// physical slot for each replica. A replica away for less than
// member_slots_ttl keeps its slot; one gone for good (its daemons and
// PostgreSQL killed, its member key expired with its lease) loses it
// member_slots_ttl after its key went, not before, while the other
// replica's slot stays and it keeps streaming. A slot pg-ha did not create
// for a member (an operator's) is never dropped.
func TestMemberSlotsTTL(t *testing.T) {
	const slotsTTL = 8 * time.Second
	c, w := start(t, testcluster.Options{ExtraDCS: map[string]any{"member_slots_ttl": slotsTTL.Seconds()}})
	ttl := c.Options.TTL
	p := c.WaitPrimary(t, 10*time.Second)
	var back, gone *testcluster.Node
	for _, n := range c.Nodes {
		switch {
		case n == p:
		case back == nil:
			back = n
		default:
			gone = n
		}
	}
	backSlot, goneSlot := pg.SlotName(back.Name), pg.SlotName(gone.Name)
	ctx := context.Background()
	if err := p.Exec(ctx, "SELECT pg_create_physical_replication_slot('operator_slot')"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "the primary's slots for both replicas, active", func() bool {
		s := physicalSlots(p)
		return s[backSlot] && s[goneSlot]
	})

	// Away for less than member_slots_ttl: the slot stays throughout.
	watching, missing := make(chan struct{}), make(chan string, 1)
	stopWatching := sync.OnceFunc(func() { close(watching) })
	defer stopWatching()
	go func() {
		defer close(missing)
		for {
			select {
			case <-watching:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if s := physicalSlots(p); s != nil {
				if _, ok := s[backSlot]; !ok {
					missing <- time.Now().Format("15:04:05.000")
					return
				}
			}
		}
	}()
	w.Mark("stop " + back.Name + " for a moment")
	back.Stop(t, syscall.SIGTERM) // revokes its lease: the member key goes at once
	left := time.Now()
	if hasMemberKey(c, back.Name) {
		t.Fatalf("%s's member key is still there after a clean stop", back.Name)
	}
	time.Sleep(slotsTTL / 3)
	w.Mark("start " + back.Name + " again")
	back.Start(t)
	waitUntil(t, 10*time.Second, back.Name+"'s member key back", func() bool { return hasMemberKey(c, back.Name) })
	t.Logf("%s away (no member key) for %s", back.Name, time.Since(left).Round(10*time.Millisecond))
	if away := time.Since(left); away >= slotsTTL {
		t.Fatalf("%s was away for %s, not less than member_slots_ttl %s: the machine is too slow for this test", back.Name, away, slotsTTL)
	}
	waitUntil(t, 20*time.Second, back.Name+" streaming again from its slot", func() bool { return physicalSlots(p)[backSlot] })
	stopWatching()
	if at, ok := <-missing; ok {
		t.Fatalf("%s's slot was missing on the primary at %s, while it was away for less than member_slots_ttl", back.Name, at)
	}

	// The other replica, which may lead, keeps a copy of the slot too.
	waitUntil(t, 10*time.Second, back.Name+" holding a copy of "+gone.Name+"'s slot", func() bool {
		_, ok := physicalSlots(back)[goneSlot]
		return ok
	})

	// Gone for good: the slot is dropped member_slots_ttl after the key went.
	w.Mark("kill " + gone.Name + " for good")
	gone.KillAll()
	killed := time.Now()
	var keyGone time.Time
	for deadline := killed.Add(ttl + 5*time.Second); ; time.Sleep(100 * time.Millisecond) {
		s := physicalSlots(p)
		if _, ok := s[goneSlot]; s != nil && !ok {
			t.Fatalf("%s's slot dropped %s after the kill, before its member key expired", gone.Name, time.Since(killed).Round(10*time.Millisecond))
		}
		if !hasMemberKey(c, gone.Name) {
			keyGone = time.Now()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's member key still there %s after the kill (ttl %s)", gone.Name, time.Since(killed).Round(time.Second), ttl)
		}
	}
	t.Logf("%s's member key expired %s after the kill", gone.Name, keyGone.Sub(killed).Round(10*time.Millisecond))
	var dropped time.Time
	for deadline := keyGone.Add(slotsTTL + 4*time.Second); ; time.Sleep(100 * time.Millisecond) {
		s := physicalSlots(p)
		if _, ok := s[goneSlot]; s != nil && !ok {
			dropped = time.Now()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's slot still on the primary %s after its member key expired (member_slots_ttl %s): %v",
				gone.Name, time.Since(keyGone).Round(time.Second), slotsTTL, s)
		}
	}
	after := dropped.Sub(keyGone)
	t.Logf("%s's slot dropped %s after its member key expired (member_slots_ttl %s)", gone.Name, after.Round(10*time.Millisecond), slotsTTL)
	// pg-lockd saw the key last up to a loop before the watch showed it gone.
	if after < slotsTTL-c.Options.LoopWait-500*time.Millisecond {
		t.Errorf("%s's slot dropped %s after its member key expired, before member_slots_ttl %s", gone.Name, after, slotsTTL)
	}
	waitUntil(t, 2*c.Options.LoopWait+2*time.Second, back.Name+" dropping its copy of "+gone.Name+"'s slot", func() bool {
		s := physicalSlots(back)
		_, ok := s[goneSlot]
		return s != nil && !ok
	})
	if !p.LogContains(testcluster.Supervise, "dropped a member's replication slot") {
		t.Errorf("%s's pg-supervise log does not say it dropped a slot", p.Name)
	}

	// The other replica keeps its slot and streams; the operator's slot stays.
	time.Sleep(2 * c.Options.LoopWait)
	s := physicalSlots(p)
	if !s[backSlot] {
		t.Errorf("%s's slot is gone or inactive: %v", back.Name, s)
	}
	if _, ok := s["operator_slot"]; !ok {
		t.Errorf("the operator's slot was dropped: %v", s)
	}
	finishLossless(t, c, w)
}

// TestMemberSlotsOff: with use_slots false the primary creates no slot for
// its replica, and drops none: not even a slot named like a member that
// left, at member_slots_ttl 0.
func TestMemberSlotsOff(t *testing.T) {
	c, w := start(t, testcluster.Options{Nodes: 2, DisableSlots: true, ExtraDCS: map[string]any{"member_slots_ttl": 0}})
	p := c.WaitPrimary(t, 10*time.Second)
	c.WaitReplicasStreaming(t, 20*time.Second)
	var r *testcluster.Node
	for _, n := range c.Nodes {
		if n != p {
			r = n
		}
	}
	time.Sleep(2 * c.Options.LoopWait)
	if s := physicalSlots(p); s == nil || len(s) != 0 {
		t.Fatalf("slots on the primary with use_slots false: %v, want none", s)
	}
	ctx := context.Background()
	if err := p.Exec(ctx, "SELECT pg_create_physical_replication_slot($1)", pg.SlotName(r.Name)); err != nil {
		t.Fatal(err)
	}
	w.Mark("stop " + r.Name)
	r.Stop(t, syscall.SIGTERM)
	waitUntil(t, 5*time.Second, r.Name+"'s member key gone", func() bool { return !hasMemberKey(c, r.Name) })
	time.Sleep(3 * c.Options.LoopWait)
	if _, ok := physicalSlots(p)[pg.SlotName(r.Name)]; !ok {
		t.Errorf("the slot named for %s was dropped with use_slots false", r.Name)
	}
	w.Mark("start " + r.Name + " again")
	r.Start(t)
	finishLossless(t, c, w)
}

// slotRestart is where slot name stands on n (restart_lsn), 0 if n has no
// such slot, it reserves nothing, or n did not answer.
func slotRestart(n *testcluster.Node, name string) pg.LSN {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var s string
	if err := n.QueryRow(ctx, `SELECT coalesce((SELECT restart_lsn::text FROM pg_replication_slots WHERE slot_name = $1), '0/0')`,
		[]any{name}, &s); err != nil {
		return 0
	}
	l, _ := pg.ParseLSN(s)
	return l
}

// TestPermanentSlotSurvivesFailover: a permanent physical slot (slots: in
// the dynamic configuration) is kept on the primary, and every replica
// keeps a copy advanced to where a consumer confirmed on the primary, as
// well as copies of its peers' member slots. After the primary dies, the
// promoted replica holds the permanent slot exactly where the consumer
// left it — not created afresh at a later position, which would lose the
// WAL in between for the consumer — and slots for every other member.
func TestPermanentSlotSurvivesFailover(t *testing.T) {
	c, w := start(t, testcluster.Options{ExtraDCS: map[string]any{"slots": map[string]any{"backup": map[string]any{"type": "physical"}}}})
	ttl := c.Options.TTL
	p := c.WaitPrimary(t, 10*time.Second)
	var replicas []*testcluster.Node
	for _, n := range c.Nodes {
		if n != p {
			replicas = append(replicas, n)
		}
	}
	waitUntil(t, 15*time.Second, "the permanent slot on the primary and copies of it and of the peers' slots on each replica", func() bool {
		if _, ok := physicalSlots(p)["backup"]; !ok {
			return false
		}
		for _, r := range replicas {
			s := physicalSlots(r)
			for _, n := range c.Nodes {
				if _, ok := s[pg.SlotName(n.Name)]; n != r && !ok {
					return false
				}
			}
			if _, ok := s["backup"]; !ok {
				return false
			}
		}
		return true
	})
	// A consumer confirms up to here on the primary.
	ctx := context.Background()
	var confirmedText string
	if err := p.QueryRow(ctx, "SELECT end_lsn::text FROM pg_replication_slot_advance('backup', pg_current_wal_flush_lsn())", nil, &confirmedText); err != nil {
		t.Fatal(err)
	}
	confirmed, _ := pg.ParseLSN(confirmedText)
	waitUntil(t, 20*time.Second, "each replica's copy of the permanent slot at "+confirmedText, func() bool {
		for _, r := range replicas {
			if slotRestart(r, "backup") != confirmed {
				return false
			}
		}
		return true
	})
	for _, r := range replicas {
		if got := slotRestart(r, pg.SlotName(p.Name)); got == 0 {
			t.Errorf("%s's copy of %s's slot reserves no WAL", r.Name, p.Name)
		}
	}

	killed := w.Mark("kill node " + p.Name)
	p.KillAll()
	np := c.WaitPrimary(t, ttl+15*time.Second, p)
	w.WaitAck(t, testcluster.MultiWriter, np.Name, killed, 15*time.Second)
	if got := slotRestart(np, "backup"); got != confirmed {
		t.Errorf("the new primary %s holds the permanent slot at %s, want %s where the consumer confirmed on %s", np.Name, got, confirmed, p.Name)
	}
	s := physicalSlots(np)
	for _, n := range c.Nodes {
		if _, ok := s[pg.SlotName(n.Name)]; n != np && !ok {
			t.Errorf("the new primary %s has no slot for %s: %v", np.Name, n.Name, s)
		}
	}
	w.Mark("start " + p.Name + " again")
	p.Start(t)
	finish(t, c, w)
}
