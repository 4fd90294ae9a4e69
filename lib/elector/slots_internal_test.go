package elector

import (
	"context"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pg-ha/pg-ha/lib/clock"
	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/dcs"
	"github.com/pg-ha/pg-ha/lib/rolepipe"
	"github.com/pg-ha/pg-ha/lib/sdnotify"
)

// TestMemberSlotsClock: the leader keeps a departed member's slot for
// member_slots_ttl after it last saw the member's key, then asks for it to
// be dropped; a member back in time keeps its slot; use_slots false keeps
// and drops nothing; a slot ignore_slots matches is never dropped.
func TestMemberSlotsClock(t *testing.T) {
	fake := clock.NewFake(clock.Now())
	e := &Elector{cfg: &config.Config{Name: "node1"}, clock: fake, log: zerolog.Nop(), lastSeen: map[string]clock.Time{},
		dyn: config.Dynamic{UseSlots: true, MemberSlotsTTL: 5 * time.Second}}
	cluster := func(names ...string) *dcs.Cluster {
		cl := &dcs.Cluster{}
		for _, n := range names {
			cl.Members = append(cl.Members, dcs.Member{Name: n})
		}
		return cl
	}
	step := func(cl *dcs.Cluster, wantKeep, wantDrop []string) {
		t.Helper()
		e.seeMembers(cl)
		if keep := e.slots(cl); !slices.Equal(keep, wantKeep) || !slices.Equal(e.slotDrop, wantDrop) {
			t.Errorf("at +%s: keep %q drop %q; want keep %q drop %q", fake.Now().Sub(0), keep, e.slotDrop, wantKeep, wantDrop)
		}
		fake.Advance(time.Second)
	}
	all := cluster("node1", "node-2", "node3")
	step(all, []string{"node3", "node_2"}, nil)
	gone3 := cluster("node1", "node-2")
	for range 4 { // last seen 1 to 4 s ago: kept
		step(gone3, []string{"node3", "node_2"}, nil)
	}
	step(gone3, []string{"node_2"}, []string{"node3"}) // last seen 5 s ago
	step(all, []string{"node3", "node_2"}, nil)        // back: kept again, no more dropped

	e.dyn.UseSlots = false
	step(gone3, nil, nil)
	fake.Advance(time.Minute)
	step(gone3, nil, nil)
	e.dyn.UseSlots = true
	step(gone3, []string{"node_2"}, []string{"node3"})

	e.dyn.MemberSlotsTTL = 0
	step(all, []string{"node3", "node_2"}, nil)
	step(gone3, []string{"node_2"}, []string{"node3"}) // at once

	e.dyn.IgnoreSlots = []map[string]any{{"name": "node3"}}
	step(gone3, []string{"node_2"}, nil) // ignore_slots: never dropped
}

// TestLeadSendsDropOnlyToAReaderThatTakesIt: a lead line carries drop= only
// when pg-supervise listed the key in its state file, since an older one
// would refuse the whole line and let the primary's validity run out.
func TestLeadSendsDropOnlyToAReaderThatTakesIt(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	out := rolepipe.NewWriter(ctx, io.Discard, zerolog.Nop())
	defer func() { cancel(); <-out.Done() }()
	fake := clock.NewFake(clock.Now())
	e := &Elector{cfg: &config.Config{Name: "node1"}, clock: fake, log: zerolog.Nop(), out: out, notify: &sdnotify.Notifier{},
		token: 7, slotDrop: []string{"node3"}}
	e.ka.ttl = 8 * time.Second
	e.ka.lease = dcs.Lease{ID: 1, TTL: 8 * time.Second, ValidUntil: fake.Now().Add(8 * time.Second)}
	for _, c := range []struct {
		accepts []string
		want    []string
	}{{nil, nil}, {[]string{"other"}, nil}, {rolepipe.NewerKeys, []string{"node3"}}} {
		e.supAccepts = c.accepts
		if !e.lead([]string{"node2"}) {
			t.Fatal("no lead line sent")
		}
		if !slices.Equal(e.line.Drop, c.want) || !slices.Equal(e.line.Slots, []string{"node2"}) {
			t.Errorf("pg-supervise accepting %q: line %q, want drop=%q", c.accepts, e.line, c.want)
		}
	}
}
