package health

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/pg-ha/pg-ha/lib/dcs"
	"github.com/pg-ha/pg-ha/lib/dcs/etcdtest"
	"github.com/pg-ha/pg-ha/lib/logx/logxtest"
)

// etcdClients returns pg-ha's client for scope and a raw client for writing
// keys by hand, both closed when the test ends.
func etcdClients(t testing.TB, e *etcdtest.Etcd, scope string) (*dcs.Client, *clientv3.Client) {
	t.Helper()
	c, err := dcs.New(context.Background(), dcs.Options{
		Endpoints: e.Endpoints(), Prefix: "/service/" + scope + "/", RequestTimeout: 500 * time.Millisecond,
		WatchProgressInterval: 250 * time.Millisecond, Log: logxtest.Logger(t).With().Str("component", "dcs").Logger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := clientv3.New(clientv3.Config{Endpoints: e.Endpoints(), DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		raw.Close()
		c.Close()
	})
	return c, raw
}

func put(t testing.TB, raw *clientv3.Client, key, val string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := raw.Put(ctx, key, val); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

// newNodeService runs a Service for a PostgreSQL node until the test ends.
func newNodeService(t testing.TB, name, scope string, n *pgNode, c *dcs.Client, runtimeDir string) *Service {
	t.Helper()
	svc, err := New(Options{
		Name: name, Scope: scope, Version: "0.1.0", DCS: c, Standalone: c == nil, PG: n.Params(),
		RuntimeDir: runtimeDir, TTL: 8 * time.Second, MaxLagOnFailover: 1 << 20,
		Log: logxtest.Logger(t).With().Str("member", name).Logger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	run(t, svc)
	return svc
}

// latencies records how long requests took to be answered. A handler that
// waited for PostgreSQL or etcd would take up to their 1 s deadlines; one
// that serves the snapshot answers in well under a millisecond, and more
// than 50 ms only when the test machine's scheduler stalls the client.
type latencies struct {
	n, slow int
	max     time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.n++
	l.max = max(l.max, d)
	if d > 50*time.Millisecond {
		l.slow++
	}
}

// check fails t if any answer took 500 ms or more, or more than 2 % took
// over 50 ms.
func (l *latencies) check(t testing.TB, what string) {
	t.Helper()
	t.Logf("%s: %d requests, slowest %v, %d over 50 ms", what, l.n, l.max.Round(time.Microsecond), l.slow)
	if l.max >= 500*time.Millisecond || l.slow*50 > l.n {
		t.Errorf("%s: %d of %d answers over 50 ms, slowest %v", what, l.slow, l.n, l.max)
	}
}

// poll GETs url every 20 ms until it answers want, failing the test if want
// does not come within limit. It returns how long it took.
func poll(t testing.TB, url string, want int, limit time.Duration) time.Duration {
	t.Helper()
	var lat latencies
	defer lat.check(t, "GET "+url)
	start := time.Now()
	for {
		t0 := time.Now()
		r := do(t, "GET", url)
		lat.add(time.Since(t0))
		if r.code == want {
			t.Logf("GET %s: %d after %v", url, want, time.Since(start).Round(time.Millisecond))
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("GET %s: still %d after %v, want %d; body %s", url, r.code, limit, want, r.body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestIntegrationPrimary runs against a real PostgreSQL 15 and a real etcd:
// /primary is 200 while this node holds the leader key; when etcd dies it is
// 503 within the staleness bound; when PostgreSQL is frozen (SIGSTOP) every
// request is still answered within 50 ms, with 503 once the snapshot is
// refused.
func TestIntegrationPrimary(t *testing.T) {
	t.Parallel()
	e := etcdtest.Start(t)
	p := startPrimary(t)
	c, raw := etcdClients(t, e, "primary")
	put(t, raw, c.Key("leader"), "node1")
	put(t, raw, c.Key("config"), `{"ttl":8,"loop_wait":1}`)
	svc := newNodeService(t, "node1", "primary", p, c, t.TempDir())
	url := serve(t, svc)

	poll(t, url+"/primary", 200, 5*time.Second)
	r := do(t, "GET", url+"/patroni")
	var st map[string]any
	if err := json.Unmarshal([]byte(r.body), &st); err != nil {
		t.Fatal(err)
	}
	xlog, _ := st["xlog"].(map[string]any)
	if st["state"] != "running" || st["role"] != "master" || st["timeline"] != 1.0 || xlog["location"].(float64) <= 0 ||
		st["server_version"].(float64) < 150000 || st["database_system_identifier"] == "" || st["cluster_unlocked"] != nil {
		t.Errorf("/patroni %s", r.body)
	}
	codes := map[string]int{"/replica": 503, "/read-only": 200, "/health": 200, "/leader": 200, "/config": 200,
		"/readiness": 200, "/liveness": 503 /* no pg-lockd heartbeat */}
	for path, want := range codes {
		if r := do(t, "GET", url+path); r.code != want {
			t.Errorf("%s: %d, want %d", path, r.code, want)
		}
	}

	// The leader key moves away: 503 as soon as the watch reports it.
	put(t, raw, c.Key("leader"), "node2")
	if took := poll(t, url+"/primary", 503, 2*time.Second); took > time.Second {
		t.Errorf("leader key change seen after %v", took)
	}
	put(t, raw, c.Key("leader"), "node1")
	poll(t, url+"/primary", 200, 2*time.Second)

	// etcd dies: the leader key can no longer be confirmed.
	bound := svc.Bounds().DCS
	e.Stop()
	if took := poll(t, url+"/primary", 503, bound+time.Second); took > bound+100*time.Millisecond {
		t.Errorf("/primary 503 only %v after etcd stopped, bound %v", took, bound)
	}
	if r := do(t, "GET", url+"/health"); r.code != 200 {
		t.Errorf("/health with etcd down: %d", r.code)
	}
	e.Start()
	poll(t, url+"/primary", 200, 10*time.Second)

	// PostgreSQL freezes: requests keep being answered at once, and /primary
	// turns 503 once the query deadline passes.
	p.Signal(syscall.SIGSTOP)
	frozen := true
	defer func() {
		if frozen {
			p.Signal(syscall.SIGCONT)
		}
	}()
	if took := poll(t, url+"/primary", 503, svc.Bounds().PG+time.Second); took > svc.Bounds().PG+100*time.Millisecond {
		t.Errorf("/primary 503 only %v after SIGSTOP, bound %v", took, svc.Bounds().PG)
	}
	var lat latencies
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) { // still answered at once while frozen
		t0 := time.Now()
		r := do(t, "GET", url+"/primary")
		lat.add(time.Since(t0))
		if r.code != 503 {
			t.Errorf("frozen postgres: /primary %d", r.code)
		}
	}
	lat.check(t, "GET /primary while postgres is frozen")
	if f := svc.Facts(); f.Running || !strings.Contains(f.Why, "not answering") {
		t.Errorf("frozen postgres: facts %+v", f)
	}
	p.Signal(syscall.SIGCONT)
	frozen = false
	poll(t, url+"/primary", 200, 5*time.Second)
}

// TestIntegrationReplica checks a streaming replica of a real primary, and
// the lag filter against the optime in etcd.
func TestIntegrationReplica(t *testing.T) {
	t.Parallel()
	e := etcdtest.Start(t)
	p := startPrimary(t)
	r := p.startReplica(t)
	c, raw := etcdClients(t, e, "replica")
	put(t, raw, c.Key("leader"), "node1")
	svc := newNodeService(t, "node2", "replica", r, c, t.TempDir())
	url := serve(t, svc)

	poll(t, url+"/replica?replication_state=streaming", 200, 5*time.Second)
	for path, want := range map[string]int{"/primary": 503, "/read-only": 200, "/async": 200, "/sync": 503, "/readiness": 200} {
		if got := do(t, "GET", url+path); got.code != want {
			t.Errorf("%s: %d, want %d", path, got.code, want)
		}
	}
	replayed := int64(svc.Snapshot().PG.Status.ReplayLSN)
	put(t, raw, c.Key("status"), `{"optime":`+strconv.FormatInt(replayed+100<<20, 10)+`}`)
	poll(t, url+"/replica?lag=16MB", 503, 2*time.Second)
	for path, want := range map[string]int{"/replica": 200, "/replica?lag=1GB": 200, "/readiness": 503} {
		if got := do(t, "GET", url+path); got.code != want {
			t.Errorf("lagging: %s: %d, want %d", path, got.code, want)
		}
	}
	// Standalone, the same replica is judged by PostgreSQL alone.
	alone := serve(t, newNodeService(t, "node2", "replica", r, nil, t.TempDir()))
	poll(t, alone+"/replica?lag=16MB", 200, 5*time.Second)
	if got := do(t, "GET", alone+"/primary"); got.code != 503 {
		t.Errorf("standalone replica /primary: %d", got.code)
	}
}
