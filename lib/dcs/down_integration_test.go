package dcs_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/dcs"
	"github.com/pg-ha/pg-ha/lib/dcs/etcdtest"
)

// everyRequest runs one of each kind of request concurrently against c and
// returns each one's error and duration.
func everyRequest(ctx context.Context, c *dcs.Client, lease, token int64) map[string]struct {
	err error
	d   time.Duration
} {
	ops := map[string]func() error{
		"Get":             func() error { _, err := c.Get(ctx); return err },
		"Grant":           func() error { _, err := c.Grant(ctx, 5*time.Second); return err },
		"KeepAlive":       func() error { _, err := c.KeepAlive(ctx, lease); return err },
		"AcquireLeader":   func() error { _, err := c.AcquireLeader(ctx, "n2", lease); return err },
		"LeaderTxn":       func() error { return c.LeaderTxn(ctx, token, dcs.OpPutStatus(c, dcs.Status{Optime: 5})) },
		"ReleaseLeader":   func() error { return c.ReleaseLeader(ctx, token) },
		"PutMember":       func() error { return c.PutMember(ctx, "n1", dcs.MemberData{State: "running"}, lease) },
		"Initialize":      func() error { _, err := c.Initialize(ctx, ""); return err },
		"SetFailover":     func() error { return c.SetFailover(ctx, dcs.Failover{Member: "n1"}, -1) },
		"LeaseTimeToLive": func() error { _, err := c.LeaseTimeToLive(ctx, lease); return err },
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	res := map[string]struct {
		err error
		d   time.Duration
	}{}
	for name, op := range ops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			err := op()
			d := time.Since(start)
			mu.Lock()
			res[name] = struct {
				err error
				d   time.Duration
			}{err, d}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return res
}

func TestRequestsFailFastWhenEtcdIsDown(t *testing.T) {
	t.Parallel()
	const timeout = 500 * time.Millisecond
	const slack = 700 * time.Millisecond
	e := etcdtest.Start(t)
	c := newClient(t, e.Endpoints(), func(o *dcs.Options) { o.RequestTimeout = timeout })
	ctx := ctxT(t, 10*time.Second)
	l := grant(t, c, 10*time.Second)
	token, err := c.AcquireLeader(ctx, "n1", l.ID)
	if err != nil {
		t.Fatal(err)
	}
	check := func(state string, limit time.Duration, ctx context.Context) {
		t.Helper()
		for name, r := range everyRequest(ctx, c, l.ID, token) {
			if r.err == nil {
				t.Errorf("%s: %s succeeded", state, name)
				continue
			}
			if r.d > limit {
				t.Errorf("%s: %s took %v (limit %v): %v", state, name, r.d, limit, r.err)
			}
			if errors.Unwrap(r.err) == nil || !strings.Contains(r.err.Error(), ": ") {
				t.Errorf("%s: %s: error not wrapped with its operation: %v", state, name, r.err)
			}
			t.Logf("%s: %s failed after %v: %v", state, name, r.d.Round(time.Millisecond), r.err)
		}
	}

	e.Stop()
	check("stopped", timeout+slack, context.Background())
	// The caller's earlier deadline wins over RequestTimeout.
	short, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	check("stopped, 150ms deadline", 150*time.Millisecond+slack, short)
	cancel()

	e.Start()
	e.Pause()
	check("frozen", timeout+slack, context.Background())
	e.Resume()

	// Up again: the client reconnects by itself.
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := c.Get(ctx)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("client did not reconnect: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestNewDoesNotBlock(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := "http://" + l.Addr().String()
	l.Close() // nobody listens there now
	start := time.Now()
	c := newClient(t, []string{addr}, func(o *dcs.Options) { o.RequestTimeout = 300 * time.Millisecond })
	if d := time.Since(start); d > time.Second {
		t.Errorf("New took %v with etcd unreachable", d)
	}
	start = time.Now()
	_, err = c.Get(context.Background())
	if d := time.Since(start); err == nil || d > time.Second {
		t.Errorf("Get against nothing: %v after %v", err, d)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Get against nothing: %v, want a deadline error", err)
	}

	for _, bad := range []dcs.Options{
		{Prefix: "/service/x/"},
		{Endpoints: []string{addr}, Prefix: "/service/x"},
		{Endpoints: []string{addr}, Prefix: "service/x/"},
		{Endpoints: []string{addr}, Prefix: "/"},
	} {
		if c, err := dcs.New(context.Background(), bad); err == nil {
			c.Close()
			t.Errorf("New(%+v) succeeded", bad)
		}
	}
}

// A member cut off from its quorum answers ErrNoQuorum at once instead of
// timing out or serving stale reads, and the watch resyncs once the quorum
// is back.
func TestNoQuorum(t *testing.T) {
	t.Parallel()
	start := time.Now()
	// Slower elections than the single-member default, so a loaded test
	// machine does not lose the leader before the test takes quorum away.
	ms := etcdtest.StartCluster(t, 3, "--heartbeat-interval=50", "--election-timeout=500")
	t.Logf("cluster up after %v", time.Since(start))
	c := newClient(t, ms[0].Endpoints())
	ctx := ctxT(t, 20*time.Second)
	l := grant(t, c, 10*time.Second)
	token, err := c.AcquireLeader(ctx, "n1", l.ID)
	if err != nil {
		t.Fatal(err)
	}
	events := watch(t, c, 0)
	ms[1].Pause()
	ms[2].Pause()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := c.Get(ctx)
		if errors.Is(err, dcs.ErrNoQuorum) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("member 0 still answers without quorum: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for name, r := range everyRequest(ctx, c, l.ID, token) {
		t.Logf("no quorum: %s failed after %v: %v", name, r.d.Round(time.Millisecond), r.err)
		if !errors.Is(r.err, dcs.ErrNoQuorum) || r.d > time.Second {
			t.Errorf("%s without quorum: %v after %v, want ErrNoQuorum at once", name, r.err, r.d)
		}
	}
	ms[1].Resume()
	ms[2].Resume()
	start = time.Now()
	next(t, events, 10*time.Second, "resync after quorum returned", isResync)
	t.Logf("resync %v after quorum returned", time.Since(start))
	deadline = time.Now().Add(10 * time.Second)
	for {
		err := c.LeaderTxn(ctx, token)
		if err == nil {
			break
		}
		if errors.Is(err, dcs.ErrNotLeader) || time.Now().After(deadline) {
			t.Fatalf("leader key after quorum returned: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
