package health

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pg-ha/pg-ha/lib/clock"
	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/pg"
	"github.com/pg-ha/pg-ha/lib/state"
)

// waitFor polls cond every 10 ms until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// run starts svc.Run until the test ends.
func run(t testing.TB, svc *Service) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return within 5 s of cancellation")
		}
	})
}

func TestServiceRefreshesStandalone(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var ticks atomic.Int64
	var mu sync.Mutex
	var summaries []string
	svc, err := New(Options{
		Name: "node1", Scope: "demo", Standalone: true, RuntimeDir: dir,
		// Nothing listens there: the socket file does not exist.
		PG:         pg.ConnParams{Host: filepath.Join(dir, "nosocket"), Port: 5432, User: "postgres"},
		PGInterval: 20 * time.Millisecond, TickInterval: 20 * time.Millisecond,
		Log:    zerolog.Nop(),
		OnTick: func() { ticks.Add(1) },
		OnChange: func(s string) {
			mu.Lock()
			summaries = append(summaries, s)
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if f := svc.Facts(); f.Running || f.Primary || f.Live != true {
		t.Fatalf("before Run: %+v", f)
	}
	if err := state.Write(dir, state.SuperviseFile, state.Supervise{State: state.Stopped, Updated: clock.Now()}); err != nil {
		t.Fatal(err)
	}
	run(t, svc)
	waitFor(t, 2*time.Second, "a refused connection and supervise.json", func() bool {
		s := svc.Snapshot()
		return s.PG.Refused && s.Supervise != nil && ticks.Load() >= 3
	})
	f := svc.Facts()
	if f.Running || f.State != "stopped" || !strings.Contains(f.Why, "not answering") {
		t.Errorf("facts %+v", f)
	}
	mu.Lock()
	if len(summaries) == 0 || summaries[len(summaries)-1] != "postgres stopped, /primary answers 503" {
		t.Errorf("summaries %q", summaries)
	}
	mu.Unlock()

	// A state file that changes is picked up; one that disappears is dropped.
	if err := state.Write(dir, state.SuperviseFile, state.Supervise{State: state.Fenced, Updated: clock.Now()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "the fenced state", func() bool { return svc.Facts().State == "fenced" })

	// A running pg-bootstrap's clone shows; its file left by a dead one
	// (here: too old) does not.
	boot := state.Bootstrap{State: state.CreatingReplica, PID: os.Getpid(), Progress: &state.Progress{Method: "basebackup", Done: 1, Total: 4},
		Updated: clock.Now()}
	if err := state.Write(dir, state.BootstrapFile, boot); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "creating replica", func() bool {
		f := svc.Facts()
		return f.State == "creating replica" && f.Progress != nil && f.Progress.Percent() == 25
	})
	boot.Updated = clock.Now().Add(-state.BootstrapMaxAge - time.Second)
	if err := state.Write(dir, state.BootstrapFile, boot); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "a stale bootstrap.json ignored", func() bool { return svc.Facts().State == "fenced" })
	os.Remove(filepath.Join(dir, state.SuperviseFile))
	os.WriteFile(filepath.Join(dir, state.LockdFile), []byte("{not json"), 0o644)
	waitFor(t, time.Second, "supervise.json dropped", func() bool {
		s := svc.Snapshot()
		return s.Supervise == nil && s.Lockd == nil
	})
}

func TestNewChecksOptions(t *testing.T) {
	if _, err := New(Options{Name: "n", Scope: "s"}); err == nil || !strings.Contains(err.Error(), "etcd client") {
		t.Errorf("no etcd client: %v", err)
	}
	if _, err := New(Options{Scope: "s", Standalone: true}); err == nil {
		t.Error("no name accepted")
	}
}

func TestOptionsFromConfig(t *testing.T) {
	cfg, _, err := config.Parse([]byte(`
scope: demo
name: node1
restapi:
  listen: 127.0.0.1:8008
  http_extra_headers: {X-A: a}
  https_extra_headers: {X-B: b}
postgresql:
  parameters: {restore_command: "cp /a %f %p"}
tags: {nofailover: false, noloadbalance: true, zone: x}
bootstrap:
  dcs: {ttl: 12, maximum_lag_on_failover: 4096}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	o := OptionsFromConfig(cfg, false)
	if !o.Standalone || o.TTL != 12*time.Second || o.MaxLagOnFailover != 4096 || !o.RestoreCommand {
		t.Errorf("options %+v", o)
	}
	if o.ExtraHeaders["X-A"] != "a" || o.ExtraHeaders["X-B"] != "" {
		t.Errorf("extra headers without TLS: %v", o.ExtraHeaders)
	}
	o.Log = zerolog.Nop()
	svc, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	s := svc.Snapshot()
	if !s.NoLoadBalance || s.Tags["nofailover"] != nil || s.Tags["noloadbalance"] != true || s.TagText["zone"] != "x" {
		t.Errorf("tags %v %v", s.Tags, s.TagText)
	}
	cfg.Etcd3 = &config.Etcd{Hosts: config.StringList{"127.0.0.1:2379"}}
	if OptionsFromConfig(cfg, false).Standalone {
		t.Error("etcd3 configured, yet standalone")
	}
}

// TestListenersActivation runs itself in a child process that receives a
// listening socket the way systemd passes one (fd 3, LISTEN_FDS=1).
func TestListenersActivation(t *testing.T) {
	if addr := os.Getenv("PGHA_HEALTH_ACTIVATION_CHILD"); addr != "" {
		// systemd sets LISTEN_PID to the service's PID, known only here.
		os.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
		ls, activated, err := Listeners("127.0.0.1:1")
		if err != nil || !activated || len(ls) != 1 || ls[0].Addr().String() != addr {
			t.Fatalf("Listeners: %v %v %v, want the passed socket %s", ls, activated, err, addr)
		}
		if os.Getenv("LISTEN_FDS") != "" || os.Getenv("LISTEN_PID") != "" {
			t.Fatal("LISTEN_* left in the environment")
		}
		ls[0].Close()
		return
	}
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	f, err := l.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestListenersActivation$", "-test.count=1")
	cmd.Env = append(os.Environ(), "LISTEN_FDS=1", "PGHA_HEALTH_ACTIVATION_CHILD="+l.Addr().String())
	cmd.ExtraFiles = []*os.File{f}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}

	// Without activation, Listeners listens on the address given.
	ls, activated, err := Listeners("127.0.0.1:0")
	if err != nil || activated || len(ls) != 1 {
		t.Fatalf("Listeners without activation: %v %v %v", ls, activated, err)
	}
	ls[0].Close()
	if _, _, err := Listeners("256.0.0.1:1"); err == nil || !strings.Contains(err.Error(), "restapi.listen") {
		t.Errorf("bad address: %v", err)
	}
}
