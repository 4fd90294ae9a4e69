package callback

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/logx/logxtest"
	"github.com/pg-ha/pg-ha/lib/pg"
)

// script writes a shell script into dir that appends "<name> start" to
// dir/log, runs body, then appends "<name> end".
func script(t *testing.T, dir, name, body string) []string {
	t.Helper()
	path := filepath.Join(dir, name+".sh")
	src := "#!/bin/sh\necho \"" + name + " start $*\" >> " + dir + "/log\n" + body + "\necho \"" + name + " end\" >> " + dir + "/log\n"
	if err := os.WriteFile(path, []byte(src), 0o755); err != nil {
		t.Fatal(err)
	}
	return []string{path}
}

func readLog(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "log"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return strings.Fields(strings.ReplaceAll(strings.TrimSpace(string(b)), "\n", ","))
}

func waitLog(t *testing.T, dir string, want string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !slices.Contains(strings.Split(strings.TrimSpace(readFile(t, dir)), "\n"), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the log within %s: %q", want, within, readFile(t, dir))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func readFile(t *testing.T, dir string) string {
	b, _ := os.ReadFile(filepath.Join(dir, "log"))
	return string(b)
}

func self(t *testing.T) pg.Owner {
	t.Helper()
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return pg.Owner{UID: uint32(uid), GID: uint32(gid), Name: u.Username, Home: u.HomeDir}
}

// TestRunnerNewerKillsOlder: a callback fired while an older one runs
// kills the older one, with the children it started, and then runs; a
// reload runs beside a role change without killing it.
func TestRunnerNewerKillsOlder(t *testing.T) {
	dir := t.TempDir()
	r := NewRunner(self(t), time.Minute, logxtest.Logger(t))
	defer r.Close(5 * time.Second)
	slow := script(t, dir, "slow", "sleep 30 & echo $! > "+dir+"/child\nwait")
	r.Fire(OnStart, append(slow, "on_start", "replica", "demo"))
	waitLog(t, dir, "slow start on_start replica demo", 5*time.Second)
	reload := script(t, dir, "reload", "sleep 0.3")
	r.Fire(OnReload, append(reload, "on_reload", "replica", "demo"))
	waitLog(t, dir, "reload start on_reload replica demo", 5*time.Second)
	fast := script(t, dir, "fast", "")
	r.Fire(OnRoleChange, append(fast, "on_role_change", "primary", "demo"))
	waitLog(t, dir, "fast end", 5*time.Second)
	waitLog(t, dir, "reload end", 5*time.Second)
	lines := strings.Split(strings.TrimSpace(readFile(t, dir)), "\n")
	if slices.Contains(lines, "slow end") {
		t.Errorf("the older callback was not killed: %q", lines)
	}
	b, err := os.ReadFile(filepath.Join(dir, "child"))
	if err != nil {
		t.Fatal(err)
	}
	child, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	deadline := time.Now().Add(2 * time.Second)
	for syscall.Kill(child, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("the killed callback's child %d is still alive", child)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRunnerTimeout: a callback that runs longer than the timeout is
// killed, and the next one runs.
func TestRunnerTimeout(t *testing.T) {
	dir := t.TempDir()
	r := NewRunner(self(t), 300*time.Millisecond, logxtest.Logger(t))
	defer r.Close(5 * time.Second)
	start := time.Now()
	r.Fire(OnStop, script(t, dir, "hang", "sleep 30"))
	waitLog(t, dir, "hang start", 5*time.Second)
	r.Fire(OnStart, nil) // ignored
	deadline := time.Now().Add(5 * time.Second)
	for {
		r.main.mu.Lock()
		idle := r.main.cancel == nil
		r.main.mu.Unlock()
		if idle {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the hanging callback was not killed after its timeout")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("killed after %s, want about 300ms", took)
	}
	r.Fire(OnStart, script(t, dir, "next", ""))
	waitLog(t, dir, "next end", 5*time.Second)
	if strings.Contains(readFile(t, dir), "hang end") {
		t.Error("the hanging callback finished instead of being killed")
	}
}

// TestRunnerQueueReplaces: of callbacks fired while one runs, only the
// newest runs after it, as in Patroni.
func TestRunnerQueueReplaces(t *testing.T) {
	dir := t.TempDir()
	r := NewRunner(self(t), time.Minute, logxtest.Logger(t))
	r.Fire(OnStart, script(t, dir, "a", "sleep 5"))
	waitLog(t, dir, "a start", 5*time.Second)
	b, c := script(t, dir, "b", "sleep 5"), script(t, dir, "c", "")
	r.Fire(OnStop, b)
	r.Fire(OnRoleChange, c)
	r.Close(5 * time.Second) // waits for what is queued
	got := strings.Join(readLog(t, dir), " ")
	// b either never started or was killed by c.
	if strings.Contains(got, "a end") || strings.Contains(got, "b end") || !strings.Contains(got, "c end") {
		t.Errorf("log %q: want a and b killed or skipped, c run to its end", got)
	}
}

// TestRunnerClose: Close waits for a running callback up to its wait, then
// kills it; nothing is fired after Close.
func TestRunnerClose(t *testing.T) {
	dir := t.TempDir()
	r := NewRunner(self(t), time.Minute, logxtest.Logger(t))
	r.Fire(OnStop, script(t, dir, "quick", "sleep 0.2"))
	waitLog(t, dir, "quick start", 5*time.Second)
	r.Close(5 * time.Second)
	if !strings.Contains(readFile(t, dir), "quick end") {
		t.Errorf("Close did not wait for the running callback: %q", readFile(t, dir))
	}
	r.Fire(OnStart, script(t, dir, "late", ""))
	time.Sleep(100 * time.Millisecond)
	if strings.Contains(readFile(t, dir), "late") {
		t.Error("a callback fired after Close ran")
	}

	r = NewRunner(self(t), time.Minute, logxtest.Logger(t))
	r.Fire(OnStop, script(t, dir, "stuck", "sleep 30"))
	waitLog(t, dir, "stuck start", 5*time.Second)
	start := time.Now()
	r.Close(200 * time.Millisecond)
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Close took %s with a stuck callback, want about 200ms", took)
	}
}

// TestRun: a hook's exit status and its bound.
func TestRun(t *testing.T) {
	dir := t.TempDir()
	o := self(t)
	if err := Run(context.Background(), o, script(t, dir, "ok", "exit 0")); err != nil {
		t.Errorf("exit 0: %v", err)
	}
	var ee *exec.ExitError
	if err := Run(context.Background(), o, script(t, dir, "fail", "exit 3")); !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Errorf("exit 3: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := Run(ctx, o, script(t, dir, "hang", "sleep 30"))
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 3*time.Second {
		t.Errorf("a hook past its bound: %v after %s", err, time.Since(start))
	}
	if err := Run(context.Background(), o, []string{filepath.Join(dir, "missing")}); err == nil {
		t.Error("a missing script ran")
	}
}

// TestRunAsOwner: run by root, a script runs as the data directory's
// owner, not as root.
func TestRunAsOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch users")
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	o := pg.Owner{UID: uint32(uid), GID: uint32(gid), Name: u.Username, Home: u.HomeDir}
	dir, err := os.MkdirTemp("", "callback")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	argv := script(t, dir, "who", "id -u > "+dir+"/uid; echo $USER > "+dir+"/user")
	if err := Run(context.Background(), o, argv); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "uid"))
	if got := strings.TrimSpace(string(b)); got != u.Uid {
		t.Errorf("ran as uid %q, want %s", got, u.Uid)
	}
	b, _ = os.ReadFile(filepath.Join(dir, "user"))
	if got := strings.TrimSpace(string(b)); got != u.Username {
		t.Errorf("USER=%q, want %s", got, u.Username)
	}
}

// TestEnv: systemd's variables never reach a script; running as another
// user, HOME, USER and LOGNAME are that user's.
func TestEnv(t *testing.T) {
	parent := []string{"PATH=/bin", "NOTIFY_SOCKET=/run/x", "WATCHDOG_USEC=1", "LISTEN_FDS=1", "HOME=/root", "USER=root", "PGPASSFILE=/p"}
	other := pg.Owner{UID: uint32(os.Geteuid()) + 1, Name: "postgres", Home: "/var/lib/postgresql"}
	got := strings.Join(env(parent, other), " ")
	if want := "PATH=/bin PGPASSFILE=/p HOME=/var/lib/postgresql USER=postgres LOGNAME=postgres"; got != want {
		t.Errorf("env = %q, want %q", got, want)
	}
}
