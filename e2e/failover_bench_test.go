package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/testcluster"
)

// BenchmarkSwitchover measures a planned switchover with pg-failover while
// the application writes through a multi-host connection string
// (target_session_attrs=read-write): s-max-gap is the longest time between
// two acknowledged writes of that writer, s-command the time from starting
// pg-failover to its exit 0 (the candidate leads, runs as a primary, and the
// request is gone). Each iteration is a fresh cluster and one switchover;
// ns/op is meaningless and reported as 0. No acknowledged write may be lost.
//
//	PGHA_TEST_DISALLOW_SKIP=1 go test ./e2e -run '^$' -bench BenchmarkSwitchover -benchtime 5x
func BenchmarkSwitchover(b *testing.B) {
	benchSwitchover(b, testcluster.Options{}, func(c *testcluster.Cluster, p *testcluster.Node) *testcluster.Node {
		return replicasOf(c, p)[0]
	})
}

// benchSwitchover runs BenchmarkSwitchover's iterations on clusters started
// with o, switching over to the replica pick chooses.
func benchSwitchover(b *testing.B, o testcluster.Options, pick func(c *testcluster.Cluster, p *testcluster.Node) *testcluster.Node) {
	var gapSum, gapWorst, cmdSum, cmdWorst time.Duration
	for range b.N {
		c, w := start(b, o)
		p := c.WaitPrimary(b, 10*time.Second)
		to := pick(c, p)
		w.Mark("switchover to " + to.Name)
		began := time.Now()
		out, stderr, code := pgFailover(b, p, "--to", to.Name)
		cmd := time.Since(began)
		if code != 0 || !strings.HasPrefix(out, "switchover to "+to.Name+" done") {
			b.Fatalf("pg-failover --to %s: exit %d, %q, %s", to.Name, code, out, lastLine(stderr))
		}
		time.Sleep(500 * time.Millisecond) // writes flow on the new primary
		h := finishLossless(b, c, w)
		gap := testcluster.MaxGap(h, testcluster.MultiWriter)
		b.Logf("%s writer's longest gap %s; pg-failover exited 0 after %s", testcluster.MultiWriter,
			gap.Round(time.Millisecond), cmd.Round(time.Millisecond))
		gapSum, cmdSum = gapSum+gap, cmdSum+cmd
		gapWorst, cmdWorst = max(gapWorst, gap), max(cmdWorst, cmd)
		c.Close()
	}
	n := time.Duration(b.N)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric((gapSum / n).Seconds(), "s-max-gap")
	b.ReportMetric(gapWorst.Seconds(), "s-worst-gap")
	b.ReportMetric((cmdSum / n).Seconds(), "s-command")
	b.ReportMetric(cmdWorst.Seconds(), "s-worst-command")
}
