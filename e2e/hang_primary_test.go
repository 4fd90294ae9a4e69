package e2e

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/pg-ha/pg-ha/lib/testcluster"
)

// setDynamic merges settings into the config key, as patronictl
// edit-config does; every pg-lockd applies it within a loop.
func setDynamic(t testing.TB, c *testcluster.Cluster, settings map[string]any) {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Etcd.Endpoints(), DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, c.Key("config"))
	if err != nil || len(resp.Kvs) == 0 {
		t.Fatalf("read the config key: %v", err)
	}
	doc := map[string]any{}
	if err := json.Unmarshal(resp.Kvs[0].Value, &doc); err != nil {
		t.Fatal(err)
	}
	for k, v := range settings {
		doc[k] = v
	}
	b, _ := json.Marshal(doc)
	if _, err := cli.Put(ctx, c.Key("config"), string(b)); err != nil {
		t.Fatal(err)
	}
}

// freeze SIGSTOPs every server process of n, also ones started later,
// until the returned function is called; that resumes them all.
func freeze(n *testcluster.Node) (thaw func() []int) {
	stop := make(chan struct{})
	var mu sync.Mutex
	frozen := map[int]bool{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			for _, pid := range n.ServerPIDs() {
				mu.Lock()
				if !frozen[pid] && syscall.Kill(pid, syscall.SIGSTOP) == nil {
					frozen[pid] = true
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
	return func() []int {
		close(stop)
		<-done
		mu.Lock()
		defer mu.Unlock()
		var out []int
		for pid := range frozen {
			syscall.Kill(pid, syscall.SIGCONT)
			out = append(out, pid)
		}
		return out
	}
}

// TestPrimaryHang: every PostgreSQL process of the primary is stopped (as
// with a stuck disk) for longer than primary_hang_timeout. Its pg-lockd
// has the server killed, hands the leader key on with the evidence, a
// replica takes over, and the old primary rejoins as a replica once its
// processes run again.
func TestPrimaryHang(t *testing.T) {
	c, w := start(t, testcluster.Options{})
	const hangTimeout = 5 * time.Second
	setDynamic(t, c, map[string]any{"primary_hang_timeout": hangTimeout.Seconds()})
	p := c.WaitPrimary(t, 10*time.Second)
	time.Sleep(2 * c.Options.LoopWait) // every pg-lockd has read the config key

	frozenAt := w.Mark("SIGSTOP every server process of " + p.Name)
	thaw := freeze(p)
	np, waited := func() (*testcluster.Node, time.Duration) {
		defer func() {
			pids := thaw()
			w.Mark("SIGCONT " + strconv.Itoa(len(pids)) + " server processes of " + p.Name)
		}()
		np := c.WaitPrimary(t, hangTimeout+c.Options.TTL+15*time.Second, p)
		return np, time.Since(frozenAt)
	}()
	t.Logf("%s took over %s after %s's server processes were stopped (primary_hang_timeout %s)",
		np.Name, waited.Round(time.Millisecond), p.Name, hangTimeout)
	if waited < hangTimeout {
		t.Errorf("%s took over after %s, before primary_hang_timeout (%s)", np.Name, waited, hangTimeout)
	}
	if !p.LogContains(testcluster.Lockd, "answers no query") {
		t.Errorf("%s's pg-lockd did not report the unresponsive server", p.Name)
	}
	finish(t, c, w)
}
