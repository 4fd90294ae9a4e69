package systemd

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pg-ha/pg-ha/lib/clock"
	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/dcs"
	"github.com/pg-ha/pg-ha/lib/dcs/etcdtest"
	"github.com/pg-ha/pg-ha/lib/state"
)

const (
	bootstrapUnit = "pg-ha-bootstrap@.service"
	// The timing of the test node: pg-ha's defaults.
	realTTL      = 8 * time.Second
	realLoopWait = 1 * time.Second
)

// requirePostgres returns PostgreSQL 15's bin directory, or skips (fails
// with PGHA_TEST_DISALLOW_SKIP set) when it or the postgres user is missing
// or the test cannot switch to that user.
func requirePostgres(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("PGHA_PG_BIN_DIR")
	if bin == "" {
		bin = "/usr/lib/postgresql/15/bin"
	}
	var problem string
	if _, err := os.Stat(filepath.Join(bin, "postgres")); err != nil {
		problem = fmt.Sprintf("PostgreSQL 15 is not installed: %v", err)
	} else if _, err := user.Lookup("postgres"); err != nil {
		problem = fmt.Sprintf("no postgres user: %v", err)
	} else if os.Geteuid() != 0 {
		problem = "the test must run as root to start the programs as postgres, as the units do"
	}
	if problem == "" {
		return bin
	}
	if os.Getenv("PGHA_TEST_DISALLOW_SKIP") != "" {
		t.Fatal(problem)
	}
	t.Skip(problem)
	return ""
}

// realNode is one node run by the units' ExecStart= lines: its YAML, data
// directory and an etcd client to watch it with.
type realNode struct {
	yaml    []byte
	dataDir string
	dcs     *dcs.Client
}

func newRealNode(t *testing.T, etcd *etcdtest.Etcd, pgBin string) *realNode {
	t.Helper()
	// The data directory's parent belongs to postgres, as /var/lib/postgresql does.
	parent := sharedTempDir(t)
	pgUser, err := user.Lookup("postgres")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(pgUser.Uid)
	gid, _ := strconv.Atoi(pgUser.Gid)
	if err := os.Chown(parent, uid, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(parent, 0o700); err != nil {
		t.Fatal(err)
	}
	n := &realNode{dataDir: filepath.Join(parent, "15", "main")}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	hosts := strings.TrimPrefix(etcd.Endpoints()[0], "http://")
	// As lib/testcluster writes a node's YAML; the unix socket goes to the
	// runtime directory (the default), PrivateTmp= forbids /tmp.
	n.yaml = []byte(fmt.Sprintf(`# written by systemd/realpipe_test.go
scope: pipe
namespace: /service/
name: node1
restapi: {listen: 127.0.0.1:1, connect_address: 127.0.0.1:1}
etcd3: {hosts: %q}
bootstrap:
  dcs:
    ttl: %g
    loop_wait: %g
    retry_timeout: 3
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters: {fsync: "off", wal_log_hints: "on"}
  initdb: [{encoding: UTF8}, data-checksums]
  pg_hba:
    - local all all trust
    - host replication replicator 127.0.0.1/32 md5
    - host all all 127.0.0.1/32 md5
postgresql:
  listen: %s
  connect_address: %s
  data_dir: %s
  bin_dir: %s
  authentication:
    superuser: {username: postgres, password: su-secret}
    replication: {username: replicator, password: repl-secret}
    rewind: {username: rewind_user, password: rewind-secret}
`, hosts, realTTL.Seconds(), realLoopWait.Seconds(), addr, addr, n.dataDir, pgBin))
	cfg, _, err := config.Parse(n.yaml, []string{})
	if err != nil {
		t.Fatalf("the test's node YAML: %v", err)
	}
	if d := cfg.Dynamic(); d.TTL != realTTL || d.LoopWait != realLoopWait {
		t.Fatalf("ttl %v, loop_wait %v; want %v, %v", d.TTL, d.LoopWait, realTTL, realLoopWait)
	}
	n.dcs, err = dcs.NewFromConfig(context.Background(), cfg, zerolog.Nop(), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.dcs.Close() })
	return n
}

// leader returns the leader key, nil if there is none.
func (n *realNode) leader(t *testing.T) *dcs.Leader {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cl, err := n.dcs.Get(ctx)
	if err != nil {
		t.Fatalf("read the cluster from etcd: %v", err)
	}
	return cl.Leader
}

// supervised reads pg-supervise's state file.
func (h *pipeHarness) supervised() (state.Supervise, error) {
	return state.ReadSupervise(h.runtimeDir)
}

// waitSupervised polls pg-supervise's state file until ok holds.
func (h *pipeHarness) waitSupervised(what string, d time.Duration, ok func(state.Supervise) bool) state.Supervise {
	h.t.Helper()
	deadline := time.Now().Add(d)
	for {
		st, err := h.supervised()
		if err == nil && ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("within %v: no %s; %s: %+v (%v)", d, what, state.SuperviseFile, st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// leading is a state file showing PostgreSQL running as the primary with
// pg-lockd's lead in force.
func leading(st state.Supervise) bool {
	return st.State == state.Running && st.Role == "primary" && st.Desired == "lead" && st.PID > 0 && st.Deadline > 0
}

// procStart returns the start time of process pid (clock ticks since boot),
// which tells a process from a later one with the same pid; ok is false
// when no such process runs (a zombie counts as gone).
func procStart(pid int) (start string, ok bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", false
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 || f[0] == "Z" {
		return "", false
	}
	return f[19], true
}

// groupMembers lists the live processes of process group pgid.
func groupMembers(pgid int) []int {
	var pids []int
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(data)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 2 && f[0] != "Z" && f[2] == strconv.Itoa(pgid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// statuses returns the STATUS= values among a daemon's notifications.
func statuses(d *daemon) []string {
	var out []string
	for _, n := range d.notifications() {
		if s, ok := strings.CutPrefix(n, "STATUS="); ok {
			out = append(out, s)
		}
	}
	return out
}

// checkNotified fails t unless d sent READY=1, at least one STATUS= and,
// from its main loop right after READY=1, WATCHDOG=1 (WATCHDOG_USEC is set).
func checkNotified(t *testing.T, d *daemon, name string) {
	t.Helper()
	notes := d.notifications()
	if !slices.Contains(notes, "READY=1") || len(statuses(d)) == 0 || !slices.Contains(notes, "WATCHDOG=1") {
		t.Errorf("%s (pid %d) sent %q; want READY=1, STATUS=… and WATCHDOG=1", name, d.pid(), notes)
	}
}

// waitExit waits up to d for the daemon to exit and returns its error.
func waitExit(t *testing.T, dm *daemon, d time.Duration) error {
	t.Helper()
	select {
	case <-dm.done:
		return dm.err
	case <-time.After(d):
		t.Fatalf("%s (pid %d) did not exit within %v:\n%s", dm.unit, dm.pid(), d, dm.logText())
		return nil
	}
}

// TestRolePipeRealPrograms runs the real pg-bootstrap, pg-supervise and
// pg-lockd from the units' ExecStart= lines, connected by the FIFO of
// pg-ha-role@.socket held open by the test as systemd holds it, as the
// postgres user, against a real etcd, and checks that:
//
//   - role lines flow: pg-supervise runs PostgreSQL as the primary under the
//     lead pg-lockd sends;
//   - pg-lockd killed and started again alone feeds the same pg-supervise
//     and keeps the leader key: same key (lease, revision), same
//     pg-supervise, same postmaster, no state change — no failover;
//   - pg-supervise killed (SIGKILL) takes PostgreSQL with it, and a new
//     pg-supervise starts PostgreSQL again as the primary from the lines the
//     running pg-lockd keeps sending;
//   - every daemon sends READY=1 and STATUS= to its NOTIFY_SOCKET, and on
//     SIGTERM (pg-lockd first, as the units order the stop) STOPPING=1,
//     the leader handing over before it exits.
func TestRolePipeRealPrograms(t *testing.T) {
	pgBin := requirePostgres(t)
	bin := buildPrograms(t)
	etcd := etcdtest.Start(t)
	node := newRealNode(t, etcd, pgBin)
	h := newPipeHarness(t, pipeEnds{dir: bin, config: node.yaml})
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := filepath.Glob(filepath.Join(h.root, "logs", "*.log"))
			for _, l := range logs {
				b, _ := os.ReadFile(l)
				if len(b) > 6000 {
					b = b[len(b)-6000:]
				}
				t.Logf("%s (tail):\n%s", filepath.Base(l), b)
			}
		}
	})
	h.makeFIFO(true)
	begin := time.Now()
	step := func(format string, a ...any) {
		t.Logf("%5.1fs: %s", time.Since(begin).Seconds(), fmt.Sprintf(format, a...))
	}

	// pg-ha-bootstrap@: the oneshot before both daemons.
	boot := h.mustStart(bootstrapUnit)
	if err := waitExit(t, boot, 60*time.Second); err != nil {
		t.Fatalf("pg-bootstrap: %v\n%s", err, boot.logText())
	}
	if _, err := os.Stat(filepath.Join(node.dataDir, "PG_VERSION")); err != nil {
		t.Fatalf("pg-bootstrap exited 0 without a data directory: %v", err)
	}
	step("pg-bootstrap made the data directory")

	// Start order of the units: pg-supervise, then pg-lockd.
	sup1 := h.mustStart(supervise)
	lockd1 := h.mustStart(lockd)
	st1 := h.waitSupervised("PostgreSQL running as primary with desired lead", 30*time.Second, leading)
	ld := node.leader(t)
	if ld == nil || ld.Name != "node1" {
		t.Fatalf("leader key %+v while pg-supervise runs a primary; want node1", ld)
	}
	pm1 := st1.PID
	pm1Start, ok := procStart(pm1)
	if !ok {
		t.Fatalf("postmaster %d of the state file does not run", pm1)
	}
	if owner, err := os.Stat(fmt.Sprintf("/proc/%d", pm1)); err == nil {
		if pgUser, _ := user.Lookup("postgres"); pgUser != nil && strconv.Itoa(int(owner.Sys().(*syscall.Stat_t).Uid)) != pgUser.Uid {
			t.Errorf("postmaster %d does not run as postgres", pm1)
		}
	}
	step("lines flow: postmaster %d primary, leader key lease %x revision %d", pm1, ld.Lease, ld.ModRevision)

	// pg-lockd restarts alone: no failover.
	supStatuses := len(statuses(sup1))
	lockd1.kill()
	restarted := clock.Now()
	lockd2 := h.mustStart(lockd)
	// A lead line from the new pg-lockd carries a deadline of at least its
	// start + ttl - margin; the old one's last deadline is earlier.
	minDeadline := restarted.Add(realTTL - config.FenceMargin)
	st2 := h.waitSupervised("a lead from the restarted pg-lockd at the same pg-supervise", 10*time.Second, func(st state.Supervise) bool {
		return st.Deadline >= minDeadline
	})
	if !sup1.running() {
		t.Fatalf("pg-supervise exited when pg-lockd restarted: %v\n%s", sup1.err, sup1.logText())
	}
	if !leading(st2) || st2.PID != pm1 || st2.Token != st1.Token {
		t.Errorf("after pg-lockd restarted: %+v; want still primary, postmaster %d, token %d", st2, pm1, st1.Token)
	}
	if s, ok := procStart(pm1); !ok || s != pm1Start {
		t.Errorf("postmaster %d restarted or gone when pg-lockd restarted", pm1)
	}
	if ld2 := node.leader(t); ld2 == nil || *ld2 != *ld {
		t.Errorf("leader key %+v after pg-lockd restarted; want unchanged %+v (no failover)", ld2, ld)
	}
	if after := statuses(sup1); len(after) != supStatuses {
		t.Errorf("pg-supervise changed state while pg-lockd restarted: %q", after[supStatuses:])
	}
	if hb, err := state.ReadLockd(h.runtimeDir); err != nil || hb.Role != "leader" || hb.LeaseID != ld.Lease {
		t.Errorf("%s of the restarted pg-lockd: %+v, %v; want leader on lease %x", state.LockdFile, hb, err, ld.Lease)
	}
	if !strings.Contains(lockd2.logText(), "adopted the lease of the previous pg-lockd") {
		t.Errorf("the restarted pg-lockd did not log adopting the lease")
	}
	step("pg-lockd %d → %d: same pg-supervise %d, postmaster %d, leader key", lockd1.pid(), lockd2.pid(), sup1.pid(), pm1)

	// pg-supervise killed: PostgreSQL goes with it (its parent-death signal
	// here, the unit's control group under systemd). A zombie counts as
	// gone: it runs no code. Until PID 1 reaps it, PostgreSQL takes it for
	// a running postmaster (kill(pid, 0) succeeds on a zombie) and refuses
	// to start on the data directory ("lock file postmaster.pid already
	// exists"), so the new pg-supervise may need a few attempts where PID 1
	// reaps slowly; systemd reaps at once.
	sup1.kill()
	for deadline := time.Now().Add(5 * time.Second); ; {
		_, alive := procStart(pm1)
		members := groupMembers(pm1)
		if !alive && len(members) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("5s after pg-supervise was killed: postmaster %d alive %v, its process group %v", pm1, alive, members)
		}
		time.Sleep(10 * time.Millisecond)
	}
	step("pg-supervise %d killed: postmaster %d and its backends are gone", sup1.pid(), pm1)

	// A new pg-supervise starts PostgreSQL again from pg-lockd's lines.
	restarted = clock.Now()
	sup2 := h.mustStart(supervise)
	minDeadline = restarted.Add(realTTL - config.FenceMargin)
	st3 := h.waitSupervised("PostgreSQL primary again under the new pg-supervise", 30*time.Second, func(st state.Supervise) bool {
		return leading(st) && st.PID != pm1 && st.Deadline >= minDeadline
	})
	if !lockd2.running() {
		t.Fatalf("pg-lockd exited while pg-supervise restarted: %v\n%s", lockd2.err, lockd2.logText())
	}
	if _, ok := procStart(st3.PID); !ok {
		t.Errorf("postmaster %d of the state file does not run", st3.PID)
	}
	if !slices.Contains(statuses(sup2), "running, primary") {
		t.Errorf("the new pg-supervise's STATUS= lines %q lack \"running, primary\"", statuses(sup2))
	}
	ld3 := node.leader(t)
	if ld3 == nil || ld3.Name != "node1" {
		t.Errorf("leader key %+v after pg-supervise restarted; want node1", ld3)
	}
	kept := "kept"
	if ld3 != nil && *ld3 != *ld {
		kept = fmt.Sprintf("taken again (revision %d → %d)", ld.ModRevision, ld3.ModRevision)
	}
	step("pg-supervise %d: postmaster %d primary again, leader key %s", sup2.pid(), st3.PID, kept)

	for _, d := range []struct {
		d    *daemon
		name string
	}{{sup1, "pg-supervise"}, {lockd1, "pg-lockd"}, {lockd2, "restarted pg-lockd"}, {sup2, "restarted pg-supervise"}} {
		checkNotified(t, d.d, d.name)
	}

	// Stop as systemd stops the node: pg-lockd first (a leader has
	// PostgreSQL stop taking writes, then releases the key), then
	// pg-supervise.
	for _, d := range []*daemon{lockd2, sup2} {
		if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := waitExit(t, d, 30*time.Second); err != nil {
			t.Errorf("%s (pid %d) after SIGTERM: %v", d.unit, d.pid(), err)
		}
		if !slices.Contains(d.notifications(), "STOPPING=1") {
			t.Errorf("%s (pid %d) sent no STOPPING=1: %q", d.unit, d.pid(), d.notifications())
		}
	}
	if ld := node.leader(t); ld != nil {
		t.Errorf("leader key %+v left after pg-lockd stopped", ld)
	}
	if _, alive := procStart(st3.PID); alive {
		t.Errorf("postmaster %d still runs after pg-supervise stopped", st3.PID)
	}
	step("stopped: pg-lockd released the key, pg-supervise stopped PostgreSQL")
	if n := strings.Count(sup2.logText(), "postmaster exited unexpectedly"); n > 0 {
		t.Logf("the new pg-supervise needed %d more attempts to start PostgreSQL (%d lock-file refusals: the old postmaster was not reaped yet)",
			n, strings.Count(sup2.logText(), `lock file "postmaster.pid" already exists`))
	}
}
