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

// TestLeadInStandbyCluster: the key holder of a standby cluster follows the
// remote (never a lead line, which would promote it) while its server is a
// standby; a pg-supervise that does not take remote lines gets a standby
// line; a leader already running a primary keeps leading; with
// standby_cluster removed the standby leader gets a lead line (promotion).
func TestLeadInStandbyCluster(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	out := rolepipe.NewWriter(ctx, io.Discard, zerolog.Nop())
	defer func() { cancel(); <-out.Done() }()
	fake := clock.NewFake(clock.Now())
	e := &Elector{cfg: &config.Config{Name: "node1"}, clock: fake, log: zerolog.Nop(), out: out, notify: &sdnotify.Notifier{},
		token: 7}
	e.ka.ttl = 8 * time.Second
	e.ka.lease = dcs.Lease{ID: 1, TTL: 8 * time.Second, ValidUntil: fake.Now().Add(8 * time.Second)}
	sc := &config.StandbyCluster{Host: "10.1.0.1", Port: 5433, PrimarySlotName: "dr"}

	e.dyn.StandbyCluster = sc
	e.supAccepts = rolepipe.NewerKeys
	if !e.lead([]string{"node2"}) {
		t.Fatal("standby leader: lead reported nothing sent")
	}
	want := rolepipe.Line{Verb: rolepipe.Follow, Leader: rolepipe.RemoteLeader, Remote: true,
		ConnURL: "postgres://10.1.0.1:5433/postgres", Slot: "dr", Slots: []string{"node2"}}
	if e.line.String() != want.String() {
		t.Errorf("standby leader: line %q, want %q", e.line, want)
	}

	e.supAccepts = []string{"drop", rolepipe.FollowSlots}
	e.lead(nil)
	if e.line.Verb != rolepipe.Standby {
		t.Errorf("older pg-supervise: line %q, want standby", e.line)
	}

	e.supAccepts = rolepipe.NewerKeys
	e.localPrimary = true
	e.lead(nil)
	if e.line.Verb != rolepipe.Lead || !e.standbyWarned {
		t.Errorf("leader running a primary: line %q (warned %v), want lead", e.line, e.standbyWarned)
	}

	e.localPrimary = false
	e.dyn.StandbyCluster = nil
	if !e.lead([]string{"node2"}) || e.line.Verb != rolepipe.Lead || e.line.Token != 7 || !slices.Equal(e.line.Slots, []string{"node2"}) {
		t.Errorf("standby_cluster removed: line %q, want lead with token 7", e.line)
	}
}
