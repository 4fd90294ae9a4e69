package dcs_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/dcs"
	"github.com/pg-ha/pg-ha/lib/dcs/etcdtest"
)

func TestInitializeRace(t *testing.T) {
	t.Parallel()
	e := etcdtest.Start(t)
	c1, c2 := newClient(t, e.Endpoints()), newClient(t, e.Endpoints())
	ctx := ctxT(t, 10*time.Second)
	for round := range 10 {
		var wg sync.WaitGroup
		won, errs := make([]bool, 2), make([]error, 2)
		for i, c := range []*dcs.Client{c1, c2} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				won[i], errs[i] = c.Initialize(ctx, "")
			}()
		}
		wg.Wait()
		if errs[0] != nil || errs[1] != nil || won[0] == won[1] {
			t.Fatalf("round %d: won %v, errors %v", round, won, errs)
		}
		cl, err := c1.Get(ctx)
		if err != nil || !cl.InitializeSet || cl.Initialize != "" {
			t.Fatalf("round %d: %+v, %v", round, cl, err)
		}
		if err := c1.SetInitialize(ctx, "7229347386571636851"); err != nil {
			t.Fatal(err)
		}
		if err := c2.CancelInitialize(ctx, "123"); !errors.Is(err, dcs.ErrConflict) {
			t.Fatalf("cancel with another sysid: %v, want ErrConflict", err)
		}
		if cl, err = c1.Get(ctx); err != nil || cl.Initialize != "7229347386571636851" {
			t.Fatalf("round %d: %+v, %v", round, cl, err)
		}
		if err := c2.CancelInitialize(ctx, "7229347386571636851"); err != nil {
			t.Fatal(err)
		}
		if err := c2.CancelInitialize(ctx, "7229347386571636851"); err != nil {
			t.Fatalf("cancel of an absent key: %v", err)
		}
		if cl, err = c1.Get(ctx); err != nil || cl.InitializeSet {
			t.Fatalf("round %d: initialize still set: %+v, %v", round, cl, err)
		}
	}
}

func TestClusterRoundTrip(t *testing.T) {
	t.Parallel()
	e := etcdtest.Start(t)
	c := newClient(t, e.Endpoints())
	raw := rawClient(t, e)
	ctx := ctxT(t, 10*time.Second)
	l := grant(t, c, 10*time.Second)

	// A member key exactly as Patroni 3.0.2 writes it.
	patroni := `{"conn_url":"postgres://10.0.0.1:5432/postgres","api_url":"http://10.0.0.1:8008/patroni","state":"running","role":"replica","version":"3.0.2","tags":{"nofailover":true},"xlog_location":50331808,"timeline":2,"scheduled_restart":{"schedule":"2023-05-05T10:00:00+00:00","postmaster_start_time":"x"}}`
	if _, err := raw.Put(ctx, c.Key("members/patroni1"), patroni); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Put(ctx, c.Key("members/broken"), `{"conn_url":`); err != nil {
		t.Fatal(err)
	}
	for key, garbage := range map[string]string{"config": "{", "history": "[[", "failover": "[]", "status": "x", "sync": "1", "failsafe": "[]"} {
		if _, err := raw.Put(ctx, c.Key(key), garbage); err != nil {
			t.Fatal(err)
		}
	}
	cl, err := c.Get(ctx)
	if err != nil {
		t.Fatalf("Get with garbage values: %v", err)
	}
	if len(cl.Members) != 2 || cl.Member("broken") == nil || cl.Member("broken").Data.ConnURL != "" {
		t.Fatalf("members: %+v", cl.Members)
	}
	if cl.Config != nil || cl.ConfigRev == 0 || cl.History != nil || cl.Failover != nil || cl.Sync != nil || cl.Failsafe != nil {
		t.Fatalf("garbage parsed: %+v", cl)
	}
	p1 := cl.Member("patroni1")
	if p1 == nil || p1.Data.Timeline != 2 || p1.Data.Tags["nofailover"] != true || p1.Data.Version != "3.0.2" {
		t.Fatalf("patroni member: %+v", p1)
	}

	// Writing it back through PutMember preserves Patroni's JSON.
	if err := c.PutMember(ctx, "patroni1", p1.Data, l.ID); err != nil {
		t.Fatal(err)
	}
	resp, err := raw.Get(ctx, c.Key("members/patroni1"))
	if err != nil {
		t.Fatal(err)
	}
	var before, after map[string]any
	json.Unmarshal([]byte(patroni), &before)
	if err := json.Unmarshal(resp.Kvs[0].Value, &after); err != nil || !reflect.DeepEqual(before, after) {
		t.Fatalf("round trip changed the member:\n was %s\n now %s", patroni, resp.Kvs[0].Value)
	}
	if resp.Kvs[0].Lease != l.ID {
		t.Errorf("member lease %x, want %x", resp.Kvs[0].Lease, l.ID)
	}

	// Config and failover compare-and-set.
	if err := c.PutConfig(ctx, []byte(`{"ttl": 20}`), cl.ConfigRev+1); !errors.Is(err, dcs.ErrConflict) {
		t.Fatalf("PutConfig at a wrong revision: %v", err)
	}
	if err := c.PutConfig(ctx, []byte(`[1]`), -1); err == nil {
		t.Fatalf("PutConfig accepted a non-object")
	}
	if err := c.PutConfig(ctx, []byte(`{"ttl": 20, "loop_wait": 5}`), cl.ConfigRev); err != nil {
		t.Fatal(err)
	}
	if err := c.PutConfigIfAbsent(ctx, []byte(`{"ttl": 99}`)); err != nil {
		t.Fatal(err)
	}
	if err := c.SetFailover(ctx, dcs.Failover{Member: "n2"}, 0); !errors.Is(err, dcs.ErrConflict) {
		t.Fatalf("SetFailover create over an existing key: %v", err)
	}
	if err := c.SetFailover(ctx, dcs.Failover{Leader: "n1", Member: "n2"}, cl.FailoverRev); err != nil {
		t.Fatal(err)
	}
	lt := grant(t, c, 10*time.Second)
	token, err := c.AcquireLeader(ctx, "n1", lt.ID)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := c.LeaderTxn(ctx, token,
		dcs.OpPutStatus(c, dcs.Status{Optime: 67108864, Slots: map[string]int64{"s1": 67108000}}),
		dcs.OpPutHistory(c, []dcs.HistoryEntry{{Timeline: 1, LSN: 50331808, Reason: "no recovery target specified", Timestamp: "2023-05-05T10:53:25+00:00", NewLeader: "n1"}}),
		dcs.OpPutSync(c, dcs.SyncKey{Leader: "n1"}),
		dcs.OpPutFailsafe(c, map[string]string{"n1": "http://n1:8008/patroni"}),
	); err != nil {
		t.Fatal(err)
	}
	if err := c.SetFailover(ctx, dcs.Failover{Member: "n2", ScheduledAt: &at}, -1); err != nil {
		t.Fatal(err)
	}
	cl, err = c.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(cl.Config) != `{"ttl":20,"loop_wait":5}` || cl.Status.Optime != 67108864 || cl.Status.Slots["s1"] != 67108000 ||
		len(cl.History) != 1 || cl.History[0].NewLeader != "n1" || cl.Sync == nil || cl.Sync.Leader != "n1" ||
		cl.Failsafe["n1"] == "" || cl.Failover == nil || cl.Failover.Member != "n2" || !cl.Failover.ScheduledAt.Equal(at) {
		t.Fatalf("after writes: %+v", cl)
	}
	resp, err = raw.Get(ctx, c.Key("sync"))
	if err != nil || string(resp.Kvs[0].Value) != `{"leader":"n1","quorum":0,"sync_standby":null}` {
		t.Errorf("sync as stored: %s, %v", resp.Kvs[0].Value, err)
	}
	if err := c.DeleteFailover(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteMember(ctx, "broken"); err != nil {
		t.Fatal(err)
	}
	if cl, err = c.Get(ctx); err != nil || cl.Failover != nil || cl.FailoverRev != 0 || cl.Member("broken") != nil {
		t.Fatalf("after deletes: %+v, %v", cl, err)
	}
}
