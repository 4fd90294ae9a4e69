package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/pg-ha/pg-ha/lib/testcluster"
)

// TestMemberKeysQuietAndLag: on a cluster without writes the member keys
// are not rewritten every loop (the lease keeps them); a replica whose
// replay is paused shows its lag in its member key within a few seconds,
// and shows it gone within a few seconds of replay resuming; patronictl's
// view (the member keys) follows.
func TestMemberKeysQuietAndLag(t *testing.T) {
	c := testcluster.Start(t, testcluster.Options{})
	p := c.WaitPrimary(t, 30*time.Second)
	c.WaitReplicasStreaming(t, 30*time.Second)
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Etcd.Endpoints(), DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	writes := func() map[string]int64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		resp, err := cli.Get(ctx, c.Key("members/"), clientv3.WithPrefix())
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int64{}
		for _, kv := range resp.Kvs {
			out[strings.TrimPrefix(string(kv.Key), c.Key("members/"))] = kv.Version
		}
		return out
	}

	// Quiet: over 15 loops each member key is written at most a few
	// times (positions that moved are published at most every 5 loops).
	time.Sleep(3 * time.Second)
	before := writes()
	time.Sleep(15 * time.Second)
	after := writes()
	for name, v := range after {
		if n := v - before[name]; n > 3 {
			t.Errorf("member %s written %d times in 15 s of a quiet cluster", name, n)
		}
	}

	// Lag: pause replay on one replica, write ~20 MB on the primary.
	var r *testcluster.Node
	for _, n := range c.Nodes {
		if n != p {
			r = n
			break
		}
	}
	ctx := context.Background()
	if err := r.Exec(ctx, "SELECT pg_wal_replay_pause()"); err != nil {
		t.Fatal(err)
	}
	if err := p.Exec(ctx, "CREATE TABLE lag_probe AS SELECT g, repeat('x', 1000) AS pad FROM generate_series(1, 20000) g"); err != nil {
		t.Fatal(err)
	}
	var target int64
	if err := p.QueryRow(ctx, "SELECT pg_current_wal_lsn() - '0/0'", nil, &target); err != nil {
		t.Fatal(err)
	}
	pos := func(field string) int64 {
		ms, err := c.Members(ctx)
		if err != nil {
			return -1
		}
		v, _ := ms[r.Name][field].(float64)
		return int64(v)
	}
	start := time.Now()
	waitUntil(t, 7*time.Second, r.Name+"'s member key showing the WAL received but not replayed", func() bool {
		return pos("received_location") >= target && pos("replayed_location") < target-(10<<20)
	})
	t.Logf("lag shown %v after the write", time.Since(start).Round(10*time.Millisecond))
	if err := r.Exec(ctx, "SELECT pg_wal_replay_resume()"); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	waitUntil(t, 7*time.Second, r.Name+"'s member key showing replay caught up", func() bool {
		return pos("replayed_location") >= target
	})
	t.Logf("catch-up shown %v after resuming", time.Since(start).Round(10*time.Millisecond))
}
