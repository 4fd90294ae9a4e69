package elector_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pg-ha/pg-ha/lib/clock"
	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/dcs/etcdtest"
	"github.com/pg-ha/pg-ha/lib/elector"
	"github.com/pg-ha/pg-ha/lib/logx/logxtest"
	"github.com/pg-ha/pg-ha/lib/pgdata"
	"github.com/pg-ha/pg-ha/lib/rolepipe"
	"github.com/pg-ha/pg-ha/lib/sdnotify/sdnotifytest"
	"github.com/pg-ha/pg-ha/lib/state"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestElectorNotifies runs Elector.Run against a real etcd with no
// PostgreSQL: the node stays a replica without a leader. It checks:
//
//   - while the first loop hangs inside a call it makes (a Status that does
//     not return), neither READY=1 nor WATCHDOG=1 is sent; READY=1 comes
//     once that loop is done (its heartbeat file written);
//   - STATUS=replica, no leader, and pings at least every loop;
//   - with etcd frozen (SIGSTOP), every step of the loop is bounded by a
//     timeout and the loop pings between them, so pings keep coming well
//     within pg-ha-lockd@.service's WatchdogSec=5: no gap reaches
//     WatchdogSec/2 = 2.5 s at loop_wait 1 s. A hung pg-lockd is killed by
//     the watchdog, a slow etcd is not;
//   - STOPPING=1 on cancellation, after which the lease is revoked.
func TestElectorNotifies(t *testing.T) {
	etcd := etcdtest.Start(t)
	dir := t.TempDir()
	runtimeDir := filepath.Join(dir, "run")
	socketDir := filepath.Join(dir, "sockets") // no PostgreSQL listens here
	for _, d := range []string{runtimeDir, socketDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	cfg, _, err := config.Parse([]byte(fmt.Sprintf(`
scope: notify
namespace: /service/
name: node1
etcd3: {hosts: %q}
bootstrap:
  dcs: {ttl: 8, loop_wait: 1, retry_timeout: 3}
postgresql:
  listen: 127.0.0.1:%d
  data_dir: %s
  parameters: {unix_socket_directories: %s}
`, strings.TrimPrefix(etcd.Endpoints()[0], "http://"), freePort(t), filepath.Join(dir, "data"), socketDir)), []string{})
	if err != nil {
		t.Fatal(err)
	}
	if d := cfg.Dynamic(); d.LoopWait != time.Second {
		t.Fatalf("loop_wait %v, want 1s", d.LoopWait)
	}
	h := newHarness(t, cfg)
	owner, log, client := h.owner, h.log, h.client
	lines := &logxtest.Buffer{}
	wctx, stopWriter := context.WithCancel(context.Background())
	w := rolepipe.NewWriter(wctx, lines, log)
	defer func() { stopWriter(); <-w.Done() }()

	// WatchdogSec=5, as pg-ha-lockd@.service has it.
	const watchdogSec = 5 * time.Second
	// Each call records whether the first loop had written lockd.json; the
	// first Status blocks.
	f := &sdnotifytest.Recorder{File: filepath.Join(runtimeDir, state.LockdFile), Interval: watchdogSec / 2}
	blocked, release := f.BlockStatus("")
	defer release()
	node := &pgdata.Node{Cfg: cfg, RuntimeDir: runtimeDir, Owner: owner}
	e := elector.New(cfg, node, client, w, clock.System{}, f, log)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runDone := make(chan error, 1)
	go func() { runDone <- e.Run(ctx) }()
	returned := false
	defer func() {
		release()
		cancel()
		if !returned {
			<-runDone
		}
	}()

	// The first loop decides "standby" and hangs in Status.
	var hungAt time.Time
	select {
	case s := <-blocked:
		hungAt = time.Now()
		if s != "replica, no leader" {
			t.Errorf("first STATUS=%s, want STATUS=replica, no leader", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the first loop sent no STATUS within 10s: %v", f.Calls())
	}
	// Longer than WatchdogSec/2, so that a ping from anywhere but the main
	// loop would show.
	const hang = 3 * time.Second
	time.Sleep(hang)
	for _, n := range f.Calls() {
		if (n.Kind == "WATCHDOG" || n.Kind == "READY") && !n.At.Before(hungAt) {
			t.Fatalf("%v %v after the main loop hung: it must come from the main loop only", n, n.At.Sub(hungAt))
		}
	}
	releasedAt := time.Now()
	release()
	ready := f.Wait(t, 0, 5*time.Second, "READY=1 after the first loop", sdnotifytest.KindIs("READY"))
	notes := f.Calls()
	if !notes[ready].FileExisted {
		t.Errorf("READY=1 before the first loop wrote %s", state.LockdFile)
	}
	t.Logf("no ping for %v while the first loop hung; READY=1 %v after it returned",
		hang, notes[ready].At.Sub(releasedAt).Round(time.Millisecond))

	// A healthy loop: pings at least every loop_wait.
	time.Sleep(2500 * time.Millisecond)
	now := time.Now()
	healthy := f.Pings(notes[ready].At, now)
	if gap := sdnotifytest.MaxGap(healthy, notes[ready].At, now); gap > 1500*time.Millisecond {
		t.Errorf("%v without a ping at loop_wait 1s with etcd healthy", gap)
	}
	if !strings.Contains(lines.String(), "standby\n") {
		t.Errorf("no standby line written; lines: %q", lines.String())
	}
	cl, err := client.Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if m := cl.Member("node1"); m == nil || m.Data.State != "stopped" || cl.Leader != nil {
		t.Errorf("etcd after the first loops: member %+v, leader %+v; want node1 stopped, no leader", m, cl.Leader)
	}

	// etcd frozen: each step times out, and the loop pings between them.
	etcd.Pause()
	paused := time.Now()
	time.Sleep(6 * time.Second)
	etcd.Resume()
	resumed := time.Now()
	frozen := f.Pings(paused, resumed)
	gap := sdnotifytest.MaxGap(frozen, paused, resumed)
	t.Logf("etcd frozen for %v: %d pings, longest gap %v (budget WatchdogSec/2 = %v)",
		resumed.Sub(paused).Round(time.Millisecond), len(frozen), gap.Round(time.Millisecond), watchdogSec/2)
	if gap >= watchdogSec/2 {
		t.Errorf("%v without a ping while etcd was frozen: systemd would kill a pg-lockd that only waits for etcd", gap)
	}
	if !strings.Contains(h.logs.String(), "cannot read the cluster from etcd") {
		t.Errorf("the elector did not notice the frozen etcd")
	}

	// Back to normal within a few loops: the member key is written again.
	deadline := time.Now().Add(10 * time.Second)
	for {
		cl, err := client.Get(context.Background())
		if err == nil && cl.Member("node1") != nil && cl.Member("node1").ModRevision > 0 {
			if hb, err := state.ReadLockd(runtimeDir); err == nil && hb.EtcdOK && hb.Updated > clock.Now().Add(-2*time.Second) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the elector did not recover within 10s of etcd resuming: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// STOPPING=1 on cancellation; the lease is revoked on the way out.
	beforeStop := len(f.Calls())
	cancel()
	select {
	case err := <-runDone:
		returned = true
		if err != nil {
			t.Errorf("Run after cancellation: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s of cancellation")
	}
	f.CheckStopping(t, beforeStop)
	cl, err = client.Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if m := cl.Member("node1"); m != nil {
		t.Errorf("member key still there after the elector stopped (lease not revoked): %+v", m)
	}

	// STATUS only on a change.
	f.CheckStatusChanges(t)
}
