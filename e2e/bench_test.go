package e2e

import (
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

// BenchmarkLockdHang measures the unavailability when the primary's
// pg-lockd hangs (SIGSTOP) while the rest of the node runs on, like
// BenchmarkNodeDeath: the fault lasts until the multi-host writer's first
// acknowledged write on the new primary. Then pg-lockd runs again and the
// old primary must rejoin as a replica while the writes go on, so that the
// safety checks also cover what it does once it wakes up.
func BenchmarkLockdHang(b *testing.B) {
	for _, tc := range timings {
		b.Run(tc.name, func(b *testing.B) {
			benchFault(b, tc.o, func(b *testing.B, c *testcluster.Cluster, w *testcluster.Workload) {
				old := c.WaitPrimary(b, 10*time.Second)
				servers := old.ServerPIDs()
				stopped := w.Mark("SIGSTOP pg-lockd of " + old.Name)
				if err := old.Signal(testcluster.Lockd, syscall.SIGSTOP); err != nil {
					b.Fatal(err)
				}
				resumed := false
				resume := func() {
					if resumed {
						return
					}
					resumed = true
					w.Mark("SIGCONT pg-lockd of " + old.Name)
					if err := old.Signal(testcluster.Lockd, syscall.SIGCONT); err != nil {
						b.Error(err)
					}
				}
				defer resume()
				np := c.WaitPrimary(b, c.Options.TTL+15*time.Second, old)
				if left := testcluster.Alive(servers); len(left) > 0 {
					b.Errorf("%s is primary while server processes %v of the fenced primary %s are alive", np.Name, left, old.Name)
				}
				w.WaitAck(b, testcluster.MultiWriter, np.Name, stopped, 15*time.Second)
				resume()
				if err := c.ReplicasStreamingWithin(45 * time.Second); err != nil {
					b.Errorf("%s did not rejoin after its pg-lockd ran again: %v", old.Name, err)
				}
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
// their sum, the others each one's. kB-private* is the part of it no other
// process shares (Private_Clean+Private_Dirty of smaps_rollup): RSS also
// counts the executable's pages, which the page cache shares with every
// other process running the same binary. ns/op is meaningless and reported
// as 0.
func BenchmarkRSS(b *testing.B) {
	procs := []struct {
		name string
		p    testcluster.Proc
	}{{"lockd", testcluster.Lockd}, {"supervise", testcluster.Supervise}, {"healthd", testcluster.Healthd}}
	rss := make([]int64, len(procs))
	priv := make([]int64, len(procs))
	for range b.N {
		c, w := start(b, testcluster.Options{Healthd: true})
		time.Sleep(5 * time.Second)
		p := c.WaitPrimary(b, 10*time.Second)
		for i, pr := range procs {
			r, pv := memKB(b, p, pr.p)
			rss[i] += r
			priv[i] += pv
		}
		w.Stop()
		c.Close()
	}
	n := int64(b.N)
	var total, totalPriv int64
	for i := range procs {
		total += rss[i]
		totalPriv += priv[i]
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(total/n), "kB-rss")
	b.ReportMetric(float64(totalPriv/n), "kB-private")
	for i, pr := range procs {
		b.ReportMetric(float64(rss[i]/n), "kB-rss-"+pr.name)
		b.ReportMetric(float64(priv[i]/n), "kB-private-"+pr.name)
	}
}

// memKB reads the resident and the private memory of node n's process p
// from /proc.
func memKB(b *testing.B, n *testcluster.Node, p testcluster.Proc) (rss, private int64) {
	b.Helper()
	pid := n.PID(p)
	if pid == 0 {
		b.Fatalf("%s %s is not running", n.Name, p)
	}
	f, err := smapsRollup(pid)
	if err != nil {
		b.Fatalf("%s %s: %v", n.Name, p, err)
	}
	b.Logf("%s %s: rss %d kB, private %d kB (anonymous %d kB), cpu %s", n.Name, p, f["Rss"],
		f["Private_Clean"]+f["Private_Dirty"], f["Anonymous"], cpuTime(pid))
	return f["Rss"], f["Private_Clean"] + f["Private_Dirty"]
}

// smapsRollup reads /proc/PID/smaps_rollup into a map of field to kB.
func smapsRollup(pid int) (map[string]int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return nil, err
	}
	m := make(map[string]int64)
	for _, line := range strings.Split(string(data), "\n") {
		k, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			continue
		}
		v, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("/proc/%d/smaps_rollup: %s: %w", pid, k, err)
		}
		m[k] = v
	}
	if _, ok := m["Rss"]; !ok {
		return nil, fmt.Errorf("no Rss in /proc/%d/smaps_rollup", pid)
	}
	return m, nil
}

// cpuTime is the user and system CPU time process pid has used, or -1 if
// /proc/PID/stat cannot be read.
func cpuTime(pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	i := strings.LastIndexByte(string(data), ')')
	f := strings.Fields(string(data[i+1:]))
	if i < 0 || len(f) < 13 {
		return -1
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * 10 * time.Millisecond // USER_HZ is 100
}
