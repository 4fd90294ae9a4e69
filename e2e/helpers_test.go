package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/testcluster"
)

// warmUp is how long the workload runs before a fault is injected, so that
// every writer has acknowledged writes on the primary.
const warmUp = time.Second

// start starts a cluster with o and the workload, and lets the workload
// warm up.
func start(t testing.TB, o testcluster.Options) (*testcluster.Cluster, *testcluster.Workload) {
	t.Helper()
	c := testcluster.Start(t, o)
	w := testcluster.StartWorkload(t, c)
	time.Sleep(warmUp)
	return c, w
}

// finish waits for the cluster to be whole again (one primary, every
// running node streaming from it; 45s, or 5s if t already failed), stops
// the workload, and checks its history against the final primary, then
// every replica's rows against the primary's. Asynchronous loss before a
// failover is tolerated up to maximum_lag_on_failover and reported. The
// history is checked even when the cluster did not become whole.
func finish(t testing.TB, c *testcluster.Cluster, w *testcluster.Workload) *testcluster.History {
	t.Helper()
	return finishWith(t, c, w, testcluster.LossPolicy{AllowAsync: true, MaxBytes: uint64(c.Options.MaximumLagOnFailover)})
}

// finishWith is finish with the loss policy given: none (the zero policy)
// tolerates no loss at all.
func finishWith(t testing.TB, c *testcluster.Cluster, w *testcluster.Workload, policy ...testcluster.LossPolicy) *testcluster.History {
	t.Helper()
	wait := 45 * time.Second
	if t.Failed() {
		wait = 5 * time.Second
	}
	streamErr := c.ReplicasStreamingWithin(wait)
	h := w.Stop()
	final, p := testcluster.FinalWrites(t, c)
	testcluster.AssertSafe(t, h, final, policy...)
	if streamErr != nil {
		t.Fatal(streamErr)
	}
	replicasMatch(t, c, p, final)
	return h
}

// replicasMatch waits for the replicas to replay everything and checks that
// each running one holds exactly the primary p's rows.
func replicasMatch(t testing.TB, c *testcluster.Cluster, p *testcluster.Node, final map[string][]int64) {
	t.Helper()
	c.WaitReplicasCaughtUp(t, 20*time.Second)
	for _, n := range c.Nodes {
		if n == p || !n.Managed() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		rows, err := n.ReadWrites(ctx)
		cancel()
		if err != nil {
			t.Errorf("replica %s: %v", n.Name, err)
			continue
		}
		if !sameRows(rows, final) {
			t.Errorf("replica %s diverges from primary %s: %s", n.Name, p.Name, diffRows(rows, final))
		}
	}
}

func sameRows(a, b map[string][]int64) bool {
	return maps.EqualFunc(a, b, func(x, y []int64) bool { return slices.Equal(x, y) })
}

// diffRows summarises how replica rows r differ from primary rows p.
func diffRows(r, p map[string][]int64) string {
	writers := map[string]bool{}
	for k := range r {
		writers[k] = true
	}
	for k := range p {
		writers[k] = true
	}
	var b strings.Builder
	for _, writer := range slices.Sorted(maps.Keys(writers)) {
		if slices.Equal(r[writer], p[writer]) {
			continue
		}
		extra, missing := setDiff(r[writer], p[writer]), setDiff(p[writer], r[writer])
		fmt.Fprintf(&b, "%s: %d rows only on the replica %v, %d only on the primary %v; ",
			writer, len(extra), head(extra), len(missing), head(missing))
	}
	return b.String()
}

func setDiff(a, b []int64) []int64 {
	in := map[int64]bool{}
	for _, x := range b {
		in[x] = true
	}
	var out []int64
	for _, x := range a {
		if !in[x] {
			out = append(out, x)
		}
	}
	return out
}

func head(s []int64) []int64 {
	if len(s) > 5 {
		return s[:5]
	}
	return s
}

// leaderWatch polls the leader key every 100ms until stop is closed and
// returns every distinct value seen, in order ("" for no key, "?" when etcd
// did not answer).
func leaderWatch(c *testcluster.Cluster, stop <-chan struct{}) <-chan []string {
	return watchChanges(stop, func() string {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		name, err := c.Leader(ctx)
		if err != nil {
			return "?"
		}
		return name
	}, func(a, b string) bool { return a == b })
}

// primariesSeen is one set of primaries primariesWatch saw: the nodes that
// answered pg_is_in_recovery() = false, first seen at At.
type primariesSeen struct {
	At    time.Time
	Names []string
}

func (s primariesSeen) String() string {
	return s.At.Format("15:04:05.000") + " " + fmt.Sprint(s.Names)
}

// primariesWatch asks every node whether it is a primary
// (Cluster.Primaries) every 100ms until stop is closed and returns every
// distinct set of primaries seen, in order.
func primariesWatch(c *testcluster.Cluster, stop <-chan struct{}) <-chan []primariesSeen {
	return watchChanges(stop, func() primariesSeen {
		now := time.Now()
		return primariesSeen{At: now, Names: nodeNames(c.Primaries(context.Background()))}
	}, func(a, b primariesSeen) bool { return slices.Equal(a.Names, b.Names) })
}

// watchChanges calls sample every 100ms until stop is closed and returns
// the first sample and every later one that differs (same says when two do
// not), in order.
func watchChanges[T any](stop <-chan struct{}, sample func() T, same func(a, b T) bool) <-chan []T {
	out := make(chan []T, 1)
	go func() {
		var seen []T
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			if s := sample(); len(seen) == 0 || !same(seen[len(seen)-1], s) {
				seen = append(seen, s)
			}
			select {
			case <-stop:
				out <- seen
				return
			case <-tick.C:
			}
		}
	}()
	return out
}

// lastAck returns the last write node acknowledged in h at or before
// before, and whether there is one.
func lastAck(h *testcluster.History, node string, before time.Time) (testcluster.Write, bool) {
	var last testcluster.Write
	ok := false
	for _, w := range h.ByNode(node) {
		if w.Ack.After(before) {
			break
		}
		last, ok = w, true
	}
	return last, ok
}

// fmtJSON renders a member key's value for messages.
func fmtJSON(m map[string]any) string {
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Sprint(m)
	}
	return string(b)
}

// waitUntil polls cond every 50ms for up to timeout and fails t if it never
// holds.
func waitUntil(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !holdsWithin(timeout, cond) {
		t.Fatalf("no %s within %s", what, timeout)
	}
}

// holdsWithin is waitUntil for a test that goes on when cond never held: it
// polls cond every 50ms for up to timeout and reports whether it held.
func holdsWithin(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// isolate cuts the primary old off from etcd and, at the same moment, stops
// its replicas' WAL receivers (SIGSTOP), so that no replica receives its WAL
// while clients still reach it. It returns the moment of the cut and a
// function that resumes the receivers; calling it again does nothing.
func isolate(t testing.TB, c *testcluster.Cluster, w *testcluster.Workload, old *testcluster.Node) (time.Time, func()) {
	t.Helper()
	var receivers []int
	for _, r := range replicasOf(c, old) {
		receivers = append(receivers, walReceiverPID(t, r))
	}
	resume := func() {
		for _, pid := range receivers {
			syscall.Kill(pid, syscall.SIGCONT)
		}
		receivers = nil
	}
	cut := w.Mark("partition " + old.Name + " (primary) from etcd and stop its replicas' WAL receivers")
	for _, pid := range receivers {
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			resume()
			t.Fatalf("SIGSTOP wal receiver %d: %v", pid, err)
		}
	}
	old.PartitionFromEtcd()
	return cut, resume
}
