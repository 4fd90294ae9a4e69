// Command fleet measures what many pg-ha clusters cost one etcd: it runs N
// simulated clusters of three nodes each against a single etcd member and
// reports etcd's request and write rates, its CPU, the memory of the
// pg-lockd processes, and the leader-key takeover time after one simulated
// primary host dies.
//
// Each node runs the real pg-lockd, built from this tree, with its own YAML
// (pg-ha's default timing) and runtime directory. PostgreSQL is replaced by
// a stand-in served by this program on the node's unix socket: it answers
// pg-lockd's status statement (and IDENTIFY_SYSTEM on a replication
// connection) like a primary or a standby. This program also plays
// pg-supervise: it reads pg-lockd's role lines on its stdout, turns the
// stand-in into a primary shortly after a lead line (with a new timeline)
// and into a streaming standby on a follow line, fences a primary whose
// lead deadline passed, and writes supervise.json. pg-bootstrap's part, the
// initialize and config keys, is written before the nodes start.
//
//	go run ./bench/fleet -n 10,100,300 -window 60s
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/pg-ha/pg-ha/lib/state"
)

type options struct {
	sizes        []int
	window       time.Duration
	settle       time.Duration
	kills        int
	promoteDelay time.Duration
	startRate    float64
	dir          string
	etcdDir      string
	etcdBin      string
	etcdArgs     []string
	keep         bool
}

// result is one row of the report.
type report struct {
	n, procs           int
	startup            time.Duration // all clusters led by a primary
	reqs, rpcs, writes float64       // per second
	methods            map[string]float64
	etcdCPU            float64 // fraction of one core
	etcdRSS            int64
	dbGrowth           float64 // bytes per second of etcd's backend
	dbSize             int64
	lockdRSS, lockdPSS int64   // sums
	lockdCPU           float64 // fraction of one core, all pg-lockd together
	driverCPU          float64
	leaderChanges      int // clusters whose leader key was created anew during the window
	takeovers          []time.Duration
	primaryAfter       []time.Duration
	failed             []string
}

func main() {
	var o options
	var sizes, etcdArgs string
	flag.StringVar(&sizes, "n", "10", "numbers of clusters to run, one after the other (comma-separated)")
	flag.DurationVar(&o.window, "window", 60*time.Second, "measurement window once every cluster has settled")
	flag.DurationVar(&o.settle, "settle", 10*time.Second, "wait after every cluster has a primary, before measuring")
	flag.IntVar(&o.kills, "kills", 3, "simulated primary hosts killed (in different clusters, at once) for the takeover time")
	flag.DurationVar(&o.promoteDelay, "promote-delay", 150*time.Millisecond, "how long a stand-in takes to become primary after a lead line")
	flag.Float64Var(&o.startRate, "start-rate", 60, "pg-lockd processes started per second")
	flag.StringVar(&o.dir, "dir", "/dev/shm", "parent of the nodes' runtime directories (tmpfs keeps pg-lockd's state files off the disk)")
	flag.StringVar(&o.etcdDir, "etcd-dir", os.TempDir(), "parent of etcd's data directory (a disk, as in production)")
	flag.StringVar(&o.etcdBin, "etcd", "etcd", "etcd binary")
	flag.StringVar(&etcdArgs, "etcd-args", "", "extra etcd flags, space-separated")
	flag.BoolVar(&o.keep, "keep", false, "keep the runtime directories and logs")
	flag.Parse()
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "fleet: -n %q: want positive numbers\n", s)
			os.Exit(2)
		}
		o.sizes = append(o.sizes, n)
	}
	o.etcdArgs = strings.Fields(etcdArgs)
	raiseFileLimit()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	work, err := os.MkdirTemp(o.dir, "pgha-fleet-")
	if err != nil {
		fatal(err)
	}
	defer func() {
		if !o.keep {
			_ = os.RemoveAll(work)
		}
	}()
	bin, err := buildLockd(work)
	if err != nil {
		_ = os.RemoveAll(work)
		fatal(err)
	}
	var reports []report
	for _, n := range o.sizes {
		if ctx.Err() != nil {
			break
		}
		fmt.Fprintf(os.Stderr, "fleet: %d clusters (%d pg-lockd)\n", n, 3*n)
		r := runFleet(ctx, o, bin, filepath.Join(work, fmt.Sprintf("n%d", n)), n)
		reports = append(reports, r)
		printRow(os.Stderr, r)
	}
	printTable(reports, o)
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "fleet:", err)
	os.Exit(1)
}

// raiseFileLimit lifts the soft limit on open files to the hard one: this
// process holds a socket and a pipe per node, and pg-lockd inherits it.
func raiseFileLimit() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

// buildLockd builds pg-lockd from the tree this program runs in.
func buildLockd(dir string) (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	cmd := exec.Command("go", "build", "-tags=grpcnotrace", "-o", dir, "./cmd/pg-lockd")
	cmd.Dir, cmd.Stdout, cmd.Stderr = root, os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/pg-lockd: %w", err)
	}
	return filepath.Join(dir, "pg-lockd"), nil
}

func runFleet(ctx context.Context, o options, bin, dir string, n int) (r report) {
	r.n, r.procs = n, 3*n
	fail := func(format string, a ...any) report {
		msg := fmt.Sprintf(format, a...)
		fmt.Fprintln(os.Stderr, "fleet:", msg)
		r.failed = append(r.failed, msg)
		return r
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fail("%v", err)
	}
	etcd, err := startEtcd(o.etcdBin, o.etcdDir, filepath.Join(dir, "etcd.log"), o.etcdArgs)
	if err != nil {
		return fail("start etcd: %v", err)
	}
	defer etcd.stop()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{etcd.host}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return fail("etcd client: %v", err)
	}
	defer cli.Close()

	clusters := make([]*cluster, n)
	var all []*node
	for i := range clusters {
		c := &cluster{scope: fmt.Sprintf("fleet-%04d", i+1), sysid: 7_000_000_000_000_000_000 + rand.Uint64N(1<<40)}
		for j := range 3 {
			nd := &node{c: c, name: fmt.Sprintf("m%d", j+1), port: 20000 + 3*i + j, timeline: 1,
				basePos: 0x3000000, baseAt: time.Now(), started: time.Now()}
			nd.dir = filepath.Join(dir, c.scope, nd.name)
			c.nodes = append(c.nodes, nd)
			all = append(all, nd)
		}
		clusters[i] = c
		// What pg-bootstrap leaves: the system identifier and the
		// dynamic configuration (pg-ha's defaults).
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := cli.Txn(pctx).Then(
			clientv3.OpPut("/service/"+c.scope+"/initialize", strconv.FormatUint(c.sysid, 10)),
			clientv3.OpPut("/service/"+c.scope+"/config", `{"ttl":8,"loop_wait":1,"retry_timeout":3,"maximum_lag_on_failover":1048576,"postgresql":{"use_pg_rewind":true,"use_slots":true,"parameters":{}}}`),
		).Commit()
		cancel()
		if err != nil {
			return fail("write %s's initialize and config keys: %v", c.scope, err)
		}
	}
	defer func() {
		for _, nd := range all {
			if nd.cmd != nil && nd.cmd.Process != nil {
				_ = nd.cmd.Process.Signal(syscall.SIGKILL)
			}
			if nd.standin != nil && nd.standin.ln != nil {
				nd.standin.kill()
			}
		}
		waitGone(all)
		if !o.keep {
			_ = os.RemoveAll(dir)
		}
	}()

	// The stand-in's supervise.json, once a second per node, as
	// pg-supervise publishes it.
	supCtx, stopSup := context.WithCancel(ctx)
	defer stopSup()
	var supWG sync.WaitGroup
	defer supWG.Wait()
	defer stopSup()

	t0 := time.Now()
	every := time.Duration(float64(time.Second) / o.startRate)
	// A machine too small for the fleet shows first as a start that falls
	// far behind its schedule: give up then rather than wait for a
	// collapse (etcd starved, every lease and watch timing out).
	limit := 3*time.Duration(len(all))*every + 30*time.Second
	for i, nd := range all {
		if ctx.Err() != nil {
			return fail("interrupted after starting %d of %d pg-lockd", i, len(all))
		}
		if time.Since(t0) > limit {
			load, _ := os.ReadFile("/proc/loadavg")
			return fail("gave up: only %d of %d pg-lockd started after %v (planned %v); load average %s",
				i, len(all), time.Since(t0).Round(time.Second), time.Duration(len(all))*every, strings.TrimSpace(string(load)))
		}
		if err := nd.start(bin, etcd.host, o.promoteDelay); err != nil {
			return fail("start %s/%s (node %d of %d): %v", nd.c.scope, nd.name, i+1, len(all), err)
		}
		supWG.Add(1)
		go func(nd *node) {
			defer supWG.Done()
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-supCtx.Done():
					return
				case <-t.C:
				}
				if nd.standin.isDead() {
					return
				}
				_ = state.Write(nd.dir, state.SuperviseFile, nd.superviseState())
			}
		}(nd)
		time.Sleep(every)
	}
	fmt.Fprintf(os.Stderr, "fleet: %d pg-lockd started in %.1fs; waiting for a primary in every cluster\n", len(all), time.Since(t0).Seconds())
	if err := waitLed(ctx, cli, clusters, 60*time.Second+time.Duration(n)*200*time.Millisecond); err != nil {
		return fail("%v", err)
	}
	r.startup = time.Since(t0)
	if exited := exitedNodes(all); len(exited) > 0 {
		return fail("pg-lockd exited: %s (see its pg-lockd.log)", strings.Join(exited, ", "))
	}
	fmt.Fprintf(os.Stderr, "fleet: every cluster has a primary after %.1fs; settling %v\n", r.startup.Seconds(), o.settle)
	select {
	case <-ctx.Done():
		return fail("interrupted")
	case <-time.After(o.settle):
	}

	// The window: nothing else talks to etcd meanwhile. A leader key
	// created anew during it (another create revision) is a leader change
	// the fleet made on its own: a sign that loops or renewals fell behind.
	lr0, err := leaderRevs(ctx, cli)
	if err != nil {
		return fail("read leader keys: %v", err)
	}
	m0, err := etcd.scrape()
	if err != nil {
		return fail("scrape etcd: %v", err)
	}
	c0, _, _, _ := procStat(etcd.cmd.Process.Pid)
	l0 := lockdCPU(all)
	d0, _, _, _ := procStat(os.Getpid())
	w0 := time.Now()
	select {
	case <-ctx.Done():
		return fail("interrupted")
	case <-time.After(o.window):
	}
	m1, err := etcd.scrape()
	if err != nil {
		return fail("scrape etcd: %v", err)
	}
	secs := time.Since(w0).Seconds()
	c1, erss, _, _ := procStat(etcd.cmd.Process.Pid)
	l1 := lockdCPU(all)
	d1, _, _, _ := procStat(os.Getpid())
	if lr1, err := leaderRevs(ctx, cli); err == nil {
		for scope, rev := range lr0 {
			if lr1[scope] != rev {
				r.leaderChanges++
			}
		}
	}
	rate := func(name string, match ...string) float64 {
		return (m1.sum(name, match...) - m0.sum(name, match...)) / secs
	}
	r.reqs = rate("grpc_server_msg_received_total")
	r.rpcs = rate("grpc_server_handled_total")
	r.writes = rate("etcd_server_proposals_committed_total")
	r.etcdCPU = (c1 - c0).Seconds() / secs
	if v := m1.sum("process_cpu_seconds_total") - m0.sum("process_cpu_seconds_total"); v > 0 {
		r.etcdCPU = v / secs
	}
	r.etcdRSS = erss
	r.dbSize = int64(m1.sum("etcd_mvcc_db_total_size_in_bytes"))
	r.dbGrowth = (m1.sum("etcd_mvcc_db_total_size_in_bytes") - m0.sum("etcd_mvcc_db_total_size_in_bytes")) / secs
	r.methods = map[string]float64{}
	b0, b1 := m0.byMethod("grpc_server_msg_received_total"), m1.byMethod("grpc_server_msg_received_total")
	for k, v := range b1 {
		if d := (v - b0[k]) / secs; d > 0.05 {
			r.methods[k] = d
		}
	}
	r.lockdCPU = (l1 - l0).Seconds() / secs
	r.driverCPU = (d1 - d0).Seconds() / secs
	for _, nd := range all {
		if _, rss, pss, err := procStat(nd.pid()); err == nil {
			r.lockdRSS += rss
			r.lockdPSS += pss
		}
	}
	if exited := exitedNodes(all); len(exited) > 0 {
		r.failed = append(r.failed, "pg-lockd exited during the window: "+strings.Join(exited, ", "))
	}

	// A primary host dies in each of o.kills clusters at once.
	r.takeovers, r.primaryAfter, err = takeover(ctx, cli, clusters, min(o.kills, n))
	if err != nil {
		r.failed = append(r.failed, err.Error())
	}
	return r
}

func (s *standin) isDead() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dead
}

func lockdCPU(all []*node) time.Duration {
	var t time.Duration
	for _, nd := range all {
		if c, _, _, err := procStat(nd.pid()); err == nil {
			t += c
		}
	}
	return t
}

func exitedNodes(all []*node) []string {
	var out []string
	for _, nd := range all {
		if nd.pid() != 0 && nd.standin != nil && !nd.standin.isDead() {
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", nd.pid())); err != nil || strings.Contains(string(b), ") Z ") {
				out = append(out, nd.c.scope+"/"+nd.name)
			}
		}
	}
	return out
}

// waitGone waits until every pg-lockd has been reaped.
func waitGone(all []*node) {
	deadline := time.Now().Add(10 * time.Second)
	for _, nd := range all {
		for nd.pid() != 0 && time.Now().Before(deadline) {
			if syscall.Kill(nd.pid(), 0) != nil {
				break
			}
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", nd.pid())); err == nil && strings.Contains(string(b), ") Z ") {
				time.Sleep(10 * time.Millisecond) // reaped by its Wait goroutine shortly
				continue
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// leaderOf reads every cluster's leader key and the roles its members
// publish, in one range over /service/.
func leaders(ctx context.Context, cli *clientv3.Client) (leader map[string]string, roles map[string]string, err error) {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := cli.Get(rctx, "/service/", clientv3.WithPrefix())
	if err != nil {
		return nil, nil, err
	}
	leader, roles = map[string]string{}, map[string]string{}
	for _, kv := range resp.Kvs {
		parts := strings.Split(strings.TrimPrefix(string(kv.Key), "/service/"), "/")
		switch {
		case len(parts) == 2 && parts[1] == "leader":
			leader[parts[0]] = string(kv.Value)
		case len(parts) == 3 && parts[1] == "members":
			roles[parts[0]+"/"+parts[2]] = memberRole(kv.Value)
		}
	}
	return leader, roles, nil
}

// memberRole picks "role" out of a member key's JSON without depending on
// the member type.
func memberRole(v []byte) string {
	s := string(v)
	i := strings.Index(s, `"role":"`)
	if i < 0 {
		return ""
	}
	s = s[i+8:]
	if j := strings.IndexByte(s, '"'); j >= 0 {
		return s[:j]
	}
	return ""
}

// leaderRevs returns the create revision of every cluster's leader key.
func leaderRevs(ctx context.Context, cli *clientv3.Client) (map[string]int64, error) {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := cli.Get(rctx, "/service/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, kv := range resp.Kvs {
		parts := strings.Split(strings.TrimPrefix(string(kv.Key), "/service/"), "/")
		if len(parts) == 2 && parts[1] == "leader" {
			out[parts[0]] = kv.CreateRevision
		}
	}
	return out, nil
}

// waitLed waits until every cluster has a leader whose member key says
// primary and two other members.
func waitLed(ctx context.Context, cli *clientv3.Client, clusters []*cluster, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		leader, roles, err := leaders(ctx, cli)
		var missing []string
		if err == nil {
			for _, c := range clusters {
				l := leader[c.scope]
				ok := l != "" && roles[c.scope+"/"+l] == "primary"
				for _, nd := range c.nodes {
					if _, has := roles[c.scope+"/"+nd.name]; !has {
						ok = false
					}
				}
				if !ok {
					missing = append(missing, c.scope)
				}
			}
			if len(missing) == 0 {
				return nil
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			if err != nil {
				return fmt.Errorf("not every cluster led by a primary within %v: %v", timeout, err)
			}
			if len(missing) > 5 {
				missing = append(missing[:5], "…")
			}
			return fmt.Errorf("not every cluster led by a primary within %v: %s", timeout, strings.Join(missing, ", "))
		}
		time.Sleep(time.Second)
	}
}

// takeover kills the primary host of k clusters spread over the fleet at
// once and returns, for each, the time until another member holds the
// leader key, and until its member key says primary.
func takeover(ctx context.Context, cli *clientv3.Client, clusters []*cluster, k int) (key, primary []time.Duration, err error) {
	leader, _, err := leaders(ctx, cli)
	if err != nil {
		return nil, nil, fmt.Errorf("takeover: read leaders: %w", err)
	}
	type victim struct {
		c    *cluster
		n    *node
		rev  int64
		keyT time.Duration
		pT   time.Duration
	}
	var vs []*victim
	for i := range k {
		c := clusters[(i*len(clusters))/k]
		for _, nd := range c.nodes {
			if nd.name == leader[c.scope] {
				vs = append(vs, &victim{c: c, n: nd})
			}
		}
	}
	if len(vs) < k {
		return nil, nil, errors.New("takeover: a chosen cluster has no leader")
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	resp, err := cli.Get(rctx, "/service/fleet-", clientv3.WithPrefix(), clientv3.WithCountOnly())
	cancel()
	if err != nil {
		return nil, nil, fmt.Errorf("takeover: %w", err)
	}
	rev := resp.Header.Revision
	wctx, stopWatch := context.WithTimeout(ctx, 90*time.Second)
	defer stopWatch()
	var wg sync.WaitGroup
	start := make(chan time.Time)
	for _, v := range vs {
		wg.Add(1)
		ch := cli.Watch(clientv3.WithRequireLeader(wctx), "/service/"+v.c.scope+"/", clientv3.WithPrefix(), clientv3.WithRev(rev+1))
		go func(v *victim) {
			defer wg.Done()
			t0 := <-start
			newLeader := ""
			for wr := range ch {
				for _, ev := range wr.Events {
					name := strings.TrimPrefix(string(ev.Kv.Key), "/service/"+v.c.scope+"/")
					if name == "leader" && ev.Type == clientv3.EventTypePut && string(ev.Kv.Value) != v.n.name && newLeader == "" {
						newLeader = string(ev.Kv.Value)
						v.keyT = time.Since(t0)
					}
					if newLeader != "" && name == "members/"+newLeader && memberRole(ev.Kv.Value) == "primary" {
						v.pT = time.Since(t0)
						return
					}
				}
			}
		}(v)
	}
	time.Sleep(200 * time.Millisecond) // the watches are registered
	t0 := time.Now()
	for _, v := range vs {
		v.n.kill()
	}
	for range vs {
		start <- t0
	}
	wg.Wait()
	for _, v := range vs {
		if v.keyT == 0 {
			err = fmt.Errorf("takeover: no new leader in %s within 90s", v.c.scope)
			continue
		}
		key = append(key, v.keyT)
		if v.pT > 0 {
			primary = append(primary, v.pT)
		}
	}
	slices.Sort(key)
	slices.Sort(primary)
	return key, primary, err
}

func printRow(w *os.File, r report) {
	fmt.Fprintf(w, "fleet: N=%d done: %.0f req/s, %.0f writes/s, etcd CPU %.0f%%, takeover %v\n",
		r.n, r.reqs, r.writes, 100*r.etcdCPU, durs(r.takeovers))
}

func durs(ds []time.Duration) string {
	if len(ds) == 0 {
		return "-"
	}
	var s []string
	for _, d := range ds {
		s = append(s, fmt.Sprintf("%.2f", d.Seconds()))
	}
	return strings.Join(s, "/") + " s"
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

func printTable(rs []report, o options) {
	fmt.Printf("\npg-ha fleet benchmark: N clusters x 3 pg-lockd (default ttl 8 s, loop_wait 1 s, retry_timeout 3 s) against one etcd member\n")
	fmt.Printf("window %v after settling %v; %d CPUs; etcd data in %s, runtime dirs in %s\n\n", o.window, o.settle, runtime.NumCPU(), o.etcdDir, o.dir)
	fmt.Printf("%6s %6s %9s %9s %9s %8s %9s %10s %12s %12s %9s %9s %16s %16s\n",
		"N", "procs", "req/s", "rpc/s", "writes/s", "etcdCPU", "etcdRSS", "db MiB/min", "lockd RSS", "lockd PSS", "lockdCPU", "standin", "takeover s", "primary s")
	for _, r := range rs {
		fmt.Printf("%6d %6d %9.0f %9.0f %9.0f %7.0f%% %9s %10.1f %12s %12s %8.0f%% %8.0f%% %16s %16s\n",
			r.n, r.procs, r.reqs, r.rpcs, r.writes, 100*r.etcdCPU, mib(r.etcdRSS), r.dbGrowth*60/(1<<20),
			mib(r.lockdRSS), mib(r.lockdPSS), 100*r.lockdCPU, 100*r.driverCPU, durs(r.takeovers), durs(r.primaryAfter))
	}
	fmt.Printf("\nreq/s: gRPC messages etcd received (unary requests and each message on a stream: keepalives, watch requests);\n")
	fmt.Printf("rpc/s: gRPC calls completed; writes/s: raft proposals committed; etcdCPU, lockdCPU (all pg-lockd), standin (this\n")
	fmt.Printf("program: stand-ins and pg-supervise's part) in %% of one core; lockd RSS/PSS: sums over every pg-lockd;\n")
	fmt.Printf("takeover: a primary host killed (pg-lockd SIGKILL, its PostgreSQL gone) until another member holds the leader key;\n")
	fmt.Printf("primary: until that member's key says role primary. One value per killed cluster, sorted.\n")
	for _, r := range rs {
		if len(r.methods) > 0 {
			keys := make([]string, 0, len(r.methods))
			for k := range r.methods {
				keys = append(keys, k)
			}
			sort.Slice(keys, func(i, j int) bool { return r.methods[keys[i]] > r.methods[keys[j]] })
			var parts []string
			for _, k := range keys {
				parts = append(parts, fmt.Sprintf("%s %.0f", k, r.methods[k]))
			}
			fmt.Printf("N=%d messages/s by method: %s; per cluster %.1f req/s, %.2f writes/s\n", r.n, strings.Join(parts, ", "), r.reqs/float64(r.n), r.writes/float64(r.n))
		}
		if r.startup > 0 {
			fmt.Printf("N=%d every cluster led by a primary %.1fs after the first start; leader changes during the window: %d\n",
				r.n, r.startup.Seconds(), r.leaderChanges)
		}
		for _, f := range r.failed {
			fmt.Printf("N=%d FAILED: %s\n", r.n, f)
		}
	}
}
