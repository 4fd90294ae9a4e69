package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	pgstate "github.com/pg-ha/pg-ha/lib/state"
	"github.com/pg-ha/pg-ha/lib/testcluster"
)

// The HAProxy test: the real haproxy (2.6) runs examples/haproxy.cfg, its
// addresses rewritten to a three-node cluster whose nodes run pg-healthd.
// psql through :5000 reaches the primary. Then the primary's pg-lockd is
// frozen (SIGSTOP): its lease validity runs out, pg-supervise fences the
// primary, and another node is elected. Throughout, a client connects
// through :5000 every 20 ms: no connection may reach a server in recovery
// or the old primary after its fence, and the new primary must be reached
// within 3 s of accepting writes. Sessions mid-transaction, mid-statement
// and mid-COPY on the old primary when pg-lockd stops never commit.

const haproxyExample = "../examples/haproxy.cfg"

// haproxyConfig rewrites the example for the cluster: listeners on the
// given loopback ports, each "server nodeN" line at the node of that name.
func haproxyConfig(t testing.TB, c *testcluster.Cluster, rw, ro, stats int) string {
	t.Helper()
	var servers []testcluster.HAProxyServer
	for _, n := range c.Nodes {
		servers = append(servers, testcluster.HAProxyServer{Name: n.Name, PGPort: n.PGPort, CheckPort: n.APIPort})
	}
	return testcluster.RewriteHAProxyConfig(t, haproxyExample, map[string]int{"5000": rw, "5001": ro, "7000": stats}, servers)
}

// hop is one connection through HAProxy: which PostgreSQL answered.
type hop struct {
	at         time.Time
	port       int
	inRecovery bool
	err        error
}

// through is n's connection string with HAProxy's port instead of n's.
func through(n *testcluster.Node, port int) string {
	return strings.Replace(n.DSN(), fmt.Sprintf("port=%d ", n.PGPort), fmt.Sprintf("port=%d ", port), 1)
}

func connectThrough(dsn string) hop {
	h := hop{at: time.Now()}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		h.err = err
		return h
	}
	defer conn.Close(context.Background())
	h.err = conn.QueryRow(ctx, "SELECT inet_server_port(), pg_is_in_recovery()").Scan(&h.port, &h.inRecovery)
	return h
}

func psqlThrough(t *testing.T, dsn string) string {
	t.Helper()
	out, err := exec.Command("/usr/bin/psql", "-d", dsn, "-Atc", "SELECT inet_server_port() || ' ' || pg_is_in_recovery()").CombinedOutput()
	if err != nil {
		t.Fatalf("psql through HAProxy: %v: %s", err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestHAProxy(t *testing.T) {
	bin := testcluster.HAProxyBinary(t)
	c, w := start(t, testcluster.Options{Healthd: true})
	old := c.WaitPrimary(t, 10*time.Second)
	c.WaitReplicasStreaming(t, 30*time.Second)

	rw, ro, stats := testcluster.FreePort(t), testcluster.FreePort(t), testcluster.FreePort(t)
	testcluster.StartHAProxy(t, bin, haproxyConfig(t, c, rw, ro, stats))
	statsURL := fmt.Sprintf("http://127.0.0.1:%d", stats)
	// HAProxy 2.6 starts every server UP: wait until the checks sort them.
	want := map[string]string{}
	for _, n := range c.Nodes {
		want["primary/"+n.Name], want["replicas/"+n.Name] = "DOWN", "UP"
	}
	want["primary/"+old.Name], want["replicas/"+old.Name] = "UP", "DOWN"
	testcluster.WaitHAProxyStatus(t, statsURL, 15*time.Second, want)

	if got := psqlThrough(t, through(old, rw)); got != fmt.Sprintf("%d false", old.PGPort) {
		t.Fatalf("psql through :5000 answered %q, want the primary %s (port %d)", got, old.Name, old.PGPort)
	}
	if h := connectThrough(through(old, ro)); h.err != nil || !h.inRecovery || h.port == old.PGPort {
		t.Fatalf("through :5001: %+v, want a replica", h)
	}

	// A client connects through :5000 every 20 ms; another watcher notes
	// when each node first accepts writes.
	var mu sync.Mutex
	var hops []hop
	writable := map[string]time.Time{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for {
			h := connectThrough(through(old, rw))
			mu.Lock()
			hops = append(hops, h)
			mu.Unlock()
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	go func() {
		defer wg.Done()
		for {
			for _, n := range c.Nodes {
				if n == old {
					continue
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				p, err := n.IsPrimary(ctx)
				cancel()
				mu.Lock()
				if _, seen := writable[n.Name]; err == nil && p && !seen {
					writable[n.Name] = time.Now()
				}
				mu.Unlock()
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	stopped := false
	halt := func() {
		if !stopped {
			stopped = true
			close(stop)
			wg.Wait()
		}
	}
	defer halt()
	time.Sleep(500 * time.Millisecond)

	holds := w.Hold(t, old, c.Options.TTL+8*time.Second)
	frozen := w.Mark("SIGSTOP pg-lockd of " + old.Name)
	if err := old.Signal(testcluster.Lockd, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	defer func() {
		if !resumed {
			old.Signal(testcluster.Lockd, syscall.SIGCONT)
		}
	}()
	np := c.WaitPrimary(t, c.Options.TTL+20*time.Second, old)
	var fencedAt time.Time
	waitUntil(t, 10*time.Second, old.Name+" fenced", func() bool {
		sup, err := pgstate.ReadSupervise(old.RuntimeDir)
		if err == nil && sup.State == pgstate.Fenced {
			fencedAt = sup.Since
		}
		return !fencedAt.IsZero()
	})
	waitUntil(t, 5*time.Second, "a connection through :5000 on "+np.Name, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, h := range hops {
			if h.err == nil && h.port == np.PGPort {
				return true
			}
		}
		return false
	})
	time.Sleep(500 * time.Millisecond)
	halt()
	if err := old.Signal(testcluster.Lockd, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed = true

	promoted := writable[np.Name]
	var firstOnNew time.Time
	var ok, failed int
	for _, h := range hops {
		if h.err != nil {
			failed++
			continue
		}
		ok++
		if h.inRecovery {
			t.Errorf("%s: :5000 reached a server in recovery (port %d)", h.at.Format("15:04:05.000"), h.port)
		}
		if h.port == old.PGPort && !h.at.Before(fencedAt) {
			t.Errorf("%s: :5000 reached %s, fenced at %s", h.at.Format("15:04:05.000"), old.Name, fencedAt.Format("15:04:05.000"))
		}
		if h.port == np.PGPort && firstOnNew.IsZero() {
			firstOnNew = h.at
		}
	}
	t.Logf("%s fenced at %s; %s writable at %s, reached through :5000 at %s (%s later); %d connections succeeded, %d failed",
		old.Name, fencedAt.Format("15:04:05.000"), np.Name, promoted.Format("15:04:05.000"),
		firstOnNew.Format("15:04:05.000"), firstOnNew.Sub(promoted).Round(time.Millisecond), ok, failed)
	if promoted.IsZero() || firstOnNew.Sub(promoted) > 3*time.Second {
		t.Errorf("the new primary %s was reached through :5000 %s after it accepted writes, want within 3 s",
			np.Name, firstOnNew.Sub(promoted).Round(time.Millisecond))
	}
	testcluster.AssertNoneCommittedAfter(t, holds.Wait(t, 30*time.Second), frozen, "the fence")
	if got := psqlThrough(t, through(old, rw)); got != fmt.Sprintf("%d false", np.PGPort) {
		t.Errorf("psql through :5000 after the failover answered %q, want %s (port %d)", got, np.Name, np.PGPort)
	}
	finish(t, c, w)
}
