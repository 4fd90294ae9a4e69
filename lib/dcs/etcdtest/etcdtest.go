// Package etcdtest runs a real etcd server (the etcd binary, not an embedded
// one) for tests: a single member on free loopback ports with its own data
// directory, tuned for fast elections (10ms heartbeat, 100ms election
// timeout), which tests can kill, restart, pause and resume.
//
// If the binary is missing the test is skipped, unless the environment sets
// PGHA_TEST_DISALLOW_SKIP=1, as CI does; then it fails. PGHA_ETCD_BIN
// overrides the binary's path.
package etcdtest

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// StartTimeout bounds how long Start waits for etcd to answer.
const StartTimeout = 10 * time.Second

// Etcd is one running (or stopped) etcd member.
type Etcd struct {
	t       testing.TB
	bin     string
	dir     string
	name    string
	client  string // http://127.0.0.1:port
	peer    string
	cluster string // --initial-cluster
	logPath string
	extra   []string

	mu  sync.Mutex
	cmd *exec.Cmd
	// exited is closed when the current process has been reaped.
	exited chan struct{}
}

// Start runs a single-member etcd and waits until it answers /health. The
// member is killed and its data removed when the test ends; its log is
// printed if the test failed. Extra arguments are appended to etcd's command
// line.
func Start(t testing.TB, extra ...string) *Etcd {
	t.Helper()
	bin := binary(t)
	ports := freePorts(t, 2)
	e := newEtcd(t, bin, "default", ports[0], ports[1], extra)
	e.cluster = e.name + "=" + e.peer
	e.Start()
	return e
}

// StartCluster runs an n-member etcd cluster on loopback and waits until
// every member answers /health.
func StartCluster(t testing.TB, n int, extra ...string) []*Etcd {
	t.Helper()
	bin := binary(t)
	ports := freePorts(t, 2*n)
	members := make([]*Etcd, n)
	var initial []string
	for i := range members {
		members[i] = newEtcd(t, bin, fmt.Sprintf("m%d", i), ports[2*i], ports[2*i+1], extra)
		initial = append(initial, members[i].name+"="+members[i].peer)
	}
	for _, m := range members {
		m.cluster = strings.Join(initial, ",")
		if err := m.launch(); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range members {
		if err := m.waitHealthy(); err != nil {
			t.Fatal(err)
		}
	}
	return members
}

func newEtcd(t testing.TB, bin, name string, clientPort, peerPort int, extra []string) *Etcd {
	dir := t.TempDir()
	e := &Etcd{
		t:       t,
		bin:     bin,
		dir:     filepath.Join(dir, "data"),
		name:    name,
		client:  fmt.Sprintf("http://127.0.0.1:%d", clientPort),
		peer:    fmt.Sprintf("http://127.0.0.1:%d", peerPort),
		logPath: filepath.Join(dir, "etcd.log"),
		extra:   extra,
	}
	t.Cleanup(func() {
		e.kill()
		if t.Failed() {
			if b, err := os.ReadFile(e.logPath); err == nil {
				if len(b) > 8000 {
					b = b[len(b)-8000:]
				}
				t.Logf("etcd %s log (tail):\n%s", e.name, b)
			}
		}
	})
	return e
}

func binary(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("PGHA_ETCD_BIN")
	if bin == "" {
		bin = "etcd"
		if p, err := exec.LookPath(bin); err == nil {
			bin = p
		} else {
			bin = "/usr/bin/etcd"
		}
	}
	if _, err := os.Stat(bin); err != nil {
		msg := fmt.Sprintf("etcd binary not found (%v); install Debian's etcd-server or set PGHA_ETCD_BIN", err)
		if os.Getenv("PGHA_TEST_DISALLOW_SKIP") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return bin
}

// freePorts reserves n distinct loopback ports by binding them all at once,
// then releases them for etcd.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, n)
	var ls []net.Listener
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("reserve a port: %v", err)
		}
		ls = append(ls, l)
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// Endpoints returns the client URL, for clientv3 or dcs.Options.
func (e *Etcd) Endpoints() []string { return []string{e.client} }

// Name returns the member name.
func (e *Etcd) Name() string { return e.name }

// Start starts etcd (again) with the same data directory and ports and waits
// until it answers /health; it fails the test if it does not within
// StartTimeout. Starting a running member is a test bug.
func (e *Etcd) Start() {
	e.t.Helper()
	if err := e.launch(); err != nil {
		e.t.Fatal(err)
	}
	if err := e.waitHealthy(); err != nil {
		e.t.Fatal(err)
	}
}

func (e *Etcd) launch() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cmd != nil {
		return fmt.Errorf("etcd %s already running", e.name)
	}
	logf, err := os.OpenFile(e.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	args := []string{
		"--name=" + e.name,
		"--data-dir=" + e.dir,
		"--listen-client-urls=" + e.client,
		"--advertise-client-urls=" + e.client,
		"--listen-peer-urls=" + e.peer,
		"--initial-advertise-peer-urls=" + e.peer,
		"--initial-cluster=" + e.cluster,
		"--initial-cluster-state=new",
		"--heartbeat-interval=10",
		"--election-timeout=100",
		"--logger=zap",
		"--log-outputs=stderr",
	}
	args = append(args, e.extra...)
	cmd := exec.Command(e.bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start etcd %s: %w", e.name, err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	e.cmd, e.exited = cmd, exited
	return nil
}

func (e *Etcd) waitHealthy() error {
	deadline := time.Now().Add(StartTimeout)
	hc := &http.Client{Timeout: 500 * time.Millisecond}
	defer hc.CloseIdleConnections()
	for {
		e.mu.Lock()
		exited := e.exited
		e.mu.Unlock()
		select {
		case <-exited:
			return fmt.Errorf("etcd %s exited during start-up; see its log %s", e.name, e.logPath)
		default:
		}
		resp, err := hc.Get(e.client + "/health")
		if err == nil {
			var buf bytes.Buffer
			buf.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && strings.Contains(buf.String(), `"true"`) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("etcd %s did not become healthy within %v (last error: %v)", e.name, StartTimeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills etcd with SIGKILL (no graceful shutdown, like a crash) and waits
// until the process is gone. Stopping a stopped member does nothing.
func (e *Etcd) Stop() { e.kill() }

func (e *Etcd) kill() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cmd == nil {
		return
	}
	// SIGKILL works on a stopped process too.
	e.cmd.Process.Kill()
	<-e.exited
	e.cmd, e.exited = nil, nil
}

// Pause freezes etcd with SIGSTOP: connections stay open, nothing answers.
func (e *Etcd) Pause() { e.signal(syscall.SIGSTOP) }

// Resume continues a paused etcd with SIGCONT.
func (e *Etcd) Resume() { e.signal(syscall.SIGCONT) }

func (e *Etcd) signal(s syscall.Signal) {
	e.t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cmd == nil {
		e.t.Fatalf("etcd %s: %v sent while not running", e.name, s)
	}
	if err := e.cmd.Process.Signal(s); err != nil {
		e.t.Fatalf("etcd %s: %v: %v", e.name, s, err)
	}
}

// PID returns the process ID of the running etcd, or 0 if it is stopped.
func (e *Etcd) PID() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cmd == nil || e.cmd.Process == nil {
		return 0
	}
	select {
	case <-e.exited:
		return 0
	default:
	}
	return e.cmd.Process.Pid
}
