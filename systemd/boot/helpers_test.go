package boot

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/testcluster"
)

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// waitFor polls cond every 50 ms until it holds, failing t after within.
func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// leaderWatch samples the leader key every 100 ms.
type leaderWatch struct {
	done chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	seen []string // distinct values in order ("" for no key)
}

func watchLeader(t testing.TB, c *testcluster.Cluster) *leaderWatch {
	lw := &leaderWatch{done: make(chan struct{})}
	lw.wg.Add(1)
	go func() {
		defer lw.wg.Done()
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			name, err := c.Leader(ctx)
			cancel()
			if err == nil {
				lw.mu.Lock()
				if len(lw.seen) == 0 || lw.seen[len(lw.seen)-1] != name {
					lw.seen = append(lw.seen, name)
				}
				lw.mu.Unlock()
			}
			select {
			case <-lw.done:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { lw.stop() })
	return lw
}

// stop ends the sampling and returns the leaders seen, in order.
func (lw *leaderWatch) stop() []string {
	select {
	case <-lw.done:
	default:
		close(lw.done)
	}
	lw.wg.Wait()
	lw.mu.Lock()
	defer lw.mu.Unlock()
	return slices.Clone(lw.seen)
}

// freePorts returns n distinct ports from testcluster.FreePort.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var out []int
	for len(out) < n {
		if p := testcluster.FreePort(t); !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}
