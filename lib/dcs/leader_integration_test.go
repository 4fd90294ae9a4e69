package dcs_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/clock"
	"github.com/pg-ha/pg-ha/lib/dcs"
	"github.com/pg-ha/pg-ha/lib/dcs/etcdtest"
	"github.com/pg-ha/pg-ha/lib/logx/logxtest"
)

func grant(t testing.TB, c *dcs.Client, ttl time.Duration) dcs.Lease {
	t.Helper()
	l, err := c.Grant(ctxT(t, 5*time.Second), ttl)
	if err != nil {
		t.Fatalf("Grant: %v", err)
	}
	return l
}

func TestAcquireLeaderRace(t *testing.T) {
	t.Parallel()
	e := etcdtest.Start(t)
	c1, c2 := newClient(t, e.Endpoints()), newClient(t, e.Endpoints())
	l1, l2 := grant(t, c1, 10*time.Second), grant(t, c2, 10*time.Second)
	ctx := ctxT(t, 30*time.Second)
	wins := map[string]int{}
	for round := range 50 {
		var wg sync.WaitGroup
		tokens, errs := make([]int64, 2), make([]error, 2)
		start := make(chan struct{})
		for i, cl := range []struct {
			c     *dcs.Client
			name  string
			lease int64
		}{{c1, "n1", l1.ID}, {c2, "n2", l2.ID}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				tokens[i], errs[i] = cl.c.AcquireLeader(ctx, cl.name, cl.lease)
			}()
		}
		close(start)
		wg.Wait()
		winner, loser := -1, -1
		for i := range errs {
			switch {
			case errs[i] == nil:
				winner = i
			case errors.Is(errs[i], dcs.ErrLeaderExists):
				loser = i
			default:
				t.Fatalf("round %d: contender %d: %v", round, i, errs[i])
			}
		}
		if winner < 0 || loser < 0 {
			t.Fatalf("round %d: want one winner and one loser, got errors %v / %v", round, errs[0], errs[1])
		}
		name := []string{"n1", "n2"}[winner]
		wins[name]++
		if !strings.Contains(errs[loser].Error(), `"`+name+`"`) {
			t.Errorf("round %d: loser's error does not name the holder %s: %v", round, name, errs[loser])
		}
		cl, err := c1.Get(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if cl.Leader == nil || cl.Leader.Name != name || cl.Leader.CreateRevision != tokens[winner] || cl.Leader.ModRevision != tokens[winner] {
			t.Fatalf("round %d: leader %+v, winner %s token %d", round, cl.Leader, name, tokens[winner])
		}
		// The loser cannot release the winner's key, the winner can.
		if err := []*dcs.Client{c1, c2}[loser].ReleaseLeader(ctx, tokens[winner]-1); !errors.Is(err, dcs.ErrNotLeader) {
			t.Fatalf("round %d: release with a wrong token: %v", round, err)
		}
		if err := []*dcs.Client{c1, c2}[winner].ReleaseLeader(ctx, tokens[winner]); err != nil {
			t.Fatalf("round %d: release: %v", round, err)
		}
	}
	t.Logf("wins: %v", wins)
}

func TestLeaderExpiresWithoutKeepAlive(t *testing.T) {
	t.Parallel()
	e := etcdtest.Start(t)
	c1, c2 := newClient(t, e.Endpoints()), newClient(t, e.Endpoints())
	ctx := ctxT(t, 20*time.Second)
	l1 := grant(t, c1, 2*time.Second)
	if l1.TTL != 2*time.Second {
		t.Fatalf("granted TTL %v, want 2s", l1.TTL)
	}
	old, err := c1.AcquireLeader(ctx, "n1", l1.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := c1.LeaderTxn(ctx, old, dcs.OpPutStatus(c1, dcs.Status{Optime: 1})); err != nil {
		t.Fatalf("LeaderTxn while holding: %v", err)
	}
	l2 := grant(t, c2, 10*time.Second)
	var token int64
	for {
		token, err = c2.AcquireLeader(ctx, "n2", l2.ID)
		if err == nil {
			break
		}
		if !errors.Is(err, dcs.ErrLeaderExists) {
			t.Fatalf("AcquireLeader: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The safety invariant, seen from the contender: the key became free no
	// earlier than the old holder's validity ended.
	if now := clock.Now(); now < l1.ValidUntil {
		t.Fatalf("n2 acquired %v before n1's validity ended", l1.ValidUntil.Sub(now))
	}
	if token <= old {
		t.Errorf("new token %d not above old %d", token, old)
	}
	if err := c1.LeaderTxn(ctx, old, dcs.OpPutStatus(c1, dcs.Status{Optime: 2})); !errors.Is(err, dcs.ErrNotLeader) {
		t.Fatalf("LeaderTxn with the old token: %v, want ErrNotLeader", err)
	}
	if err := c1.ReleaseLeader(ctx, old); !errors.Is(err, dcs.ErrNotLeader) {
		t.Fatalf("ReleaseLeader with the old token: %v, want ErrNotLeader", err)
	}
	cl, err := c1.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cl.Leader == nil || cl.Leader.Name != "n2" || cl.Leader.Lease != l2.ID || cl.Status.Optime != 1 {
		t.Fatalf("after stale writes: leader %+v status %+v", cl.Leader, cl.Status)
	}
	if err := c2.LeaderTxn(ctx, token); err != nil {
		t.Fatalf("new holder's LeaderTxn: %v", err)
	}
	if _, err := c1.KeepAlive(ctx, l1.ID); !errors.Is(err, dcs.ErrLeaseNotFound) {
		t.Errorf("KeepAlive of the expired lease: %v, want ErrLeaseNotFound", err)
	}
	if _, err := c1.AcquireLeader(ctx, "n1", l1.ID); !errors.Is(err, dcs.ErrLeaderExists) {
		t.Errorf("AcquireLeader while n2 holds: %v", err)
	}
}

// The validity clock ends before etcd deletes the key: the deletion is
// observed no earlier than ValidUntil of the last successful keepalive. Five
// holders run at once, each in its own scope.
func TestValidityEndsBeforeServerExpiry(t *testing.T) {
	t.Parallel()
	e := etcdtest.Start(t)
	var wg sync.WaitGroup
	for i := range 5 {
		c := newClient(t, e.Endpoints(), func(o *dcs.Options) { o.Prefix = fmt.Sprintf("%srun%d/", o.Prefix, i) })
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := validityRun(t, c); err != nil {
				t.Errorf("run %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
}

func validityRun(t *testing.T, c *dcs.Client) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l, err := c.Grant(ctx, 2*time.Second)
	if err != nil {
		return err
	}
	if _, err := c.AcquireLeader(ctx, "n1", l.ID); err != nil {
		return err
	}
	cl, err := c.Get(ctx)
	if err != nil {
		return err
	}
	events := c.Watch(ctx, cl.Revision)
	for range 3 {
		time.Sleep(300 * time.Millisecond)
		nl, err := c.KeepAlive(ctx, l.ID)
		if err != nil {
			return err
		}
		if nl.TTL != 2*time.Second || nl.ValidUntil <= l.ValidUntil {
			return fmt.Errorf("keepalive: %+v after %+v", nl, l)
		}
		l = nl
	}
	for ev := range events {
		now := clock.Now()
		if ev.Resync {
			// A loaded machine can stall the watch: re-read, as a
			// consumer must. Seeing the key gone by reading is, like the
			// event, an observation after the deletion.
			cl, err := c.Get(ctx)
			now = clock.Now()
			if err != nil {
				return err
			}
			if cl.Leader != nil {
				continue
			}
		} else if ev.Key != c.Key("leader") || !ev.Deleted {
			continue
		}
		if now < l.ValidUntil {
			return fmt.Errorf("leader key deleted %v before the validity ended", l.ValidUntil.Sub(now))
		}
		t.Logf("deletion seen %v after ValidUntil", now.Sub(l.ValidUntil))
		cancel()
		for range events { // drain until the watch has stopped
		}
		return nil
	}
	return fmt.Errorf("watch ended without the deletion: %v", ctx.Err())
}

func TestLeaseErrors(t *testing.T) {
	t.Parallel()
	e := etcdtest.Start(t)
	c := newClient(t, e.Endpoints())
	ctx := ctxT(t, 10*time.Second)
	l := grant(t, c, 300*time.Millisecond) // rounded up, raised to etcd's minimum
	if l.TTL < time.Second {
		t.Fatalf("TTL %v", l.TTL)
	}
	if ttl, err := c.LeaseTimeToLive(ctx, l.ID); err != nil || ttl > l.TTL {
		t.Fatalf("LeaseTimeToLive: %v, %v", ttl, err)
	}
	if err := c.Revoke(ctx, l.ID); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"KeepAlive":       func() error { _, err := c.KeepAlive(ctx, l.ID); return err }(),
		"LeaseTimeToLive": func() error { _, err := c.LeaseTimeToLive(ctx, l.ID); return err }(),
		"Revoke":          c.Revoke(ctx, l.ID),
		"AcquireLeader":   func() error { _, err := c.AcquireLeader(ctx, "n1", l.ID); return err }(),
		"PutMember":       c.PutMember(ctx, "n1", dcs.MemberData{State: "running"}, l.ID),
	} {
		if !errors.Is(err, dcs.ErrLeaseNotFound) {
			t.Errorf("%s on a revoked lease: %v, want ErrLeaseNotFound", name, err)
		}
	}
	if _, err := c.Grant(context.Background(), 0); err == nil {
		t.Errorf("Grant(0) succeeded")
	}
}

// etcd 3.4 gives every lease a fresh TTL when it restarts (or changes
// leader): the server's expiry moves later, never earlier, so ValidUntil
// stays on the safe side.
func TestLeaseOutlivesValidityAcrossRestart(t *testing.T) {
	t.Parallel()
	e := etcdtest.Start(t)
	c := newClient(t, e.Endpoints())
	ctx := ctxT(t, 10*time.Second)
	l := grant(t, c, 5*time.Second)
	time.Sleep(1500 * time.Millisecond)
	e.Stop()
	e.Start()
	var rem time.Duration
	var err error
	for range 50 {
		if rem, err = c.LeaseTimeToLive(ctx, l.ID); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	valid := l.ValidUntil.Sub(clock.Now())
	t.Logf("after restart: server says %v left, validity %v left", rem, valid)
	if rem < valid {
		t.Fatalf("server lease (%v left) would expire before the validity (%v left)", rem, valid)
	}
}

func TestWatchEndsWhenClientCloses(t *testing.T) {
	t.Parallel()
	e := etcdtest.Start(t)
	c, err := dcs.New(context.Background(), dcs.Options{Endpoints: e.Endpoints(), Prefix: prefix(t), Log: logxtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := c.Watch(ctx, 0)
	time.Sleep(200 * time.Millisecond)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(3 * time.Second)
	for {
		select {
		case _, ok := <-events:
			if !ok {
				return
			}
		case <-timeout:
			t.Fatal("watch channel still open after Close")
		}
	}
}
