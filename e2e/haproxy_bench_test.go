package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pg-ha/pg-ha/lib/testcluster"
)

// BenchmarkHAProxyWriteGap measures what an application sees of a
// planned switchover two ways at once, on a three-node cluster whose nodes
// run pg-healthd: through the real HAProxy running examples/haproxy.cfg
// (its :5000, the primary) and directly, through a multi-host connection
// string (target_session_attrs=read-write). Both writers insert every
// 5–10 ms and reconnect 50 ms after any error. s-haproxy-gap and
// s-direct-gap are their longest times between two acknowledged writes
// (mean over the iterations; s-worst-* the worst), s-extra the mean of
// the difference. Each iteration is a fresh cluster and one switchover;
// ns/op is meaningless and reported as 0. No acknowledged write of either
// writer may be lost.
//
//	PGHA_TEST_DISALLOW_SKIP=1 go test ./e2e -run '^$' -bench BenchmarkHAProxyWriteGap -benchtime 5x
func BenchmarkHAProxyWriteGap(b *testing.B) {
	bin := testcluster.HAProxyBinary(b)
	var haSum, haWorst, dSum, dWorst time.Duration
	for range b.N {
		c, w := start(b, testcluster.Options{Healthd: true})
		p := c.WaitPrimary(b, 10*time.Second)
		c.WaitReplicasStreaming(b, 30*time.Second)
		rw, ro, stats := testcluster.FreePort(b), testcluster.FreePort(b), testcluster.FreePort(b)
		testcluster.StartHAProxy(b, bin, haproxyConfig(b, c, rw, ro, stats))
		want := map[string]string{}
		for _, n := range c.Nodes {
			want["primary/"+n.Name] = "DOWN"
		}
		want["primary/"+p.Name] = "UP"
		testcluster.WaitHAProxyStatus(b, fmt.Sprintf("http://127.0.0.1:%d", stats), 15*time.Second, want)

		hw := startHAProxyWriter(b, p, through(p, rw))
		time.Sleep(time.Second) // both writers flow
		to := replicasOf(c, p)[0]
		w.Mark("switchover to " + to.Name)
		out, stderr, code := pgFailover(b, p, "--to", to.Name)
		if code != 0 || !strings.HasPrefix(out, "switchover to "+to.Name+" done") {
			b.Fatalf("pg-failover --to %s: exit %d, %q, %s", to.Name, code, out, lastLine(stderr))
		}
		time.Sleep(time.Second) // both writers flow on the new primary
		acks := hw.stop()
		h := finishLossless(b, c, w)
		direct := testcluster.MaxGap(h, testcluster.MultiWriter)
		viaHAProxy := hw.maxGap(h.End)
		hw.checkKept(b, c)
		b.Logf("longest gap: through HAProxy %s, multi-host %s (%d writes through HAProxy)",
			viaHAProxy.Round(time.Millisecond), direct.Round(time.Millisecond), acks)
		haSum, dSum = haSum+viaHAProxy, dSum+direct
		haWorst, dWorst = max(haWorst, viaHAProxy), max(dWorst, direct)
		c.Close()
	}
	n := time.Duration(b.N)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric((haSum / n).Seconds(), "s-haproxy-gap")
	b.ReportMetric(haWorst.Seconds(), "s-worst-haproxy-gap")
	b.ReportMetric((dSum / n).Seconds(), "s-direct-gap")
	b.ReportMetric(dWorst.Seconds(), "s-worst-direct-gap")
	b.ReportMetric(((haSum - dSum) / n).Seconds(), "s-extra")
}

// haproxyTable holds the HAProxy writer's rows, apart from the workload's.
const haproxyTable = "pgha_haproxy_writes"

// haproxyWriter inserts seq = 1, 2, … through HAProxy, as the workload's
// writers do, and records when each insert was acknowledged.
type haproxyWriter struct {
	dsn   string
	done  chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	acked []time.Time
	seqs  []int64
	start time.Time
}

func startHAProxyWriter(t testing.TB, p *testcluster.Node, dsn string) *haproxyWriter {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+haproxyTable+" (seq bigint PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	hw := &haproxyWriter{dsn: dsn, done: make(chan struct{}), start: time.Now()}
	hw.wg.Add(1)
	go hw.run()
	t.Cleanup(func() { hw.stop() })
	return hw
}

func (hw *haproxyWriter) run() {
	defer hw.wg.Done()
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	pause := func(d time.Duration) bool {
		select {
		case <-hw.done:
			return false
		case <-time.After(d):
			return true
		}
	}
	seq := int64(1)
	for {
		select {
		case <-hw.done:
			return
		default:
		}
		if conn == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
			c, err := pgx.Connect(ctx, hw.dsn)
			cancel()
			if err != nil {
				if !pause(50 * time.Millisecond) {
					return
				}
				continue
			}
			conn = c
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := conn.Exec(ctx, "INSERT INTO "+haproxyTable+" (seq) VALUES ($1)", seq)
		cancel()
		if err != nil {
			// A new number after any failure: one that committed unheard
			// is then never confused with a later one.
			seq++
			conn.Close(context.Background())
			conn = nil
			if !pause(50 * time.Millisecond) {
				return
			}
			continue
		}
		hw.mu.Lock()
		hw.acked, hw.seqs = append(hw.acked, time.Now()), append(hw.seqs, seq)
		hw.mu.Unlock()
		seq++
		if !pause(time.Duration(5+time.Now().UnixNano()%6) * time.Millisecond) {
			return
		}
	}
}

// stop ends the writer (an insert in flight finishes) and returns how many
// inserts were acknowledged. It may be called more than once.
func (hw *haproxyWriter) stop() int {
	hw.mu.Lock()
	select {
	case <-hw.done:
	default:
		close(hw.done)
	}
	hw.mu.Unlock()
	hw.wg.Wait()
	hw.mu.Lock()
	defer hw.mu.Unlock()
	return len(hw.acked)
}

// maxGap is the longest time between two acknowledgements, counting the
// time from the last one to end.
func (hw *haproxyWriter) maxGap(end time.Time) time.Duration {
	hw.mu.Lock()
	defer hw.mu.Unlock()
	var m time.Duration
	for i := 1; i < len(hw.acked); i++ {
		m = max(m, hw.acked[i].Sub(hw.acked[i-1]))
	}
	if n := len(hw.acked); n > 0 && end.After(hw.acked[n-1]) {
		m = max(m, end.Sub(hw.acked[n-1]))
	}
	return m
}

// checkKept fails t unless every acknowledged insert is on the primary.
func (hw *haproxyWriter) checkKept(t testing.TB, c *testcluster.Cluster) {
	t.Helper()
	p := c.WaitPrimary(t, 30*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := p.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, "SELECT seq FROM "+haproxyTable)
	if err != nil {
		t.Fatal(err)
	}
	have := map[int64]bool{}
	for rows.Next() {
		var s int64
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		have[s] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	hw.mu.Lock()
	defer hw.mu.Unlock()
	var lost []int64
	for _, s := range hw.seqs {
		if !have[s] {
			lost = append(lost, s)
		}
	}
	if len(lost) > 0 {
		t.Errorf("%d inserts acknowledged through HAProxy are not on the primary %s: %v", len(lost), p.Name, head(lost))
	}
}
