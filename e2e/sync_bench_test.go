package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/testcluster"
)

// pgbench's run: the simple-update script (-N) with 8 clients for 60s on
// the default scale, the same on every setup. PGHA_BENCH_PGBENCH_SECONDS
// shortens it for a trial run.
const (
	pgbenchClients = 8
	pgbenchThreads = 2
	pgbenchSeconds = 60
)

// syncTimings are pg-ha's default timings in synchronous_mode on.
var syncTimings = testcluster.Options{
	TTL: 8 * time.Second, LoopWait: time.Second, RetryTimeout: 3 * time.Second, SyncMode: testcluster.SyncOn,
}

// BenchmarkSyncPgbench measures commit throughput and latency with one
// synchronous standby: pgbench -N (8 clients, 60s, after pgbench -i) against
// the primary of a two-node pg-ha cluster in synchronous_mode on, and
// against a PostgreSQL 15 primary with one streaming standby set up by hand
// with the same synchronous_standby_names and the same server settings as
// the harness's nodes (fsync=off among them). The two alternate, each
// iteration a fresh setup of both, so that a noisy moment of the shared
// machine does not land on one side only. Reported: tps and ms-latency
// (pgbench's average) of each, and the CPU time pg-ha's stack used during
// its pgbench run: the six daemons (daemon-cpu-s), etcd (etcd-cpu-s) and
// the daemons' sessions on the servers (session-cpu-s). On two cores that
// pgbench and two servers saturate, every cycle they take is a cycle the
// commits do not get. ns/op is meaningless and reported as 0.
//
//	PGHA_TEST_DISALLOW_SKIP=1 go test ./e2e -run '^$' -bench SyncPgbench -benchtime 3x -timeout 30m -v
func BenchmarkSyncPgbench(b *testing.B) {
	var haTPS, haLat, plainTPS, plainLat, daemonCPU, etcdCPU, sessionCPU float64
	for i := range b.N {
		runHA := func() {
			o := syncTimings
			o.Nodes = 2
			c := testcluster.Start(b, o)
			defer c.Close()
			s := waitSynced(b, c, testcluster.SyncOn, 1)
			if i == 0 {
				b.Logf("primary %s: settings not at their defaults: %s", s.Leader.Name, changedSettings(b, s.Leader))
			}
			d0, e0, s0 := haCPU(b, c)
			t, l := pgbench(b, s.Leader.DSN())
			d1, e1, s1 := haCPU(b, c)
			b.Logf("pg-ha: %.0f tps, %.2f ms; during the run the daemons used %.2f CPU-s, etcd %.2f, the daemons' server sessions %.2f",
				t, l, d1-d0, e1-e0, s1-s0)
			haTPS, haLat = haTPS+t, haLat+l
			daemonCPU, etcdCPU, sessionCPU = daemonCPU+d1-d0, etcdCPU+e1-e0, sessionCPU+s1-s0
			if s2, err := c.Sync(context.Background()); err != nil || s2.Leader != s.Leader || !synced(s2, testcluster.SyncOn, 1) {
				b.Errorf("synchronous replication changed during pgbench: %s (%v)", s2, err)
			}
		}
		runPlain := func() {
			dsn, stop := plainSyncPair(b)
			defer stop()
			t, l := pgbench(b, dsn)
			b.Logf("hand-made pair: %.0f tps, %.2f ms", t, l)
			plainTPS, plainLat = plainTPS+t, plainLat+l
		}
		if i%2 == 0 {
			runHA()
			runPlain()
		} else {
			runPlain()
			runHA()
		}
	}
	n := float64(b.N)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(haTPS/n, "pgha-tps")
	b.ReportMetric(haLat/n, "pgha-ms-latency")
	b.ReportMetric(plainTPS/n, "plain-tps")
	b.ReportMetric(plainLat/n, "plain-ms-latency")
	b.ReportMetric(daemonCPU/n, "daemon-cpu-s")
	b.ReportMetric(etcdCPU/n, "etcd-cpu-s")
	b.ReportMetric(sessionCPU/n, "session-cpu-s")
}

// haCPU is the CPU seconds (user and system) the HA stack of c has used so
// far, in three parts: pg-lockd, pg-supervise and pg-healthd of every node;
// etcd; and the server sessions those daemons keep on every node (client
// backends not opened by pgbench).
func haCPU(b *testing.B, c *testcluster.Cluster) (daemons, etcd, sessions float64) {
	for _, n := range c.Nodes {
		for _, p := range []testcluster.Proc{testcluster.Lockd, testcluster.Supervise, testcluster.Healthd} {
			daemons += procCPU(n.PID(p))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var pids []int32
		err := n.QueryRow(ctx, `SELECT coalesce(array_agg(pid), '{}') FROM pg_stat_activity
			WHERE backend_type = 'client backend' AND application_name <> 'pgbench' AND pid <> pg_backend_pid()`, nil, &pids)
		cancel()
		if err != nil {
			b.Logf("%s: daemons' sessions: %v", n.Name, err)
		}
		for _, pid := range pids {
			sessions += procCPU(int(pid))
		}
	}
	return daemons, procCPU(c.Etcd.PID()), sessions
}

// procCPU returns the CPU seconds process pid has used, 0 if it is gone.
func procCPU(pid int) float64 {
	if pid <= 0 {
		return 0
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command name (which may hold spaces) start at
	// state; utime and stime are the 14th and 15th fields.
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+2:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return float64(u+st) / 100 // USER_HZ is 100 on Linux
}

// BenchmarkSyncNodeDeath is BenchmarkNodeDeath at pg-ha's default timings
// in synchronous_mode on; no acknowledged write may be lost.
func BenchmarkSyncNodeDeath(b *testing.B) {
	benchFault(b, syncTimings, func(b *testing.B, c *testcluster.Cluster, w *testcluster.Workload) {
		s := waitSynced(b, c, testcluster.SyncOn, 1)
		killed := w.Mark("kill node " + s.Leader.Name)
		s.Leader.KillAll()
		np := c.WaitPrimary(b, c.Options.TTL+15*time.Second, s.Leader)
		if !s.Lists(np.Name) {
			b.Errorf("%s promoted, not the synchronous standby: %s", np.Name, s)
		}
		w.WaitAck(b, testcluster.MultiWriter, np.Name, killed, 15*time.Second)
	})
}

// BenchmarkSyncSwitchover is BenchmarkSwitchover in synchronous_mode on,
// to the synchronous standby.
func BenchmarkSyncSwitchover(b *testing.B) {
	benchSwitchover(b, syncTimings, func(c *testcluster.Cluster, p *testcluster.Node) *testcluster.Node {
		return c.Node(waitSynced(b, c, testcluster.SyncOn, 1).Key.Standbys[0])
	})
}

var (
	tpsRE     = regexp.MustCompile(`(?m)^tps = ([0-9.]+) \(without initial connection time\)`)
	latencyRE = regexp.MustCompile(`(?m)^latency average = ([0-9.]+) ms`)
)

// pgbench initializes pgbench's tables through dsn and runs the
// simple-update script; it returns tps and the average latency in ms.
func pgbench(b *testing.B, dsn string) (tps, latencyMS float64) {
	b.Helper()
	secs := pgbenchSeconds
	if v := os.Getenv("PGHA_BENCH_PGBENCH_SECONDS"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			secs = n
		}
	}
	bin := filepath.Join(testcluster.PGBinDir, "pgbench")
	if out, err := exec.Command(bin, "-i", "-q", dsn).CombinedOutput(); err != nil {
		b.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "-N", "-c", strconv.Itoa(pgbenchClients), "-j", strconv.Itoa(pgbenchThreads),
		"-T", strconv.Itoa(secs), dsn).CombinedOutput()
	if err != nil {
		b.Fatalf("pgbench -N: %v\n%s", err, out)
	}
	b.Logf("pgbench -N -c %d -j %d -T %d:\n%s", pgbenchClients, pgbenchThreads, secs, out)
	t, ok1 := firstFloat(tpsRE, out)
	l, ok2 := firstFloat(latencyRE, out)
	if !ok1 || !ok2 {
		b.Fatalf("pgbench output without tps or latency:\n%s", out)
	}
	return t, l
}

func firstFloat(re *regexp.Regexp, out []byte) (float64, bool) {
	m := re.FindSubmatch(out)
	if m == nil {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(m[1]), 64)
	return f, err == nil
}

// changedSettings lists the server settings of n that are not at their
// built-in defaults, for comparing the two setups in the log.
func changedSettings(b *testing.B, n *testcluster.Node) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var s string
	err := n.QueryRow(ctx, `SELECT string_agg(name || '=' || setting, ' ' ORDER BY name) FROM pg_settings
		WHERE source NOT IN ('default', 'override', 'client', 'session') AND name NOT LIKE 'lc_%'`, nil, &s)
	if err != nil {
		return err.Error()
	}
	return s
}

// plainSync is a primary and a streaming standby of plain PostgreSQL 15,
// configured by hand as an administrator would, with the harness's server
// settings and synchronous_standby_names 'FIRST 1 (standby)'. PORT1, PORT2
// and DIR are filled in.
const plainSync = `set -eu
bin=BIN
dir=DIR
$bin/initdb -D $dir/primary -A trust -E UTF8 --data-checksums >/dev/null
cat >>$dir/primary/postgresql.conf <<EOF
listen_addresses = '127.0.0.1'
port = PORT1
unix_socket_directories = '$dir'
fsync = off
wal_keep_size = '256MB'
wal_log_hints = on
max_wal_senders = 10
max_replication_slots = 10
synchronous_commit = on
synchronous_standby_names = 'FIRST 1 (standby)'
EOF
$bin/pg_ctl -D $dir/primary -l $dir/primary.log -w start >/dev/null
$bin/psql -h 127.0.0.1 -p PORT1 -U postgres -d postgres -qc "SELECT pg_create_physical_replication_slot('standby')" >/dev/null
$bin/pg_basebackup -h 127.0.0.1 -p PORT1 -U postgres -D $dir/standby -X stream
cat >>$dir/standby/postgresql.conf <<EOF
port = PORT2
primary_conninfo = 'host=127.0.0.1 port=PORT1 user=postgres application_name=standby'
primary_slot_name = 'standby'
EOF
touch $dir/standby/standby.signal
$bin/pg_ctl -D $dir/standby -l $dir/standby.log -w start >/dev/null
`

// plainSyncPair starts plainSync and waits until the standby is the
// synchronous one; it returns the primary's connection string and a
// function that stops both and removes them.
func plainSyncPair(b *testing.B) (dsn string, stop func()) {
	b.Helper()
	testcluster.SkipUnlessAvailable(b)
	dir, err := os.MkdirTemp("", "pgha-plain-")
	if err != nil {
		b.Fatal(err)
	}
	if out, err := exec.Command("chown", "postgres:postgres", dir).CombinedOutput(); err != nil {
		b.Fatalf("chown %s: %v %s", dir, err, out)
	}
	p1, p2 := testcluster.FreePort(b), testcluster.FreePort(b)
	script := strings.NewReplacer("BIN", testcluster.PGBinDir, "DIR", dir,
		"PORT1", strconv.Itoa(p1), "PORT2", strconv.Itoa(p2)).Replace(plainSync)
	stop = func() {
		for _, d := range []string{"standby", "primary"} {
			exec.Command("runuser", "-u", "postgres", "--", testcluster.PGBinDir+"/pg_ctl",
				"-D", filepath.Join(dir, d), "-m", "immediate", "-w", "stop").Run()
		}
		os.RemoveAll(dir)
	}
	cmd := exec.Command("runuser", "-u", "postgres", "--", "bash", "-s")
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(script)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		stop()
		b.Fatalf("set up plain PostgreSQL primary and standby: %v\n%s", err, out.String())
	}
	dsn = fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres sslmode=disable", p1)
	deadline := time.Now().Add(30 * time.Second)
	for {
		q := exec.Command(testcluster.PGBinDir+"/psql", "-XAtc", "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby'", dsn)
		got, err := q.Output()
		if err == nil && strings.TrimSpace(string(got)) == "sync" {
			break
		}
		if time.Now().After(deadline) {
			stop()
			b.Fatalf("plain standby not synchronous within 30s: %q %v", got, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return dsn, stop
}
