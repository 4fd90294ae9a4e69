package dcs_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pg-ha/pg-ha/lib/dcs"
	"github.com/pg-ha/pg-ha/lib/dcs/etcdtest"
)

func isResync(e dcs.Event) bool { return e.Resync }

func isPut(key string) func(dcs.Event) bool {
	return func(e dcs.Event) bool { return e.Key == key && !e.Deleted }
}

// putMember writes members/name, retrying while etcd comes back.
func putMember(t *testing.T, c *dcs.Client, name string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := c.PutMember(context.Background(), name, dcs.MemberData{State: "running", Role: "replica"}, 0)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("put member %s: %v", name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestWatchSurvivesEtcdRestart(t *testing.T) {
	t.Parallel()
	e := etcdtest.Start(t)
	c := newClient(t, e.Endpoints())
	cl, err := c.Get(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	events := watch(t, c, cl.Revision)
	putMember(t, c, "a")
	next(t, events, 5*time.Second, "event for members/a", isPut(c.Key("members/a")))
	// An idle, healthy watch does not resync.
	select {
	case ev := <-events:
		t.Fatalf("idle watch sent %+v", ev)
	case <-time.After(1600 * time.Millisecond): // > 3 progress intervals
	}

	e.Stop()
	e.Start()
	putMember(t, c, "b")
	next(t, events, 10*time.Second, "resync after the restart", isResync)
	// The consumer re-reads on Resync: the write made around the restart is
	// in that read, or arrives as an event after the Resync.
	cl, err = c.Get(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if cl.Member("b") == nil {
		next(t, events, 5*time.Second, "event for members/b", isPut(c.Key("members/b")))
	}
	// And the watch is live again. Events at or below the re-read's
	// revision are already reflected in it; the first one above must be ours.
	putMember(t, c, "c")
	ev := next(t, events, 5*time.Second, "event for members/c", func(e dcs.Event) bool { return !e.Resync && e.Revision > cl.Revision })
	if ev.Key != c.Key("members/c") {
		t.Fatalf("after resync got %+v, want the put of members/c", ev)
	}
}

// A watch started while etcd is down starts working once it is up and loses
// nothing: either it was established from the requested revision (no Resync
// needed) or it resyncs.
func TestWatchStartedWhileEtcdDown(t *testing.T) {
	t.Parallel()
	e := etcdtest.Start(t)
	c := newClient(t, e.Endpoints())
	cl, err := c.Get(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	e.Stop()
	events := watch(t, c, cl.Revision)
	time.Sleep(800 * time.Millisecond)
	e.Start()
	putMember(t, c, "a")
	waitSeen(t, c, events, "a")
	putMember(t, c, "b")
	waitSeen(t, c, events, "b")
}

// waitSeen waits until the consumer learns of members/name: its event, or a
// Resync after which a re-read shows it.
func waitSeen(t *testing.T, c *dcs.Client, events <-chan dcs.Event, name string) {
	t.Helper()
	key := c.Key("members/" + name)
	for {
		ev := next(t, events, 10*time.Second, "news of "+key, func(e dcs.Event) bool { return e.Resync || e.Key == key })
		if !ev.Resync {
			return
		}
		cl, err := c.Get(ctxT(t, 5*time.Second))
		if err != nil {
			t.Fatalf("re-read after resync: %v", err)
		}
		if cl.Member(name) != nil {
			return
		}
	}
}

func TestWatchFromCompactedRevisionResyncs(t *testing.T) {
	t.Parallel()
	e := etcdtest.Start(t)
	c := newClient(t, e.Endpoints())
	raw := rawClient(t, e)
	ctx := ctxT(t, 10*time.Second)
	var last *clientv3.PutResponse
	for i := range 5 {
		r, err := raw.Put(ctx, c.Key(fmt.Sprintf("members/old%d", i)), "{}")
		if err != nil {
			t.Fatal(err)
		}
		last = r
	}
	if _, err := raw.Compact(ctx, last.Header.Revision); err != nil {
		t.Fatal(err)
	}
	events := watch(t, c, 1)
	next(t, events, 5*time.Second, "resync for a compacted start revision", isResync)
	putMember(t, c, "new")
	next(t, events, 5*time.Second, "event for members/new", isPut(c.Key("members/new")))
}

func TestWatchSlowConsumerCoalesces(t *testing.T) {
	t.Parallel()
	e := etcdtest.Start(t)
	c := newClient(t, e.Endpoints())
	raw := rawClient(t, e)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cl, err := c.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	events := c.Watch(ctx, cl.Revision)
	// 1200 events, nobody reading: more than the channel and queue hold.
	for b := range 10 {
		var ops []clientv3.Op
		for i := range 120 {
			ops = append(ops, clientv3.OpPut(c.Key(fmt.Sprintf("members/m%d-%d", b, i)), "{}"))
		}
		if _, err := raw.Txn(ctx).Then(ops...).Commit(); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(500 * time.Millisecond)
	resynced, n := false, 0
	for !resynced {
		select {
		case ev := <-events:
			n++
			resynced = ev.Resync
		case <-time.After(2 * time.Second):
			t.Fatalf("no resync after %d events", n)
		}
	}
	putMember(t, c, "z")
	next(t, events, 5*time.Second, "event for members/z after coalescing", isPut(c.Key("members/z")))
	cancel()
	closed := time.After(3 * time.Second)
	for {
		select {
		case _, ok := <-events:
			if !ok {
				return
			}
		case <-closed:
			t.Fatal("watch channel not closed after cancel")
		}
	}
}

// A watch that hears nothing (etcd frozen: the TCP connection stays up) is
// declared broken after twice the progress interval and re-established.
func TestWatchStalledResyncs(t *testing.T) {
	t.Parallel()
	e := etcdtest.Start(t)
	c := newClient(t, e.Endpoints())
	cl, err := c.Get(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	events := watch(t, c, cl.Revision)
	putMember(t, c, "a")
	next(t, events, 5*time.Second, "event for members/a", isPut(c.Key("members/a")))
	e.Pause()
	time.Sleep(1500 * time.Millisecond) // > 2 × 500ms progress interval
	e.Resume()
	next(t, events, 10*time.Second, "resync after a stall", isResync)
	putMember(t, c, "b")
	next(t, events, 5*time.Second, "event for members/b", isPut(c.Key("members/b")))
}
