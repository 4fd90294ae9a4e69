package health

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

// The integration tests run PostgreSQL 15 from PGHA_TEST_PG_BINDIR (default
// /usr/lib/postgresql/15/bin), as the postgres account when run as root. A
// template cluster is initdb'd once and copied for every primary. Missing
// binaries skip the tests, or fail them under PGHA_TEST_DISALLOW_SKIP=1.

var pgBinDir = func() string {
	if dir := os.Getenv("PGHA_TEST_PG_BINDIR"); dir != "" {
		return dir
	}
	return "/usr/lib/postgresql/15/bin"
}()

var template struct {
	once  sync.Once
	base  string // 0755 directory holding the template and every instance
	dir   string
	owner pg.Owner
	err   error
}

func removeTemplate() {
	if template.base != "" {
		os.RemoveAll(template.base)
	}
}

// requireBinary skips (or, under PGHA_TEST_DISALLOW_SKIP=1, fails) when path
// does not exist.
func requireBinary(t testing.TB, path, what string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		msg := fmt.Sprintf("%s is not installed (%v)", what, err)
		if os.Getenv("PGHA_TEST_DISALLOW_SKIP") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

func requirePostgres(t testing.TB) pg.Owner {
	t.Helper()
	for _, bin := range []string{"initdb", "postgres", "pg_basebackup"} {
		requireBinary(t, filepath.Join(pgBinDir, bin), "PostgreSQL 15")
	}
	template.once.Do(initTemplate)
	if template.err != nil {
		t.Fatalf("create template cluster: %v", template.err)
	}
	return template.owner
}

func initTemplate() {
	owner, err := testOwner()
	if err != nil {
		template.err = err
		return
	}
	template.owner = owner
	if template.base, err = os.MkdirTemp("", "pgha-health-"); err != nil {
		template.err = err
		return
	}
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
	_, template.err = pg.Run(ctx, owner, pgBinDir, "initdb", []string{
		"-D", template.dir, "--auth=trust", "-U", "postgres", "--no-sync", "--encoding=UTF8", "--locale=C"})
}

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

// pgNode is one PostgreSQL instance with its own directory, socket and port.
type pgNode struct {
	t       testing.TB
	owner   pg.Owner
	root    string
	dataDir string
	sockDir string
	port    int
	cmd     *exec.Cmd
	exited  chan struct{}
}

func newPGNode(t testing.TB) *pgNode {
	t.Helper()
	owner := requirePostgres(t)
	root, err := os.MkdirTemp(template.base, "node-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	n := &pgNode{t: t, owner: owner, root: root, dataDir: filepath.Join(root, "data"), sockDir: filepath.Join(root, "sock")}
	if err := mkdirOwned(n.sockDir, owner); err != nil {
		t.Fatal(err)
	}
	return n
}

// startPrimary copies the template and starts it.
func startPrimary(t testing.TB) *pgNode {
	t.Helper()
	n := newPGNode(t)
	if out, err := exec.Command("cp", "-a", template.dir, n.dataDir).CombinedOutput(); err != nil {
		t.Fatalf("cp -a template: %v: %s", err, out)
	}
	n.chownData()
	n.start()
	return n
}

// startReplica clones from with pg_basebackup and starts it streaming.
func (from *pgNode) startReplica(t testing.TB) *pgNode {
	t.Helper()
	n := newPGNode(t)
	if err := mkdirOwned(n.dataDir, n.owner); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err := pg.Run(ctx, n.owner, pgBinDir, "pg_basebackup", []string{"-D", n.dataDir, "-h", from.sockDir,
		"-p", fmt.Sprint(from.port), "-U", "postgres", "-R", "-X", "stream", "-c", "fast", "--no-sync"})
	if err != nil {
		t.Fatalf("pg_basebackup: %v", err)
	}
	n.start()
	return n
}

func (n *pgNode) chownData() {
	err := filepath.WalkDir(n.dataDir, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, int(n.owner.UID), int(n.owner.GID))
	})
	if err != nil {
		n.t.Fatal(err)
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (n *pgNode) start() {
	t := n.t
	t.Helper()
	n.port = freePort(t)
	logf, err := os.OpenFile(filepath.Join(n.root, "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := pg.Command(context.Background(), n.owner, pgBinDir, "postgres", []string{"-D", n.dataDir,
		"-c", fmt.Sprintf("port=%d", n.port), "-c", "unix_socket_directories=" + n.sockDir,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "wal_receiver_status_interval=1s"})
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start postgres: %v", err)
	}
	n.cmd, n.exited = cmd, make(chan struct{})
	go func() {
		cmd.Wait()
		close(n.exited)
	}()
	t.Cleanup(func() {
		n.kill()
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(n.root, "postgres.log"))
			t.Logf("postgres log of %s:\n%s", n.dataDir, log)
		}
	})
	waitFor(t, 15*time.Second, "postgres to accept connections", func() bool {
		select {
		case <-n.exited:
			log, _ := os.ReadFile(filepath.Join(n.root, "postgres.log"))
			t.Fatalf("postgres exited during start-up: %s", log)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		conn, err := pg.Connect(ctx, n.params())
		if err != nil {
			return false
		}
		conn.Close(ctx)
		return true
	})
}

// kill SIGKILLs the postmaster and its children (SIGKILL works on stopped
// processes too) and waits for the postmaster.
func (n *pgNode) kill() {
	if n.cmd == nil {
		return
	}
	n.signalAll(syscall.SIGKILL)
	<-n.exited
	n.cmd = nil
}

// signal sends sig to the postmaster and to every process it forked:
// backends call setsid(), so the postmaster's process group is not enough.
// The postmaster goes first, so that it forks nothing new meanwhile.
func (n *pgNode) signal(sig syscall.Signal) {
	if err := n.signalAll(sig); err != nil {
		n.t.Fatalf("signal postgres: %v", err)
	}
}

func (n *pgNode) signalAll(sig syscall.Signal) error {
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
		rest := string(b[bytes.LastIndexByte(b, ')')+1:])
		f := strings.Fields(rest)
		if len(f) > 1 && f[1] == strconv.Itoa(ppid) {
			out = append(out, pid)
		}
	}
	return out
}

func (n *pgNode) params() pg.ConnParams {
	return pg.ConnParams{Host: n.sockDir, Port: n.port, User: "postgres", ConnectTimeout: time.Second}
}

func (n *pgNode) exec(sql string) {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pg.Connect(ctx, n.params())
	if err != nil {
		n.t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		n.t.Fatalf("%s: %v", sql, err)
	}
}

func (n *pgNode) promote() {
	n.t.Helper()
	n.exec("SELECT pg_promote(true, 10)")
}
