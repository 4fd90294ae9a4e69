package e2e

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/testcluster"
)

// BenchmarkIsolatedPrimaryLoss measures what the partition of
// TestLockdIsolatedPrimaryFencesEarly costs an application writing
// asynchronously, for pg-ha and for Patroni on the same machine, with the
// same workload and the same fault: at ttl 10 s, loop_wait 1 s,
// retry_timeout 4 s, the primary is cut off from etcd (its etcd proxy goes
// silent) and, at the same moment, its replicas' WAL receivers are stopped
// with SIGSTOP, while clients still reach it. Once its PostgreSQL is
// stopped or restarted (at most ttl after the cut), the receivers resume;
// the benchmark then waits for a new primary, heals the partition, waits
// for the old primary to follow the new one, and compares every
// acknowledged write with the new primary's rows.
//
// Per system it reports lost-writes (acknowledged writes missing from the
// new primary; mean and worst), acked-after-cut (writes the old primary
// acknowledged after the cut, all of which a partition that also dropped
// the WAL already in flight would lose), s-last-ack (from the cut to the
// old primary's last acknowledgement; mean and worst) and s-new-primary
// (from the cut to the application's first write on the new primary). A
// stopped receiver still gets the WAL its socket had buffered, so lost
// writes are fewer than those acknowledged after the cut. Each iteration
// is a fresh cluster; ns/op is meaningless and reported as 0. The loss is
// the measurement, so it is not asserted on; a split brain, a phantom row
// or a row nobody wrote fails the benchmark.
//
//	PGHA_TEST_DISALLOW_SKIP=1 go test ./e2e -run '^$' -bench IsolatedPrimaryLoss -benchtime 3x
func BenchmarkIsolatedPrimaryLoss(b *testing.B) {
	for _, sys := range []struct {
		name    string
		patroni bool
	}{{"pg-ha", false}, {"patroni", true}} {
		b.Run(sys.name, func(b *testing.B) {
			o := testcluster.Options{EtcdProxy: true, TTL: 10 * time.Second, LoopWait: time.Second,
				RetryTimeout: 4 * time.Second, Patroni: sys.patroni}
			var lostSum, lostWorst, riskSum int
			var lastSum, lastWorst, newSum time.Duration
			for range b.N {
				r := isolatePrimary(b, o)
				lostSum, lostWorst, riskSum = lostSum+r.lost, max(lostWorst, r.lost), riskSum+r.atRisk
				lastSum, lastWorst, newSum = lastSum+r.lastAck, max(lastWorst, r.lastAck), newSum+r.newPrimary
			}
			n := float64(b.N)
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(float64(lostSum)/n, "lost-writes")
			b.ReportMetric(float64(lostWorst), "worst-lost-writes")
			b.ReportMetric(float64(riskSum)/n, "acked-after-cut")
			b.ReportMetric(lastSum.Seconds()/n, "s-last-ack")
			b.ReportMetric(lastWorst.Seconds(), "s-worst-last-ack")
			b.ReportMetric(newSum.Seconds()/n, "s-new-primary")
		})
	}
}

// isolation is one run of the isolated-primary partition.
type isolation struct {
	lost, atRisk        int
	lastAck, newPrimary time.Duration
}

// isolatePrimary starts a cluster with o and the workload, isolates the
// primary as BenchmarkIsolatedPrimaryLoss describes, and returns what the
// application lost. It fails b on a split brain, a phantom or unexpected
// row, or when the cluster does not recover.
func isolatePrimary(b *testing.B, o testcluster.Options) isolation {
	c, w := start(b, o)
	defer c.Close()
	old := c.WaitPrimary(b, 10*time.Second)
	cut, resume := isolate(b, c, w, old)
	defer resume()
	// Until the isolated primary stops taking writes, at most until its
	// lease runs out: pg-ha kills its server processes; Patroni asks for a
	// fast shutdown, which stops writes at once but waits for the WAL
	// senders to hand the stopped receivers everything, so the postmaster
	// stays until they resume.
	pid := old.PID(testcluster.Postmaster)
	for deadline := cut.Add(o.TTL); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if np := old.PID(testcluster.Postmaster); np == 0 || np != pid || shuttingDown(old) {
			break
		}
	}
	stopped := time.Since(cut)
	resume()
	np := c.WaitPrimary(b, o.TTL+15*time.Second, old)
	first := w.WaitAck(b, testcluster.MultiWriter, np.Name, cut, 15*time.Second)
	old.HealEtcd()
	w.Mark("heal " + old.Name + "'s partition from etcd")
	streamErr := c.ReplicasStreamingWithin(60 * time.Second)
	h := w.Stop()
	final, _ := testcluster.FinalWrites(b, c)
	testcluster.AssertSafe(b, h, final, testcluster.LossPolicy{AllowAsync: true, MaxBytes: math.MaxUint64, Within: time.Hour})
	if streamErr != nil {
		b.Fatalf("after healing %s: %v", old.Name, streamErr)
	}

	last, ok := lastAck(h, old.Name, h.End)
	if !ok || !last.Ack.After(cut) {
		b.Fatalf("%s acknowledged no write after the cut", old.Name)
	}
	r := isolation{lost: len(testcluster.Lost(h, final).Lost), lastAck: last.Ack.Sub(cut), newPrimary: first.Ack.Sub(cut)}
	for _, wr := range h.ByNode(old.Name) {
		if wr.Ack.After(cut) {
			r.atRisk++
		}
	}
	b.Logf("isolated primary %s: postmaster stopped or replaced %s after the cut, last acknowledged write %s after it; %d writes acknowledged after the cut, %d acknowledged writes lost; new primary %s took the first write %s after the cut",
		old.Name, stopped.Round(time.Millisecond), r.lastAck.Round(time.Millisecond), r.atRisk, r.lost, np.Name, r.newPrimary.Round(time.Millisecond))
	return r
}

// shuttingDown reports whether n's postmaster is shutting down: the status
// line PostgreSQL keeps in postmaster.pid says "stopping".
func shuttingDown(n *testcluster.Node) bool {
	b, err := os.ReadFile(filepath.Join(n.DataDir, "postmaster.pid"))
	if err != nil {
		return false
	}
	lines := strings.Split(string(b), "\n")
	return len(lines) > 7 && strings.TrimSpace(lines[7]) == "stopping"
}
