package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/pg-ha/pg-ha/lib/cli"
	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/sdnotify/sdnotifytest"
)

// TestMain checks that run leaves no goroutine behind, but fasthttp's own:
// the Date header refresher, started once per process, and a worker pool's
// cleaner, which notices that its server stopped only when it next wakes.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"))
}

// syncBuffer collects log lines from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) listenAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, line := range strings.Split(s.b.String(), "\n") {
		var l struct{ Message, Listen string }
		if json.Unmarshal([]byte(line), &l) == nil && l.Message == "serving" {
			return l.Listen
		}
	}
	return ""
}

// TestRunStandalone runs pg-healthd's wiring in-process with a
// configuration naming no etcd: it serves, tells systemd READY=1 and its
// status, pings the watchdog from its refresh loop, and says STOPPING=1 on
// the way out.
func TestRunStandalone(t *testing.T) {
	sock, msgs := sdnotifytest.Listen(t)
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "400000")
	t.Setenv("WATCHDOG_PID", "")
	dir := t.TempDir()
	cfg, _, err := config.Parse([]byte(`
scope: demo
name: node1
restapi: {listen: 127.0.0.1:0}
postgresql:
  listen: 127.0.0.1:1
  data_dir: `+filepath.Join(dir, "data")+`
  parameters: {unix_socket_directories: `+filepath.Join(dir, "nosocket")+`}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, zerolog.New(logs), cfg, &CLI{Runtime: cli.Runtime{RuntimeDir: dir}})
	}()
	stopped := false
	defer func() {
		if !stopped {
			cancel()
			<-done
		}
	}()

	seen := map[string]bool{}
	var status string
	deadline := time.After(5 * time.Second)
	for !(seen["READY=1"] && seen["WATCHDOG=1"] && strings.HasPrefix(status, "postgres stopped")) {
		select {
		case m := <-msgs:
			seen[m] = true
			if s, ok := strings.CutPrefix(m, "STATUS="); ok {
				status = s
			}
		case <-deadline:
			t.Fatalf("notifications so far %v, status %q; want READY=1, WATCHDOG=1, STATUS=postgres stopped…\n%s", seen, status, logs.b.String())
		}
	}
	addr := logs.listenAddr()
	if addr == "" {
		t.Fatalf("no serving line in the logs:\n%s", logs.b.String())
	}
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 2 * time.Second}
	for path, want := range map[string]int{"/health": 503, "/primary": 503, "/liveness": 200, "/cluster": 503} {
		resp, err := hc.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	cancel()
	select {
	case err := <-done:
		stopped = true
		if !errors.Is(err, context.Canceled) {
			t.Errorf("run after cancellation: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return within 10 s of cancellation")
	}
	for !seen["STOPPING=1"] {
		select {
		case m := <-msgs:
			seen[m] = true
		case <-time.After(2 * time.Second):
			t.Fatalf("no STOPPING=1 among %v", seen)
		}
	}
}

func TestRunRejectsBadEtcd(t *testing.T) {
	cfg, _, err := config.Parse([]byte(`
scope: demo
name: node1
etcd3: {hosts: "ftp://x"}
postgresql: {listen: 127.0.0.1:1, data_dir: /nonexistent}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	err = run(context.Background(), zerolog.Nop(), cfg, &CLI{Runtime: cli.Runtime{RuntimeDir: t.TempDir()}})
	var ee *cli.ExitError
	if !errors.As(err, &ee) || ee.Code != cli.ExitConfig || !strings.Contains(err.Error(), "etcd3") {
		t.Errorf("bad etcd3.hosts: %v, want a configuration error naming etcd3", err)
	}
}
