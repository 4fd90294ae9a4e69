package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/pg-ha/pg-ha/lib/testcluster"
)

// The failover key's semantics (Patroni's): a scheduled switchover is only
// carried out by its leader at its time, a key that no longer applies is
// deleted rather than steering every later election, and pg-failover
// cancel withdraws a request.

// failoverKey reads the failover key ("" when there is none).
func failoverKey(t testing.TB, c *testcluster.Cluster) string {
	t.Helper()
	v, err := c.Get(context.Background(), c.Key("failover"))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// putFailoverKey writes the failover key directly, as a request that raced
// with a failure would have left it.
func putFailoverKey(t testing.TB, c *testcluster.Cluster, v map[string]any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Etcd.Endpoints(), DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, c.Key("failover"), string(b)); err != nil {
		t.Fatal(err)
	}
}

// TestFailoverKeyScheduled: pg-failover cancel withdraws a scheduled
// switchover; a scheduled switchover is not carried out early when its
// leader dies — a normal failover happens and the key is deleted.
func TestFailoverKeyScheduled(t *testing.T) {
	c, w := start(t, testcluster.Options{})
	p := c.WaitPrimary(t, 10*time.Second)
	rs := replicasOf(c, p)
	target := rs[1]
	at := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)

	if _, stderr, code := pgFailover(t, p, "--to", target.Name, "--at", at, "--no-wait"); code != 0 {
		t.Fatalf("schedule: exit %d: %s", code, lastLine(stderr))
	}
	_, stderr, code := pgFailover(t, p, "--to", rs[0].Name, "--no-wait")
	wantExit(t, code, stderr, 18, "pending")
	out, stderr, code := pgFailover(t, p, "cancel", "--json")
	if r := parseResult(t, out); code != 0 || r.Result != "cancelled" || r.Candidate != target.Name {
		t.Fatalf("cancel: exit %d, %+v: %s", code, r, lastLine(stderr))
	}
	if k := failoverKey(t, c); k != "" {
		t.Fatalf("failover key after cancel: %s", k)
	}
	if out, stderr, code := pgFailover(t, p, "flush"); code != 0 || !strings.Contains(out, "nothing to cancel") {
		t.Fatalf("second cancel: exit %d, %q: %s", code, out, lastLine(stderr))
	}

	if _, stderr, code := pgFailover(t, p, "--to", target.Name, "--at", at, "--no-wait"); code != 0 {
		t.Fatalf("schedule again: exit %d: %s", code, lastLine(stderr))
	}
	w.Mark("kill node " + p.Name + " with a switchover to " + target.Name + " scheduled in an hour")
	p.KillAll()
	np := c.WaitPrimary(t, c.Options.TTL+15*time.Second, p)
	waitUntil(t, 10*time.Second, "deletion of the stale scheduled failover key", func() bool { return failoverKey(t, c) == "" })
	if np.LogContains(testcluster.Lockd, "the requested failover target") {
		t.Errorf("%s took the leader key as the target of a switchover scheduled in an hour", np.Name)
	}
	t.Logf("%s took over by a normal election; the scheduled request is gone", np.Name)
	finish(t, c, w)
}

// TestFailoverKeyStale: a switchover request whose leader and candidate
// both died does not block the election, and the new leader deletes it so
// that it neither steers a later election nor makes pg-failover refuse
// every new request as pending.
func TestFailoverKeyStale(t *testing.T) {
	c, w := start(t, testcluster.Options{})
	p := c.WaitPrimary(t, 10*time.Second)
	rs := replicasOf(c, p)
	survivor, target := rs[0], rs[1]
	w.Mark("kill " + target.Name + " and " + p.Name + ", leaving a switchover request between them")
	target.KillAll()
	p.KillAll()
	putFailoverKey(t, c, map[string]any{"leader": p.Name, "member": target.Name})
	np := c.WaitPrimary(t, c.Options.TTL+15*time.Second, p, target)
	if np != survivor {
		t.Fatalf("primary %s, want %s", np.Name, survivor.Name)
	}
	waitUntil(t, 10*time.Second, "deletion of the stale failover key", func() bool { return failoverKey(t, c) == "" })
	_, stderr, code := pgFailover(t, survivor, "--dry-run", "--to", rs[0].Name)
	if code == 18 {
		t.Errorf("pg-failover still refuses as pending: %s", lastLine(stderr))
	}
	finish(t, c, w)
}
