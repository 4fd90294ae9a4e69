package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/pg-ha/pg-ha/lib/cli"
	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/logx/logxtest"
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

// listenAddr finds the address in pg-healthd's "serving" log line.
func listenAddr(logs string) string {
	for _, line := range strings.Split(logs, "\n") {
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
	notes := &sdnotifytest.Recorder{}
	t.Setenv("NOTIFY_SOCKET", notes.Listen(t))
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
	logs := &logxtest.Buffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pg-healthd log:\n%s", logs)
		}
	})
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

	deadline := time.Now().Add(5 * time.Second)
	notes.Wait(t, 0, time.Until(deadline), "READY=1", sdnotifytest.KindIs("READY"))
	notes.Wait(t, 0, time.Until(deadline), "WATCHDOG=1", sdnotifytest.KindIs("WATCHDOG"))
	notes.Wait(t, 0, time.Until(deadline), "STATUS=postgres stopped…", func(c sdnotifytest.Call) bool {
		return c.Kind == "STATUS" && strings.HasPrefix(c.Arg, "postgres stopped")
	})
	addr := listenAddr(logs.String())
	if addr == "" {
		t.Fatal("no serving line in the logs")
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
	// Without etcd the write API answers 503 with one line.
	resp, err := hc.Post("http://"+addr+"/switchover", "application/json", strings.NewReader(`{"leader":"node1"}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || string(b) != "pg-healthd runs without etcd (standalone): POST /switchover needs it" {
		t.Errorf("POST /switchover standalone: %d %q", resp.StatusCode, b)
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
	notes.Wait(t, 0, 2*time.Second, "STOPPING=1", sdnotifytest.KindIs("STOPPING"))
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
