// Package pgtest runs real PostgreSQL 15 instances for integration tests.
//
// A template cluster is initdb'd once per test process (trust
// authentication for every connection, replication included) and every
// instance is a copy of it, or a pg_basebackup of another instance, with its
// own data directory, unix socket directory and loopback TCP port. PostgreSQL
// runs as the postgres account when the tests run as root, else as the
// current user. Call RemoveTemplate from TestMain once the tests have run.
//
// The binaries come from PGHA_TEST_PG_BINDIR (default
// /usr/lib/postgresql/15/bin). Without them the tests are skipped, or fail
// when the environment sets PGHA_TEST_DISALLOW_SKIP=1, as CI does.
package pgtest

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/pg"
)

// BinDir holds the PostgreSQL programs: PGHA_TEST_PG_BINDIR, or
// /usr/lib/postgresql/15/bin.
var BinDir = func() string {
	if dir := os.Getenv("PGHA_TEST_PG_BINDIR"); dir != "" {
		return dir
	}
	return "/usr/lib/postgresql/15/bin"
}()

// StartTimeout bounds how long Start waits for PostgreSQL to accept
// connections.
const StartTimeout = 15 * time.Second

var template struct {
	once  sync.Once
	base  string // 0755 directory holding the template and every instance
	dir   string // the template data directory
	owner pg.Owner
	err   error
}

// RequireBinary skips t when path does not exist, or fails it under
// PGHA_TEST_DISALLOW_SKIP=1; what names the missing software.
func RequireBinary(t testing.TB, path, what string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		msg := fmt.Sprintf("%s is not installed (%v)", what, err)
		if os.Getenv("PGHA_TEST_DISALLOW_SKIP") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// Require makes sure PostgreSQL 15 is installed (see RequireBinary) and the
// template cluster exists, creating it on the first call, and returns the
// account PostgreSQL runs as.
func Require(t testing.TB) pg.Owner {
	t.Helper()
	for _, bin := range []string{"initdb", "postgres", "pg_basebackup", "pg_controldata"} {
		RequireBinary(t, filepath.Join(BinDir, bin), "PostgreSQL 15")
	}
	template.once.Do(initTemplate)
	if template.err != nil {
		t.Fatalf("create template cluster: %v", template.err)
	}
	return template.owner
}

// RemoveTemplate deletes the template and whatever instances are left on
// disk. Call it from TestMain after the tests have run.
func RemoveTemplate() {
	if template.base != "" {
		os.RemoveAll(template.base)
	}
}

func initTemplate() {
	start := time.Now()
	owner, err := testOwner()
	if err != nil {
		template.err = err
		return
	}
	template.owner = owner
	if template.base, err = os.MkdirTemp("", "pgha-pgtest-"); err != nil {
		template.err = err
		return
	}
	// The account PostgreSQL runs as must be able to traverse it.
	if err := os.Chmod(template.base, 0o755); err != nil {
		template.err = err
		return
	}
	template.dir = filepath.Join(template.base, "template")
	if err := mkdirOwned(template.dir, owner); err != nil {
		template.err = err
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// --auth=trust: local and 127.0.0.1 connections, replication included.
	if _, err := pg.Run(ctx, owner, BinDir, "initdb", []string{
		"-D", template.dir, "--auth=trust", "-U", "postgres", "--no-sync", "--encoding=UTF8", "--locale=C",
	}); err != nil {
		template.err = err
		return
	}
	fmt.Fprintf(os.Stderr, "template cluster created in %v\n", time.Since(start).Round(time.Millisecond))
}

// testOwner is the postgres account when running as root, else the current
// user (PostgreSQL runs as any non-root user).
func testOwner() (pg.Owner, error) {
	if os.Geteuid() == 0 {
		return pg.LookupOwner("postgres")
	}
	cur, err := user.Current()
	if err != nil {
		return pg.Owner{}, err
	}
	return pg.LookupOwner(cur.Username)
}

func mkdirOwned(dir string, o pg.Owner) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	return os.Chown(dir, int(o.UID), int(o.GID))
}

// Instance is one PostgreSQL instance of a test. Its directories are
// removed, and its processes killed, when the test ends; its log is printed
// if the test failed.
type Instance struct {
	Owner   pg.Owner // the account PostgreSQL runs as
	Root    string   // holds DataDir, SockDir and postgres.log
	DataDir string
	SockDir string // unix_socket_directories
	Port    int    // the TCP port on 127.0.0.1, chosen by Start

	t      testing.TB
	cmd    *exec.Cmd
	exited chan struct{} // closed once the postmaster has been reaped
}

// newInstance makes the directories of an instance, without a data
// directory.
func newInstance(t testing.TB) *Instance {
	t.Helper()
	owner := Require(t)
	root, err := os.MkdirTemp(template.base, "node-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// A server killed by the test leaves its shared memory segment.
		_, _ = pg.RemoveSegment(filepath.Join(root, "data"))
		os.RemoveAll(root)
	})
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	n := &Instance{t: t, Owner: owner, Root: root,
		DataDir: filepath.Join(root, "data"), SockDir: filepath.Join(root, "sock")}
	if err := mkdirOwned(n.SockDir, owner); err != nil {
		t.Fatal(err)
	}
	return n
}

// New returns an instance whose data directory is a copy of the template: a
// primary once started.
func New(t testing.TB) *Instance {
	t.Helper()
	n := newInstance(t)
	if out, err := exec.Command("cp", "-a", template.dir, n.DataDir).CombinedOutput(); err != nil {
		t.Fatalf("cp -a template: %v: %s", err, out)
	}
	err := filepath.WalkDir(n.DataDir, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, int(n.Owner.UID), int(n.Owner.GID))
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Standby returns an instance cloned from the running from by pg_basebackup
// -R (standby.signal and primary_conninfo over from's socket): a streaming
// standby once started.
func (from *Instance) Standby(t testing.TB) *Instance {
	t.Helper()
	n := newInstance(t)
	if err := mkdirOwned(n.DataDir, n.Owner); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err := pg.Run(ctx, n.Owner, BinDir, "pg_basebackup", []string{"-D", n.DataDir, "-R",
		"-h", from.SockDir, "-p", strconv.Itoa(from.Port), "-U", "postgres", "-X", "stream", "-c", "fast", "--no-sync"})
	if err != nil {
		t.Fatalf("pg_basebackup: %v", err)
	}
	return n
}

// WriteFile writes a file into the data directory, owned by Owner, say a
// pg_hba.conf before Start.
func (n *Instance) WriteFile(name, content string) {
	n.t.Helper()
	path := filepath.Join(n.DataDir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		n.t.Fatal(err)
	}
	if err := os.Chown(path, int(n.Owner.UID), int(n.Owner.GID)); err != nil {
		n.t.Fatal(err)
	}
}

// Start runs the postmaster as Owner on a free port, without fsync, with
// the extra command-line arguments ("-c", "name=value", …), and waits until
// it accepts connections. At the end of the test it is shut down unless
// stopped before: SIGQUIT, then SIGKILL to it and its children after 5 s.
func (n *Instance) Start(extra ...string) {
	t := n.t
	t.Helper()
	n.Port = FreePort(t)
	args := append([]string{"-D", n.DataDir,
		"-c", fmt.Sprintf("port=%d", n.Port),
		"-c", "unix_socket_directories=" + n.SockDir,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off",
	}, extra...)
	logPath := filepath.Join(n.Root, "postgres.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := pg.Command(context.Background(), n.Owner, BinDir, "postgres", args)
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL // never outlive the test binary
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start postgres: %v", err)
	}
	exited := make(chan struct{})
	n.cmd, n.exited = cmd, exited
	go func() {
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		n.shutdown()
		if t.Failed() {
			log, _ := os.ReadFile(logPath)
			t.Logf("postgres log of %s:\n%s", n.DataDir, log)
		}
	})

	deadline := time.Now().Add(StartTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pg.Connect(ctx, n.Params())
		if err == nil {
			conn.Close(ctx)
			cancel()
			return
		}
		cancel()
		select {
		case <-exited:
			log, _ := os.ReadFile(logPath)
			t.Fatalf("postgres exited during start-up: %v\n%s", cmd.ProcessState, log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("postgres not ready after %v: %v", StartTimeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Params reaches the instance over its unix socket as the postgres role.
func (n *Instance) Params() pg.ConnParams {
	return pg.ConnParams{Host: n.SockDir, Port: n.Port, User: "postgres", ConnectTimeout: time.Second}
}

// running reports whether the postmaster started last is still there.
func (n *Instance) running() bool {
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// StopFast shuts the postmaster down cleanly (SIGINT) and waits for it,
// failing the test after 15 s.
func (n *Instance) StopFast() {
	n.t.Helper()
	if !n.running() {
		n.t.Fatal("postgres is not running")
	}
	n.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-n.exited:
	case <-time.After(15 * time.Second):
		n.t.Fatal("postgres did not stop within 15s of SIGINT")
	}
}

// Kill SIGKILLs the postmaster and its children, as a crash would (SIGKILL
// works on stopped processes too), and waits for the postmaster.
func (n *Instance) Kill() {
	if !n.running() {
		return
	}
	n.signalAll(syscall.SIGKILL)
	<-n.exited
}

// shutdown is the end of the test: an immediate shutdown (SIGQUIT; SIGCONT
// in case the processes are stopped), then Kill if the postmaster is still
// there after 5 s.
func (n *Instance) shutdown() {
	if !n.running() {
		return
	}
	n.cmd.Process.Signal(syscall.SIGQUIT)
	n.signalAll(syscall.SIGCONT)
	select {
	case <-n.exited:
	case <-time.After(5 * time.Second):
	}
	n.Kill()
}

// Signal sends sig to the postmaster and to every process it forked, say
// SIGSTOP and SIGCONT to freeze PostgreSQL.
func (n *Instance) Signal(sig syscall.Signal) {
	n.t.Helper()
	if !n.running() {
		n.t.Fatalf("signal postgres: not running")
	}
	if err := n.signalAll(sig); err != nil {
		n.t.Fatalf("signal postgres: %v", err)
	}
}

// signalAll signals the postmaster, then its children: backends call
// setsid(), so the postmaster's process group is not enough. The postmaster
// goes first, so that it forks nothing new meanwhile.
func (n *Instance) signalAll(sig syscall.Signal) error {
	pm := n.cmd.Process.Pid
	if err := syscall.Kill(pm, sig); err != nil {
		return err
	}
	for _, pid := range children(pm) {
		syscall.Kill(pid, sig)
	}
	return nil
}

// children lists the processes whose parent is ppid.
func children(ppid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may hold spaces and parentheses.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(ppid) {
			out = append(out, pid)
		}
	}
	return out
}
