package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/dcs/etcdtest"
	"github.com/pg-ha/pg-ha/lib/testcluster"
)

// etcdLoadWindow is how long BenchmarkEtcdLoad counts etcd's work;
// PGHA_BENCH_WINDOW (a Go duration, such as 20s) shortens it for a trial
// run.
const etcdLoadWindow = 60 * time.Second

// etcdLoadSettle is how long a cluster runs, once it has a primary and
// streaming replicas, before the window opens: start-up writes (member keys
// published for the first time, slots, the history) are not steady state.
const etcdLoadSettle = 10 * time.Second

// etcdLoadSetups are the clusters BenchmarkEtcdLoad measures: pg-ha at its
// defaults and at Patroni's default timings, with pg-healthd on every node
// as in production; and Patroni on the same machine with the same
// one-second loop and at its own defaults.
var etcdLoadSetups = []struct {
	name string
	o    testcluster.Options
}{
	{"defaults", testcluster.Options{Healthd: true}},
	{"ttl30-loop10", testcluster.Options{TTL: 30 * time.Second, LoopWait: 10 * time.Second, RetryTimeout: 10 * time.Second, Healthd: true}},
	{"patroni-loop1", testcluster.Options{TTL: testcluster.DefaultTTL, LoopWait: time.Second, RetryTimeout: testcluster.DefaultRetryTimeout, Patroni: true}},
	{"patroni-defaults", testcluster.Options{TTL: 30 * time.Second, LoopWait: 10 * time.Second, RetryTimeout: 10 * time.Second, Patroni: true}},
}

// BenchmarkEtcdLoad measures the steady-state load one quiet three-node
// cluster (no application writes) puts on etcd, as etcd itself counts it
// in its Prometheus metrics, read at both ends of a window (60s by default,
// PGHA_BENCH_WINDOW) that starts 10s after the cluster has a primary and
// two streaming replicas:
//
//   - req/s: finished gRPC calls (grpc_server_handled_total, every method
//     and type; requests through etcd's JSON gateway, which Patroni uses,
//     are gRPC calls too). A stream that stays open, such as a watch, is
//     not a call until it ends; its messages are logged per method.
//   - watch-msgs/s: requests clients send on open watch streams (watch
//     creations, cancellations, progress requests), which req/s does not
//     count.
//   - writes/s: raft proposals committed (etcd_server_proposals_committed_total).
//   - etcd-cpu-ms/s: CPU time etcd used (user and system).
//
// etcd-alone is the same etcd with no client, for the CPU time etcd spends
// on its own.
//
// Nothing of the benchmark talks to etcd during the window: the harness's
// own client is idle (no watch, no periodic request) and the metrics come
// over plain HTTP, which etcd does not count as gRPC calls. Each iteration
// is a fresh cluster; ns/op is meaningless and reported as 0.
//
//	PGHA_TEST_DISALLOW_SKIP=1 go test ./e2e -run '^$' -bench EtcdLoad -benchtime 1x -timeout 30m -v
func BenchmarkEtcdLoad(b *testing.B) {
	window := etcdLoadWindow
	if s := os.Getenv("PGHA_BENCH_WINDOW"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			b.Fatalf("PGHA_BENCH_WINDOW=%q: want a positive Go duration such as 20s", s)
		}
		window = d
	}
	// etcd alone: what it costs with no client at all (its CPU time is
	// mostly the raft ticks of the harness's fast elections).
	b.Run("etcd-alone", func(b *testing.B) {
		var sum etcdLoad
		for range b.N {
			e := etcdtest.Start(b)
			sum = sum.add(etcdWindow(b, e, window))
			e.Stop()
		}
		reportEtcdLoad(b, sum)
	})
	for _, tc := range etcdLoadSetups {
		b.Run(tc.name, func(b *testing.B) {
			var sum etcdLoad
			for range b.N {
				sum = sum.add(measureEtcdLoad(b, tc.o, window))
			}
			reportEtcdLoad(b, sum)
		})
	}
}

// reportEtcdLoad reports the means of b.N windows' rates, whose sum is
// given.
func reportEtcdLoad(b *testing.B, sum etcdLoad) {
	n := float64(b.N)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(sum.reqs/n, "req/s")
	b.ReportMetric(sum.writes/n, "writes/s")
	b.ReportMetric(sum.watchMsgs/n, "watch-msgs/s")
	b.ReportMetric(sum.cpuMS/n, "etcd-cpu-ms/s")
}

// etcdLoad is one window's rates, per second.
type etcdLoad struct {
	reqs, writes, watchMsgs, cpuMS float64
}

func (l etcdLoad) add(o etcdLoad) etcdLoad {
	return etcdLoad{l.reqs + o.reqs, l.writes + o.writes, l.watchMsgs + o.watchMsgs, l.cpuMS + o.cpuMS}
}

// measureEtcdLoad starts a cluster with o, lets it settle, and returns
// etcd's load over window.
func measureEtcdLoad(b *testing.B, o testcluster.Options, window time.Duration) etcdLoad {
	b.Helper()
	c := testcluster.Start(b, o)
	defer c.Close()
	leader := c.WaitPrimary(b, 10*time.Second)
	c.WaitReplicasStreaming(b, 30*time.Second)
	procs := []testcluster.Proc{testcluster.Lockd, testcluster.Supervise, testcluster.Healthd}
	if o.Patroni {
		procs = []testcluster.Proc{testcluster.Patroni}
	}
	running := func(when string) {
		b.Helper()
		for _, n := range c.Nodes {
			for _, p := range procs {
				if n.PID(p) == 0 {
					b.Fatalf("%s: %s of %s is not running", when, p, n.Name)
				}
			}
		}
	}
	running("before the window")
	time.Sleep(etcdLoadSettle)

	l := etcdWindow(b, c.Etcd, window) // nothing but the cluster talks to etcd now

	running("after the window")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	name, err := c.Leader(ctx)
	cancel()
	if err != nil || name != leader.Name {
		b.Fatalf("the leader changed during the window: %s before, %q after (%v)", leader.Name, name, err)
	}
	if err := c.ReplicasStreamingWithin(5 * time.Second); err != nil {
		b.Fatalf("after the window: %v", err)
	}
	return l
}

// etcdWindow reads e's metrics and CPU time, sleeps for window, reads them
// again, logs the load by gRPC method and returns it.
func etcdWindow(b *testing.B, e *etcdtest.Etcd, window time.Duration) etcdLoad {
	b.Helper()
	url := e.Endpoints()[0] + "/metrics"
	m0 := scrapeMetrics(b, url)
	cpu0, t0 := procCPU(e.PID()), time.Now()
	time.Sleep(window)
	m1 := scrapeMetrics(b, url)
	cpu1, t1 := procCPU(e.PID()), time.Now()
	secs := t1.Sub(t0).Seconds()
	d := m1.delta(m0)
	l := etcdLoad{
		reqs:   d.sum("grpc_server_handled_total", nil) / secs,
		writes: d.sum("etcd_server_proposals_committed_total", nil) / secs,
		watchMsgs: d.sum("grpc_server_msg_received_total", func(l map[string]string) bool {
			return l["grpc_service"] == "etcdserverpb.Watch"
		}) / secs,
		cpuMS: (cpu1 - cpu0) * 1000 / secs,
	}
	b.Logf("over %.1fs: %.2f req/s, %.2f writes/s, %.2f watch-msgs/s, etcd %.1f CPU-ms/s",
		secs, l.reqs, l.writes, l.watchMsgs, l.cpuMS)
	b.Logf("per method (calls finished/s, messages received/s, messages sent/s; streams open at the end):\n%s",
		perMethod(d, m1, secs))
	return l
}

// metrics is one scrape of a Prometheus text exposition: every sample by
// its series (the metric name with its labels, as exposed).
type metrics map[string]sample

type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// scrapeMetrics reads url's Prometheus text exposition.
func scrapeMetrics(b *testing.B, url string) metrics {
	b.Helper()
	hc := &http.Client{Timeout: 5 * time.Second}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get(url)
	if err != nil {
		b.Fatalf("etcd metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		b.Fatalf("etcd metrics: %s: %s", resp.Status, body)
	}
	m, err := parseMetrics(resp.Body)
	if err != nil {
		b.Fatalf("etcd metrics: %v", err)
	}
	return m
}

// parseMetrics parses the Prometheus text format as etcd writes it: one
// sample a line, `name{label="value",…} value`, comments starting with #.
func parseMetrics(r io.Reader) (metrics, error) {
	m := metrics{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			return nil, fmt.Errorf("no value: %q", line)
		}
		series, val := line[:i], line[i+1:]
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			return nil, fmt.Errorf("value of %q: %w", series, err)
		}
		s := sample{name: series, labels: map[string]string{}, value: v}
		if name, rest, ok := strings.Cut(series, "{"); ok {
			s.name = name
			if s.labels, err = parseLabels(strings.TrimSuffix(rest, "}")); err != nil {
				return nil, fmt.Errorf("labels of %q: %w", series, err)
			}
		}
		m[series] = s
	}
	return m, sc.Err()
}

// parseLabels parses `a="x",b="y"` (with \" \\ \n escapes in the values).
func parseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	for s != "" {
		name, rest, ok := strings.Cut(s, "=")
		if !ok || !strings.HasPrefix(rest, `"`) {
			return nil, fmt.Errorf("malformed at %q", s)
		}
		rest = rest[1:]
		var v strings.Builder
		i := 0
		for ; i < len(rest) && rest[i] != '"'; i++ {
			if rest[i] == '\\' && i+1 < len(rest) {
				i++
				if rest[i] == 'n' {
					v.WriteByte('\n')
					continue
				}
			}
			v.WriteByte(rest[i])
		}
		if i == len(rest) {
			return nil, fmt.Errorf("unterminated value at %q", s)
		}
		out[strings.TrimSpace(name)] = v.String()
		s = strings.TrimPrefix(rest[i+1:], ",")
	}
	return out, nil
}

// delta returns m minus before, series by series (a series new in m counts
// from 0).
func (m metrics) delta(before metrics) metrics {
	out := metrics{}
	for k, s := range m {
		s.value -= before[k].value
		out[k] = s
	}
	return out
}

// sum adds up the samples of metric name whose labels keep accepts (every
// one if keep is nil).
func (m metrics) sum(name string, keep func(map[string]string) bool) float64 {
	var t float64
	for _, s := range m {
		if s.name == name && (keep == nil || keep(s.labels)) {
			t += s.value
		}
	}
	return t
}

// perMethod renders, one gRPC method a line, the calls it finished, the
// messages it received and sent (per second of secs, from the deltas d),
// and for streaming methods the streams still open at the end (from end).
func perMethod(d, end metrics, secs float64) string {
	type row struct{ handled, recv, sent, open float64 }
	rows := map[string]*row{}
	get := func(s sample) *row {
		k := s.labels["grpc_service"] + "/" + s.labels["grpc_method"] + " (" + s.labels["grpc_type"] + ")"
		if rows[k] == nil {
			rows[k] = &row{}
		}
		return rows[k]
	}
	for _, s := range d {
		switch s.name {
		case "grpc_server_handled_total":
			get(s).handled += s.value
		case "grpc_server_msg_received_total":
			get(s).recv += s.value
		case "grpc_server_msg_sent_total":
			get(s).sent += s.value
		}
	}
	for _, s := range end {
		switch s.name {
		case "grpc_server_started_total":
			get(s).open += s.value
		case "grpc_server_handled_total":
			get(s).open -= s.value
		}
	}
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(rows)) {
		r := rows[k]
		if r.handled == 0 && r.recv == 0 && r.sent == 0 && r.open == 0 {
			continue
		}
		fmt.Fprintf(&b, "  %-50s %7.2f calls/s %7.2f recv/s %7.2f sent/s", k, r.handled/secs, r.recv/secs, r.sent/secs)
		if !strings.HasSuffix(k, "(unary)") {
			fmt.Fprintf(&b, "  %3.0f open", r.open)
		}
		b.WriteByte('\n')
	}
	return b.String()
}
