package dcs_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/dcs"
	"github.com/pg-ha/pg-ha/lib/dcs/etcdtest"
)

// follow starts a View that ends with the test.
func follow(t *testing.T, c *dcs.Client) *dcs.View {
	ctx, cancel := context.WithCancel(context.Background())
	v := c.Follow(ctx)
	t.Cleanup(func() {
		cancel()
		for range v.Events() {
		}
	})
	return v
}

// eventually polls cond every 10ms until it holds, failing after d.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The view follows puts and deletes, reflects this client's own writes as
// soon as Current returns, and is confirmed by progress answers while
// nothing changes, without reading etcd again.
func TestViewFollowsAndConfirms(t *testing.T) {
	t.Parallel()
	e := etcdtest.Start(t)
	c := newClient(t, e.Endpoints())
	putMember(t, c, "a")
	v := follow(t, c)
	eventually(t, 5*time.Second, "first read", func() bool { cl, _ := v.Cluster(); return cl != nil && cl.Member("a") != nil })

	// Own writes: Current waits until the view has them.
	for i := range 20 {
		lease, err := c.Grant(ctxT(t, 5*time.Second), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.AcquireLeader(ctxT(t, 5*time.Second), "a", lease.ID); err != nil {
			t.Fatal(err)
		}
		cl := v.Current(ctxT(t, 2*time.Second))
		if cl == nil || cl.Leader == nil || cl.Leader.Lease != lease.ID {
			t.Fatalf("round %d: Current after acquiring: %+v", i, cl)
		}
		if err := c.Revoke(ctxT(t, 5*time.Second), lease.ID); err != nil {
			t.Fatal(err)
		}
		eventually(t, 2*time.Second, "leader key gone from the view", func() bool { cl, _ := v.Cluster(); return cl.Leader == nil })
	}
	if err := c.DeleteMember(ctxT(t, 5*time.Second), "a"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "member a gone from the view", func() bool { cl, _ := v.Cluster(); return cl.Member("a") == nil })

	// Idle: progress answers keep confirming (interval 500ms in tests).
	_, before := v.Cluster()
	time.Sleep(1200 * time.Millisecond)
	_, after := v.Cluster()
	if after.Sub(before) < 500*time.Millisecond {
		t.Fatalf("idle view confirmed at %v then %v: not advancing", before, after)
	}
	if age := c.Clock().Now().Sub(after); age > time.Second {
		t.Fatalf("idle view confirmed %v ago", age)
	}
	if v.Current(ctxT(t, time.Second)) == nil {
		t.Fatal("Current of an idle, confirmed view is nil")
	}
}

// With etcd stopped, the confirmation stops advancing and Current refuses
// the view within twice the progress interval; once etcd is back the view
// is followed again and has what was written meanwhile by others.
func TestViewStaleWhileEtcdDown(t *testing.T) {
	t.Parallel()
	e := etcdtest.Start(t)
	c := newClient(t, e.Endpoints())
	other := newClient(t, e.Endpoints())
	v := follow(t, c)
	eventually(t, 5*time.Second, "first read", func() bool { return v.Current(ctxT(t, time.Second)) != nil })

	e.Pause() // a hung etcd: no RST, no answers
	_, confirmed := v.Cluster()
	eventually(t, 3*time.Second, "Current refusing the view", func() bool { return v.Current(ctxT(t, 100*time.Millisecond)) == nil })
	if stopped := c.Clock().Now().Sub(confirmed); stopped > 2500*time.Millisecond {
		t.Fatalf("refused only %v after the last confirmation", stopped)
	}
	time.Sleep(2 * time.Second)
	if _, now := v.Cluster(); now > confirmed.Add(dcsClockSlack) {
		t.Fatalf("confirmation advanced while etcd was paused: %v -> %v", confirmed, now)
	}
	e.Resume()
	putMember(t, other, "b")
	eventually(t, 15*time.Second, "view current again with member b", func() bool {
		cl := v.Current(ctxT(t, 100*time.Millisecond))
		return cl != nil && cl.Member("b") != nil
	})
}

// dcsClockSlack allows for a progress answer in flight when etcd paused.
const dcsClockSlack = 600 * time.Millisecond

// Renewals share one stream; when etcd restarts, the broken stream is
// dropped and the next renewal opens a new one.
func TestKeepAliveStreamSurvivesEtcdRestart(t *testing.T) {
	t.Parallel()
	e := etcdtest.Start(t)
	c := newClient(t, e.Endpoints())
	l, err := c.Grant(ctxT(t, 5*time.Second), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if _, err := c.KeepAlive(ctxT(t, 5*time.Second), l.ID); err != nil {
			t.Fatal(err)
		}
	}
	e.Stop()
	e.Start()
	eventually(t, 10*time.Second, "a renewal after the restart", func() bool {
		nl, err := c.KeepAlive(ctxT(t, 2*time.Second), l.ID)
		return err == nil && nl.TTL > 0
	})
	if err := c.Revoke(ctxT(t, 5*time.Second), l.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.KeepAlive(ctxT(t, 5*time.Second), l.ID); err == nil || !errorsIsLeaseNotFound(err) {
		t.Fatalf("renewal of a revoked lease: %v, want ErrLeaseNotFound", err)
	}
}

func errorsIsLeaseNotFound(err error) bool { return errors.Is(err, dcs.ErrLeaseNotFound) }
