package e2e

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/testcluster"
)

// timings are the settings the failover benchmarks run at: pg-ha's
// defaults, and a more conservative set.
var timings = []struct {
	name string
	o    testcluster.Options
}{
	{"ttl8-loop1-retry3", testcluster.Options{TTL: 8 * time.Second, LoopWait: time.Second, RetryTimeout: 3 * time.Second}},
	{"ttl10-loop1-retry4", testcluster.Options{TTL: 10 * time.Second, LoopWait: time.Second, RetryTimeout: 4 * time.Second}},
}

// BenchmarkNodeDeath measures the application's unavailability when the
// primary's node dies: the longest gap between acknowledged writes of the
// multi-host writer, reported as s-max-gap. Each iteration is a whole
// cluster and one node death; ns/op is meaningless and reported as 0.
func BenchmarkNodeDeath(b *testing.B) {
	for _, tc := range timings {
		b.Run(tc.name, func(b *testing.B) {
			benchFault(b, tc.o, func(b *testing.B, c *testcluster.Cluster, w *testcluster.Workload) {
				old := c.WaitPrimary(b, 10*time.Second)
				killed := w.Mark("kill node " + old.Name)
				old.KillAll()
				np := c.WaitPrimary(b, c.Options.TTL+15*time.Second, old)
				w.WaitAck(b, testcluster.MultiWriter, np.Name, killed, 15*time.Second)
			})
		})
	}
}

// BenchmarkPostmasterCrash measures the unavailability after kill -9 of the
// primary's postmaster, like BenchmarkNodeDeath.
func BenchmarkPostmasterCrash(b *testing.B) {
	for _, tc := range timings {
		b.Run(tc.name, func(b *testing.B) {
			benchFault(b, tc.o, func(b *testing.B, c *testcluster.Cluster, w *testcluster.Workload) {
				old := c.WaitPrimary(b, 10*time.Second)
				pid := old.PID(testcluster.Postmaster)
				w.Mark("kill -9 postmaster of " + old.Name)
				if err := old.Signal(testcluster.Postmaster, syscall.SIGKILL); err != nil {
					b.Fatal(err)
				}
				waitUntil(b, 30*time.Second, "a new postmaster on "+old.Name, func() bool {
					np := old.PID(testcluster.Postmaster)
					return np != 0 && np != pid
				})
				w.WaitAck(b, testcluster.MultiWriter, "", w.Mark("new postmaster on "+old.Name), 30*time.Second)
			})
		})
	}
}

// benchFault runs b.N times: start a cluster and the workload, inject the
// fault, wait for writes to flow again, and record the multi writer's
// longest gap; the history is checked for safety each time (in
// synchronous mode no acknowledged write may be lost).
func benchFault(b *testing.B, o testcluster.Options, fault func(*testing.B, *testcluster.Cluster, *testcluster.Workload)) {
	var worst, sum time.Duration
	for range b.N {
		c, w := start(b, o)
		fault(b, c, w) // returns once the multi writer's writes flow again
		time.Sleep(500 * time.Millisecond)
		h := w.Stop()
		final, _ := testcluster.FinalWrites(b, c)
		if o.SyncMode == testcluster.SyncOn || o.SyncMode == testcluster.SyncQuorum {
			testcluster.AssertLossless(b, h, final)
		} else {
			testcluster.AssertSafe(b, h, final, testcluster.LossPolicy{AllowAsync: true, MaxBytes: uint64(c.Options.MaximumLagOnFailover)})
		}
		gap := testcluster.MaxGap(h, testcluster.MultiWriter)
		b.Logf("%s writer's longest gap: %s", testcluster.MultiWriter, gap.Round(time.Millisecond))
		sum += gap
		worst = max(worst, gap)
		c.Close()
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric((sum / time.Duration(b.N)).Seconds(), "s-max-gap")
	b.ReportMetric(worst.Seconds(), "s-worst-gap")
}

// BenchmarkRSS reports the resident memory of pg-lockd, pg-supervise and
// pg-healthd on the primary after the workload ran for a while: kB-rss is
// their sum, the others each one's. ns/op is meaningless and reported as 0.
func BenchmarkRSS(b *testing.B) {
	var total, lockd, supervise, healthd int64
	for range b.N {
		c, w := start(b, testcluster.Options{Healthd: true})
		time.Sleep(5 * time.Second)
		p := c.WaitPrimary(b, 10*time.Second)
		l := rssKB(b, p, testcluster.Lockd)
		s := rssKB(b, p, testcluster.Supervise)
		h := rssKB(b, p, testcluster.Healthd)
		lockd, supervise, healthd, total = lockd+l, supervise+s, healthd+h, total+l+s+h
		w.Stop()
		c.Close()
	}
	n := int64(b.N)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(total/n), "kB-rss")
	b.ReportMetric(float64(lockd/n), "kB-rss-lockd")
	b.ReportMetric(float64(supervise/n), "kB-rss-supervise")
	b.ReportMetric(float64(healthd/n), "kB-rss-healthd")
}

// rssKB reads VmRSS of node n's process p from /proc.
func rssKB(b *testing.B, n *testcluster.Node, p testcluster.Proc) int64 {
	b.Helper()
	pid := n.PID(p)
	if pid == 0 {
		b.Fatalf("%s %s is not running", n.Name, p)
	}
	kb, err := vmRSS(pid)
	if err != nil {
		b.Fatalf("%s %s: %v", n.Name, p, err)
	}
	return kb
}

func vmRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				break
			}
			return strconv.ParseInt(f[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}
