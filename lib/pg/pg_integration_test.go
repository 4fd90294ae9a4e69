package pg

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// These tests run a real PostgreSQL 15 from PGHA_TEST_PG_BINDIR (default
// /usr/lib/postgresql/15/bin). A template cluster is initdb'd once per test
// binary and copied for every instance. Set PGHA_TEST_DISALLOW_SKIP=1 to
// make missing binaries a failure instead of a skip.

var pgBinDir = func() string {
	if dir := os.Getenv("PGHA_TEST_PG_BINDIR"); dir != "" {
		return dir
	}
	return "/usr/lib/postgresql/15/bin"
}()

var template struct {
	once  sync.Once
	base  string // 0755 directory holding the template and every instance
	dir   string // the template data directory
	owner Owner
	err   error
}

// removeTemplate deletes everything the integration tests created on disk.
func removeTemplate() {
	if template.base != "" {
		os.RemoveAll(template.base)
	}
}

// requirePostgres returns the account PostgreSQL runs as and makes sure the
// template cluster exists, or skips (fails under PGHA_TEST_DISALLOW_SKIP=1)
// when PostgreSQL 15 is not installed.
func requirePostgres(t *testing.T) Owner {
	t.Helper()
	for _, bin := range []string{"initdb", "postgres", "pg_basebackup", "pg_controldata"} {
		if _, err := os.Stat(filepath.Join(pgBinDir, bin)); err != nil {
			msg := fmt.Sprintf("PostgreSQL 15 is not installed (%v)", err)
			if os.Getenv("PGHA_TEST_DISALLOW_SKIP") == "1" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
	template.once.Do(initTemplate)
	if template.err != nil {
		t.Fatalf("create template cluster: %v", template.err)
	}
	return template.owner
}

func initTemplate() {
	start := time.Now()
	owner, err := testOwner()
	if err != nil {
		template.err = err
		return
	}
	template.owner = owner
	base, err := os.MkdirTemp("", "pgha-lib-pg-")
	if err != nil {
		template.err = err
		return
	}
	template.base = base
	// The account PostgreSQL runs as must be able to traverse it.
	if err := os.Chmod(base, 0o755); err != nil {
		template.err = err
		return
	}
	template.dir = filepath.Join(base, "template")
	if err := mkdirOwned(template.dir, owner); err != nil {
		template.err = err
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err = Run(ctx, owner, pgBinDir, "initdb", []string{
		"-D", template.dir, "--auth=trust", "-U", "postgres", "--no-sync",
		"--encoding=UTF8", "--locale=C",
	})
	if err != nil {
		template.err = err
		return
	}
	// Password authentication over TCP, trust over the socket.
	hba := "local all all trust\nlocal replication all trust\n" +
		"host all all 127.0.0.1/32 scram-sha-256\nhost replication all 127.0.0.1/32 scram-sha-256\n"
	if err := os.WriteFile(filepath.Join(template.dir, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		template.err = err
		return
	}
	if err := os.Chown(filepath.Join(template.dir, "pg_hba.conf"), int(owner.UID), int(owner.GID)); err != nil {
		template.err = err
		return
	}
	fmt.Fprintf(os.Stderr, "template cluster created in %v\n", time.Since(start).Round(time.Millisecond))
}

// testOwner is the postgres account when running as root, else the
// current user (PostgreSQL runs as any non-root user).
func testOwner() (Owner, error) {
	if os.Geteuid() == 0 {
		return LookupOwner("postgres")
	}
	cur, err := user.Current()
	if err != nil {
		return Owner{}, err
	}
	return LookupOwner(cur.Username)
}

func mkdirOwned(dir string, o Owner) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	return os.Chown(dir, int(o.UID), int(o.GID))
}

// node is one PostgreSQL instance of a test: its own data directory,
// socket directory and TCP port.
type node struct {
	t       *testing.T
	owner   Owner
	root    string // holds data, sock and postgres.log; removed at cleanup
	dataDir string
	sockDir string
	port    int
	cmd     *exec.Cmd
	exited  chan struct{}
}

// newNode prepares directories for an instance; the data directory is a
// copy of the template when clone is true, else empty.
func newNode(t *testing.T, clone bool) *node {
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
	n := &node{t: t, owner: owner, root: root,
		dataDir: filepath.Join(root, "data"), sockDir: filepath.Join(root, "sock")}
	if err := mkdirOwned(n.sockDir, owner); err != nil {
		t.Fatal(err)
	}
	if !clone {
		if err := mkdirOwned(n.dataDir, owner); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if out, err := exec.Command("cp", "-a", template.dir, n.dataDir).CombinedOutput(); err != nil {
		t.Fatalf("cp -a template: %v: %s", err, out)
	}
	err = filepath.WalkDir(n.dataDir, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, int(owner.UID), int(owner.GID))
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// start runs the postmaster as the owner and waits until it accepts
// connections. It is stopped (SIGQUIT, then SIGKILL to its process group)
// at cleanup unless stopped before.
func (n *node) start(extra ...string) {
	t := n.t
	t.Helper()
	n.port = freePort(t)
	args := append([]string{"-D", n.dataDir,
		"-c", fmt.Sprintf("port=%d", n.port),
		"-c", "unix_socket_directories=" + n.sockDir,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off",
	}, extra...)
	logf, err := os.OpenFile(filepath.Join(n.root, "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := Command(context.Background(), n.owner, pgBinDir, "postgres", args)
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL // never outlive the test binary
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start postgres: %v", err)
	}
	n.cmd = cmd
	n.exited = make(chan struct{})
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

	deadline := time.Now().Add(15 * time.Second)
	for {
		conn, err := Connect(t.Context(), n.params())
		if err == nil {
			conn.Close(t.Context())
			return
		}
		select {
		case <-n.exited:
			log, _ := os.ReadFile(filepath.Join(n.root, "postgres.log"))
			t.Fatalf("postgres exited during start-up: %v\n%s", cmd.ProcessState, log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("postgres not ready after 15s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill stops the postmaster's whole process group: SIGQUIT (immediate
// shutdown), then SIGKILL if it is still there after 5 s.
func (n *node) kill() {
	if n.cmd == nil {
		return
	}
	pgid := n.cmd.Process.Pid
	syscall.Kill(-pgid, syscall.SIGQUIT)
	select {
	case <-n.exited:
	case <-time.After(5 * time.Second):
	}
	// Backends may outlive the postmaster by a moment.
	syscall.Kill(-pgid, syscall.SIGKILL)
	<-n.exited
}

// stopFast shuts the postmaster down cleanly (SIGINT) and waits for it.
func (n *node) stopFast() {
	t := n.t
	t.Helper()
	n.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-n.exited:
	case <-time.After(15 * time.Second):
		t.Fatal("postgres did not stop within 15s of SIGINT")
	}
}

// params reaches the node over its unix socket.
func (n *node) params() ConnParams {
	return ConnParams{Host: n.sockDir, Port: n.port, User: "postgres", ConnectTimeout: time.Second}
}

func (n *node) connect() *pgx.Conn {
	t := n.t
	t.Helper()
	conn, err := Connect(t.Context(), n.params())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func (n *node) status(conn *pgx.Conn) Status {
	n.t.Helper()
	st, err := QueryStatus(n.t.Context(), conn)
	if err != nil {
		n.t.Fatal(err)
	}
	return st
}

func (n *node) controlData() ControlData {
	n.t.Helper()
	cd, err := ReadControlData(n.t.Context(), n.owner, pgBinDir, n.dataDir)
	if err != nil {
		n.t.Fatal(err)
	}
	return cd
}

// waitFor polls cond every 20 ms for up to 15 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func slotNames(t *testing.T, conn *pgx.Conn) map[string]bool {
	t.Helper()
	rows, err := conn.Query(t.Context(),
		"SELECT slot_name::text FROM pg_replication_slots WHERE slot_type = 'physical' AND restart_lsn IS NOT NULL")
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	set := make(map[string]bool)
	for _, n := range names {
		set[n] = true
	}
	return set
}

func TestIntegrationPrimary(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	p := newNode(t, true)
	p.start()
	conn := p.connect()

	st := p.status(conn)
	if st.InRecovery || st.Timeline != 1 || st.WriteLSN == 0 || st.ReceiveLSN != 0 || st.ReplayLSN != 0 {
		t.Errorf("primary status = %+v, want not in recovery, timeline 1, a write LSN only", st)
	}
	if st.Position() != st.WriteLSN {
		t.Errorf("Position() = %v, want the write LSN %v", st.Position(), st.WriteLSN)
	}
	if st.ServerVersion < 150000 || st.ServerVersion >= 160000 {
		t.Errorf("ServerVersion = %d, want 15xxxx", st.ServerVersion)
	}
	if age := time.Since(st.PostmasterStart); age < 0 || age > time.Minute {
		t.Errorf("PostmasterStart = %v, want moments ago", st.PostmasterStart)
	}
	if st.PendingRestart || st.ReplayPaused || st.ReceiverStatus != "" || st.ReceiverSender != "" || len(st.Replication) != 0 {
		t.Errorf("primary status = %+v, want no restart pending, no pause, no receiver, no replicas", st)
	}

	cd := p.controlData()
	if cd.State != StateInProduction || !IsPrimaryState(cd.State) || cd.TimelineID != 1 {
		t.Errorf("control data of a running primary: state %q timeline %d", cd.State, cd.TimelineID)
	}
	if cd.SystemIdentifier == 0 || cd.SystemIdentifier != st.SystemIdentifier {
		t.Errorf("system identifier: control data %d, QueryStatus %d", cd.SystemIdentifier, st.SystemIdentifier)
	}

	if err := Checkpoint(ctx, conn); err != nil {
		t.Fatal(err)
	}
	if after := p.controlData(); after.CheckpointLSN <= cd.CheckpointLSN {
		t.Errorf("checkpoint location %v after CHECKPOINT, was %v", after.CheckpointLSN, cd.CheckpointLSN)
	}

	// A setting changed in the config file that needs a restart.
	if _, err := conn.Exec(ctx, "ALTER SYSTEM SET max_connections = 90"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "pending_restart", func() bool { return p.status(conn).PendingRestart })

	t.Run("slots", func(t *testing.T) {
		if err := EnsurePhysicalSlots(ctx, conn, []string{"node_a", "node_b", "node_a"}); err != nil {
			t.Fatal(err)
		}
		if got := slotNames(t, conn); !got["node_a"] || !got["node_b"] || len(got) != 2 {
			t.Fatalf("slots with reserved WAL = %v, want node_a and node_b", got)
		}
		if err := EnsurePhysicalSlots(ctx, conn, []string{"node_a", "node_c"}); err != nil {
			t.Fatalf("second EnsurePhysicalSlots: %v", err)
		}
		if got := slotNames(t, conn); len(got) != 3 {
			t.Fatalf("slots = %v, want node_a, node_b, node_c: nothing dropped", got)
		}
		err := EnsurePhysicalSlots(ctx, conn, []string{"Bad-Name", "node_d"})
		if err == nil || !strings.Contains(err.Error(), `"Bad-Name"`) {
			t.Errorf("invalid slot name: error %v, want one naming the slot", err)
		}
		if got := slotNames(t, conn); !got["node_d"] {
			t.Errorf("a bad name kept node_d from being created: %v", got)
		}
		if err := DropPhysicalSlotsExcept(ctx, conn, []string{"node_a", "node_x"}); err != nil {
			t.Fatal(err)
		}
		if got := slotNames(t, conn); !got["node_a"] || len(got) != 1 {
			t.Fatalf("slots after DropPhysicalSlotsExcept(node_a) = %v", got)
		}
	})

	t.Run("password over TCP", func(t *testing.T) {
		password := `p:a\ss w'rd`
		if _, err := conn.Exec(ctx, "ALTER ROLE postgres PASSWORD "+quoteLiteral(password)); err != nil {
			t.Fatal(err)
		}
		tcp := ConnParams{Host: "127.0.0.1", Port: p.port, User: "postgres", ConnectTimeout: time.Second,
			Passfile: filepath.Join(t.TempDir(), "pgpass")}
		_, err := Connect(ctx, tcp)
		if err == nil {
			t.Fatal("connected over TCP without a password")
		}
		wantPrefix := fmt.Sprintf("connect to postgres at 127.0.0.1:%d: ", p.port)
		if !strings.HasPrefix(err.Error(), wantPrefix) {
			t.Errorf("error %q, want prefix %q", err, wantPrefix)
		}
		entries := []PassEntry{
			{Host: "127.0.0.1", Port: "1", User: "postgres", Password: "wrong"},
			{Host: "127.0.0.1", Port: fmt.Sprint(p.port), Database: "*", User: "postgres", Password: password},
		}
		if err := WritePgpass(tcp.Passfile, currentOwner(t), entries); err != nil {
			t.Fatal(err)
		}
		c, err := Connect(ctx, tcp)
		if err != nil {
			t.Fatalf("connect with passfile: %v", err)
		}
		c.Close(ctx)

		tcp.Passfile = ""
		tcp.Password = password
		c, err = Connect(ctx, tcp)
		if err != nil {
			t.Fatalf("connect with password: %v", err)
		}
		if got := p.status(c); got.SystemIdentifier != st.SystemIdentifier {
			t.Errorf("system identifier over TCP %d, want %d", got.SystemIdentifier, st.SystemIdentifier)
		}
		c.Close(ctx)

		tcp.Password = "wrong"
		if _, err := Connect(ctx, tcp); SQLState(err) != "28P01" {
			t.Errorf("wrong password: error %v (SQLSTATE %q), want 28P01", err, SQLState(err))
		}
	})

	if err := Promote(ctx, conn, time.Second); !errors.Is(err, ErrNotInRecovery) {
		t.Errorf("Promote on a primary: %v, want ErrNotInRecovery", err)
	}
	if h, err := TimelineHistory(ctx, p.params(), 1); err != nil || len(h) != 0 {
		t.Errorf("TimelineHistory(1) = %v, %v; want nothing", h, err)
	}
	if _, err := TimelineHistory(ctx, p.params(), 2); err == nil {
		t.Error("TimelineHistory(2) on a server that never left timeline 1 succeeded")
	}

	conn.Close(ctx)
	p.stopFast()
	if cd := p.controlData(); cd.State != StateShutDown || !IsPrimaryState(cd.State) {
		t.Errorf("state after a fast shutdown = %q, want %q", cd.State, StateShutDown)
	}
	if _, err := QueryStatus(ctx, conn); err == nil {
		t.Error("QueryStatus on a closed connection succeeded")
	}
}

func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

func TestIntegrationStandby(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	p := newNode(t, true)
	p.start()
	pconn := p.connect()
	if err := EnsurePhysicalSlots(ctx, pconn, []string{"standby1", "spare"}); err != nil {
		t.Fatal(err)
	}
	pst := p.status(pconn)

	s := newNode(t, false)
	_, err := Run(ctx, s.owner, pgBinDir, "pg_basebackup", []string{
		"-D", s.dataDir, "-R", "-h", p.sockDir, "-p", fmt.Sprint(p.port), "-U", "postgres",
		"-X", "stream", "-c", "fast", "--no-sync",
	})
	if err != nil {
		t.Fatal(err)
	}
	s.start("-c", "primary_slot_name=standby1", "-c", "cluster_name=standby1")
	sconn := s.connect()

	var st Status
	waitFor(t, "the standby to stream", func() bool {
		st = s.status(sconn)
		return st.ReceiverStatus == "streaming"
	})
	if !st.InRecovery || st.Timeline != 1 || st.ReceiveLSN == 0 || st.ReplayLSN == 0 || st.WriteLSN != 0 {
		t.Errorf("standby status = %+v, want in recovery on timeline 1 with receive and replay LSNs", st)
	}
	if st.Position() != max(st.ReceiveLSN, st.ReplayLSN) {
		t.Errorf("Position() = %v, want max(%v, %v)", st.Position(), st.ReceiveLSN, st.ReplayLSN)
	}
	if want := fmt.Sprintf("%s:%d", p.sockDir, p.port); st.ReceiverSender != want {
		t.Errorf("ReceiverSender = %q, want %q", st.ReceiverSender, want)
	}
	if st.SystemIdentifier != pst.SystemIdentifier || st.ReplayPaused {
		t.Errorf("standby status = %+v, want the primary's system identifier %d, replay not paused", st, pst.SystemIdentifier)
	}
	if cd := s.controlData(); cd.State != StateInArchiveRecovery || IsPrimaryState(cd.State) {
		t.Errorf("control data state of a running standby = %q", cd.State)
	}

	var replicas []Replica
	waitFor(t, "the primary to list the standby as streaming", func() bool {
		replicas = p.status(pconn).Replication
		return len(replicas) == 1 && replicas[0].State == "streaming"
	})
	if r := replicas[0]; r.ApplicationName != "standby1" || r.SyncState != "async" || r.SentLSN == 0 || r.ClientAddr != "" {
		t.Errorf("replica = %+v, want standby1, async, over the unix socket, with a sent LSN", r)
	}

	// The active slot survives; the idle one goes.
	if err := DropPhysicalSlotsExcept(ctx, pconn, nil); err != nil {
		t.Fatal(err)
	}
	if got := slotNames(t, pconn); !got["standby1"] || got["spare"] {
		t.Errorf("slots after DropPhysicalSlotsExcept(nil) = %v, want only the active standby1", got)
	}

	// Writes on the primary reach the standby.
	if _, err := pconn.Exec(ctx, "CREATE TABLE t AS SELECT 1 AS x"); err != nil {
		t.Fatal(err)
	}
	target := p.status(pconn).WriteLSN
	waitFor(t, "the standby to replay "+target.String(), func() bool {
		st = s.status(sconn)
		return st.ReplayLSN >= target
	})
	beforePromote := st.ReplayLSN
	// The standby reports each flush back.
	waitFor(t, "the primary to see the standby's flush", func() bool {
		replicas = p.status(pconn).Replication
		return len(replicas) == 1 && replicas[0].FlushLSN >= target
	})
	if r := replicas[0]; r.SentLSN < target || r.WriteLSN < target {
		t.Errorf("replica = %+v, want sent and written up to %v", r, target)
	}

	start := time.Now()
	if err := Promote(ctx, sconn, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("promotion took %v", time.Since(start).Round(time.Millisecond))
	st = s.status(sconn)
	if st.InRecovery || st.Timeline != 2 || st.WriteLSN < beforePromote {
		t.Errorf("promoted status = %+v, want a primary on timeline 2", st)
	}
	if _, err := sconn.Exec(ctx, "INSERT INTO t VALUES (2)"); err != nil {
		t.Errorf("write after promotion: %v", err)
	}
	if cd := s.controlData(); cd.State != StateInProduction {
		t.Errorf("control data state after promotion = %q", cd.State)
	}
	if err := Promote(ctx, sconn, time.Second); !errors.Is(err, ErrNotInRecovery) {
		t.Errorf("second Promote: %v, want ErrNotInRecovery", err)
	}

	// A replication connection from Connect speaks the replication protocol.
	rp := s.params()
	rp.Replication = true
	rconn, err := Connect(ctx, rp)
	if err != nil {
		t.Fatal(err)
	}
	res, err := rconn.PgConn().Exec(ctx, "IDENTIFY_SYSTEM").ReadAll()
	rconn.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(res[0].Rows[0][0]); got != fmt.Sprint(pst.SystemIdentifier) {
		t.Errorf("IDENTIFY_SYSTEM systemid = %s, want %d", got, pst.SystemIdentifier)
	}
	if got := string(res[0].Rows[0][1]); got != "2" {
		t.Errorf("IDENTIFY_SYSTEM timeline = %s, want 2", got)
	}

	h, err := TimelineHistory(ctx, s.params(), 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 1 || h[0].Timeline != 1 || h[0].SwitchLSN < beforePromote || h[0].SwitchLSN > st.WriteLSN ||
		h[0].Reason != "no recovery target specified" {
		t.Errorf("TimelineHistory(2) = %+v, want timeline 1 ending between %v and %v", h, beforePromote, st.WriteLSN)
	}
	if _, err := TimelineHistory(ctx, s.params(), 3); err == nil || SQLState(err) == "" {
		t.Errorf("TimelineHistory(3): %v, want a server error", err)
	}
}
