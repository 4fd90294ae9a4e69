package elector_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/clock"
	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/dcs/etcdtest"
	"github.com/pg-ha/pg-ha/lib/elector"
	"github.com/pg-ha/pg-ha/lib/logx/logxtest"
	"github.com/pg-ha/pg-ha/lib/pgdata"
	"github.com/pg-ha/pg-ha/lib/rolepipe"
	"github.com/pg-ha/pg-ha/lib/state"
)

// cancelOnWatchdog is a Notifier whose first watchdog ping (taken in the
// first loop, after the lease step and before etcd is read) stops the
// elector: the SIGTERM that reaches a restarted pg-lockd before its first
// decision.
type cancelOnWatchdog struct {
	once   sync.Once
	cancel context.CancelFunc
}

func (n *cancelOnWatchdog) Ready() error                    { return nil }
func (n *cancelOnWatchdog) Status(string) error             { return nil }
func (n *cancelOnWatchdog) Stopping() error                 { return nil }
func (n *cancelOnWatchdog) WatchdogInterval() time.Duration { return 0 }
func (n *cancelOnWatchdog) Watchdog() error {
	n.once.Do(n.cancel)
	return nil
}

// TestShutdownBeforeFirstDecisionKeepsKey: a restarted pg-lockd adopts the
// lease of its predecessor, which carries the leader key, and is stopped
// before it has read the cluster. PostgreSQL may still be primary under the
// predecessor's lead line (postmaster.pid names a live process group and the
// server cannot be asked), so pg-lockd must not revoke the lease — which
// would delete the leader key and let another node promote — before it has
// evidence that writes stopped. It asks for the stop first, and without
// evidence leaves the key to expire.
func TestShutdownBeforeFirstDecisionKeepsKey(t *testing.T) {
	etcd := etcdtest.Start(t)
	dir := t.TempDir()
	runtimeDir := filepath.Join(dir, "run")
	socketDir := filepath.Join(dir, "sockets") // no PostgreSQL listens here
	dataDir := filepath.Join(dir, "data")
	for _, d := range []string{runtimeDir, socketDir, dataDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// A server process of the data directory (a stand-in: sleep, named
	// postgres, working in it) and a postmaster.pid naming it: the server
	// may run.
	stand := standInServer(t, dataDir)
	pid := fmt.Sprintf("%d\n%s\n", stand, dataDir)
	if err := os.WriteFile(filepath.Join(dataDir, "postmaster.pid"), []byte(pid), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := config.Parse([]byte(fmt.Sprintf(`
scope: shutdown
namespace: /service/
name: node1
etcd3: {hosts: %q}
bootstrap:
  dcs: {ttl: 4, loop_wait: 1, retry_timeout: 2}
postgresql:
  listen: 127.0.0.1:%d
  data_dir: %s
  parameters: {unix_socket_directories: %s}
`, strings.TrimPrefix(etcd.Endpoints()[0], "http://"), freePort(t), dataDir, socketDir)), []string{})
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, cfg)
	owner, log, client := h.owner, h.log, h.client

	// The predecessor's lease and leader key, and its heartbeat.
	ctx := context.Background()
	lease, err := client.Grant(ctx, 4*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	token, err := client.AcquireLeader(ctx, "node1", lease.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := state.Write(runtimeDir, state.LockdFile, state.Lockd{Role: "leader", LeaseID: lease.ID, Token: token}); err != nil {
		t.Fatal(err)
	}

	lines := &logxtest.Buffer{}
	wctx, stopWriter := context.WithCancel(context.Background())
	w := rolepipe.NewWriter(wctx, lines, log)
	defer func() { stopWriter(); <-w.Done() }()
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	node := &pgdata.Node{Cfg: cfg, RuntimeDir: runtimeDir, Owner: owner}
	e := elector.New(cfg, node, client, w, clock.System{}, &cancelOnWatchdog{cancel: cancel}, log)
	done := make(chan error, 1)
	go func() { done <- e.Run(rctx) }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return within 20s of its cancellation")
	}

	cl, err := client.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cl.Leader == nil || cl.Leader.Lease != lease.ID || cl.Leader.CreateRevision != token {
		t.Errorf("leader key after stopping without evidence that PostgreSQL is read-only: %+v; want node1's key (token %d) left on lease %x", cl.Leader, token, lease.ID)
	}
	time.Sleep(100 * time.Millisecond) // the writer goroutine
	if !strings.Contains(lines.String(), "stop reason=shutdown") {
		t.Errorf("no stop line sent before leaving; lines: %q", lines.String())
	}
	if strings.Contains(lines.String(), "lead ") {
		t.Errorf("a lead line was sent by a pg-lockd that never decided: %q", lines.String())
	}
}

// standInServer starts a process that pg-lockd takes for a server process
// of dataDir — sleep, copied under the name postgres, working in dataDir —
// and returns its pid; it is killed when the test ends.
func standInServer(t *testing.T, dataDir string) int {
	t.Helper()
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(sleep)
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(t.TempDir(), "postgres")
	if err := os.WriteFile(exe, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "600")
	cmd.Dir = dataDir
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd.Process.Pid
}
