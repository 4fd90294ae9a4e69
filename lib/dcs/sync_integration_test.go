package dcs_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/dcs"
	"github.com/pg-ha/pg-ha/lib/dcs/etcdtest"
)

// TestSyncKeyLeaderGuarded: the sync key is written in Patroni's form only
// by the holder of the leader key, and only over the version it read;
// a stale token or a concurrent change writes nothing.
func TestSyncKeyLeaderGuarded(t *testing.T) {
	t.Parallel()
	e := etcdtest.Start(t)
	c := newClient(t, e.Endpoints())
	raw := rawClient(t, e)
	ctx := ctxT(t, 20*time.Second)

	k, err := c.GetSync(ctx)
	if err != nil || !k.Empty() || k.ModRevision != 0 {
		t.Fatalf("absent sync key: %+v, %v", k, err)
	}
	if err := c.PutSync(ctx, 0, dcs.SyncKey{Leader: "n1"}, -1); !errors.Is(err, dcs.ErrNotLeader) {
		t.Fatalf("PutSync without a token: %v, want ErrNotLeader", err)
	}
	l1 := grant(t, c, 10*time.Second)
	token, err := c.AcquireLeader(ctx, "n1", l1.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.PutSync(ctx, token, dcs.SyncKey{}, 0); err == nil {
		t.Fatal("PutSync with no leader named succeeded")
	}

	// Enable: create the key, which must not exist yet.
	if err := c.PutSync(ctx, token, dcs.SyncKey{Leader: "n1"}, 0); err != nil {
		t.Fatalf("enable: %v", err)
	}
	if err := c.PutSync(ctx, token, dcs.SyncKey{Leader: "n1"}, 0); !errors.Is(err, dcs.ErrConflict) {
		t.Fatalf("create over an existing key: %v, want ErrConflict", err)
	}
	k, err = c.GetSync(ctx)
	if err != nil || k.Leader != "n1" || len(k.Standbys) != 0 || k.ModRevision == 0 {
		t.Fatalf("after enable: %+v, %v", k, err)
	}

	// Publish two voters with a quorum, over the version read.
	if err := c.PutSync(ctx, token, dcs.SyncKey{Leader: "n1", Standbys: []string{"n3", "n2"}, Quorum: 1}, k.ModRevision); err != nil {
		t.Fatal(err)
	}
	resp, err := raw.Get(ctx, c.Key("sync"))
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != `{"leader":"n1","quorum":1,"sync_standby":"n2,n3"}` {
		t.Fatalf("sync as stored: %v, %v", resp, err)
	}
	// A writer holding an old version conflicts and writes nothing.
	if err := c.PutSync(ctx, token, dcs.SyncKey{Leader: "n1"}, k.ModRevision); !errors.Is(err, dcs.ErrConflict) {
		t.Fatalf("PutSync over a stale version: %v, want ErrConflict", err)
	}
	k, err = c.GetSync(ctx)
	if err != nil || k.Quorum != 1 || len(k.Standbys) != 2 || k.Standbys[0] != "n2" || k.Standbys[1] != "n3" {
		t.Fatalf("after the conflict: %+v, %v", k, err)
	}
	// The cluster view reads the key too.
	cl, err := c.Get(ctx)
	if err != nil || cl.Sync == nil || strings.Join(cl.Sync.Standbys, ",") != "n2,n3" || cl.Sync.Quorum != 1 || cl.SyncRev != k.ModRevision {
		t.Fatalf("Get: %+v, %v", cl, err)
	}

	// The leader key changes hands: the old token writes nothing.
	if err := c.Revoke(ctx, l1.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.PutSync(ctx, token, dcs.SyncKey{Leader: "n1"}, -1); !errors.Is(err, dcs.ErrNotLeader) {
		t.Fatalf("PutSync after losing the leader key: %v, want ErrNotLeader", err)
	}
	if err := c.DeleteSync(ctx, token, -1); !errors.Is(err, dcs.ErrNotLeader) {
		t.Fatalf("DeleteSync after losing the leader key: %v, want ErrNotLeader", err)
	}
	l2 := grant(t, c, 10*time.Second)
	token2, err := c.AcquireLeader(ctx, "n2", l2.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.PutSync(ctx, token, dcs.SyncKey{Leader: "n1"}, -1); !errors.Is(err, dcs.ErrNotLeader) {
		t.Fatalf("PutSync with the old token under a new leader: %v, want ErrNotLeader", err)
	}
	if got, _ := c.GetSync(ctx); got.Leader != "n1" || got.ModRevision != k.ModRevision {
		t.Fatalf("a stale token changed the key: %+v", got)
	}
	// The new leader takes the key over, keeping the former leader as a voter.
	if err := c.PutSync(ctx, token2, dcs.SyncKey{Leader: "n2", Standbys: []string{"n1", "n3"}, Quorum: 1}, k.ModRevision); err != nil {
		t.Fatal(err)
	}
	k, err = c.GetSync(ctx)
	if err != nil || k.Leader != "n2" {
		t.Fatalf("after takeover: %+v, %v", k, err)
	}
	// Disable synchronous replication.
	if err := c.DeleteSync(ctx, token2, k.ModRevision-1); !errors.Is(err, dcs.ErrConflict) {
		t.Fatalf("DeleteSync over a stale version: %v, want ErrConflict", err)
	}
	if err := c.DeleteSync(ctx, token2, k.ModRevision); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteSync(ctx, token2, -1); err != nil {
		t.Fatalf("deleting an absent key: %v", err)
	}
	if k, err = c.GetSync(ctx); err != nil || !k.Empty() || k.ModRevision != 0 {
		t.Fatalf("after delete: %+v, %v", k, err)
	}
}

// TestSyncKeyWrittenByPatroni: values in the forms Patroni's versions write
// are read; garbage is reported, not taken as "synchronous replication off".
func TestSyncKeyWrittenByPatroni(t *testing.T) {
	t.Parallel()
	e := etcdtest.Start(t)
	c := newClient(t, e.Endpoints())
	raw := rawClient(t, e)
	ctx := ctxT(t, 20*time.Second)
	for value, want := range map[string]dcs.SyncKey{
		`{"leader":"pg1","quorum":1,"sync_standby":"pg2,pg3"}`: {Leader: "pg1", Standbys: []string{"pg2", "pg3"}, Quorum: 1},
		`{"leader":"pg1","sync_standby":"pg2"}`:                {Leader: "pg1", Standbys: []string{"pg2"}},
		`{"leader":"pg1","sync_standby":null,"quorum":"0"}`:    {Leader: "pg1"},
	} {
		put, err := raw.Put(ctx, c.Key("sync"), value)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.GetSync(ctx)
		if err != nil || got.Leader != want.Leader || got.Quorum != want.Quorum || len(got.Standbys) != len(want.Standbys) ||
			got.ModRevision != put.Header.Revision {
			t.Errorf("%s: %+v, %v; want %+v at revision %d", value, got, err, want, put.Header.Revision)
		}
	}
	put, err := raw.Put(ctx, c.Key("sync"), `{"leader":"pg1","quorum":"many"}`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.GetSync(ctx)
	if err == nil || !got.Empty() || got.ModRevision != put.Header.Revision {
		t.Errorf("garbage: %+v, %v; want an error, an empty key and its revision", got, err)
	}
}
