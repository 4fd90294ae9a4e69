package e2e

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"gopkg.in/yaml.v3"

	"github.com/pg-ha/pg-ha/lib/dcs/etcdtest"
	pgstate "github.com/pg-ha/pg-ha/lib/state"
	"github.com/pg-ha/pg-ha/lib/testcluster"
)

// handNode is a node started the way the README shows, as the postgres user
// with a plain shell, no --runtime-dir and a minimal YAML (no
// bootstrap.initdb: the database is SQL_ASCII):
//
//	pg-bootstrap --config F && pg-lockd --config F | pg-supervise --config F
//	pg-healthd --config F
type handNode struct {
	name, dir, config, dataDir string
	pgPort                     int
	groups                     []int // process groups of the two shells
}

const handPassword = "hand-superuser"

// TestInputsNodesAsPostgresWithoutRuntimeDir starts two nodes on one host
// with the README's commands as the postgres user, without --runtime-dir and
// without /run/pg-ha prepared: both come up (one primary, one streaming
// replica), each in a runtime directory of its own that every program logs
// and uses. Then a SIGHUP to each daemon leaves it, and PostgreSQL, running
// (pg-lockd and pg-supervise read their YAML again).
func TestInputsNodesAsPostgresWithoutRuntimeDir(t *testing.T) {
	testcluster.SkipUnlessAvailable(t)
	bin := testcluster.Binaries(t)
	pg, err := user.Lookup("postgres")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(pg.Uid)
	gid, _ := strconv.Atoi(pg.Gid)
	if uid == 0 {
		t.Fatal("the postgres user must not be root")
	}
	etcd := etcdtest.Start(t)
	base, err := os.MkdirTemp("/tmp", "pgha-hand-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	scope := fmt.Sprintf("hand-%d", time.Now().UnixNano()%1_000_000)
	t.Cleanup(func() { os.Remove(filepath.Join("/tmp", "pg-ha-"+pg.Uid)) }) // only if empty
	var nodes []*handNode
	for i := 1; i <= 2; i++ {
		n := &handNode{name: fmt.Sprintf("node%d", i), pgPort: testcluster.FreePort(t)}
		n.dir = filepath.Join(base, n.name)
		n.dataDir = filepath.Join(n.dir, "data")
		n.config = filepath.Join(n.dir, n.name+".yml")
		if err := os.Mkdir(n.dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(n.dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		doc := handConfig(scope, n, testcluster.FreePort(t), strings.TrimPrefix(etcd.Endpoints()[0], "http://"))
		if err := os.WriteFile(n.config, doc, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(n.config, uid, gid); err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, n)
		// Whatever the programs chose is removed with the test.
		t.Cleanup(func() { os.RemoveAll(filepath.Join("/tmp", "pg-ha-"+pg.Uid, scope+"-"+n.name)) })
	}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, n := range nodes {
			for _, prog := range []string{"bootstrap", "lockd", "supervise", "healthd"} {
				b, _ := os.ReadFile(filepath.Join(n.dir, prog+".log"))
				if len(b) > 6000 {
					b = b[len(b)-6000:]
				}
				t.Logf("--- %s pg-%s:\n%s", n.name, prog, b)
			}
		}
	})
	for _, n := range nodes {
		n.start(t, bin, uid, gid,
			`pg-bootstrap --config "$F" $V 2>>bootstrap.log && pg-lockd --config "$F" $V 2>>lockd.log | pg-supervise --config "$F" $V 2>>supervise.log`)
		n.start(t, bin, uid, gid, `exec pg-healthd --config "$F" $V 2>>healthd.log`)
	}

	primary, replica := waitPrimaryAndReplica(t, nodes, 45*time.Second)
	t.Logf("primary %s, streaming replica %s", primary.name, replica.name)

	// Every program of a node logged the same runtime directory, the
	// per-user fallback, and the state files are there.
	dirs := map[string]string{}
	for _, n := range nodes {
		want := filepath.Join("/tmp", "pg-ha-"+pg.Uid, scope+"-"+n.name)
		for _, prog := range []string{"bootstrap", "lockd", "supervise", "healthd"} {
			got := loggedRuntimeDir(t, filepath.Join(n.dir, prog+".log"))
			if got != want {
				t.Errorf("%s pg-%s: runtime directory %q, want the per-user fallback %q", n.name, prog, got, want)
			}
		}
		if other, dup := dirs[want]; dup {
			t.Errorf("%s and %s share the runtime directory %s", other, n.name, want)
		}
		dirs[want] = n.name
		for _, f := range []string{pgstate.SuperviseFile, pgstate.LockdFile} {
			st, err := os.Stat(filepath.Join(want, f))
			if err != nil {
				t.Errorf("%s: %v", n.name, err)
			} else if int(st.Sys().(*syscall.Stat_t).Uid) != uid {
				t.Errorf("%s: %s not owned by postgres", n.name, f)
			}
		}
		if st, err := os.Lstat(filepath.Dir(want)); err != nil || st.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v (%v), want 0700", filepath.Dir(want), st.Mode(), err)
		}
	}

	// SIGHUP to every daemon: each keeps running and PostgreSQL is the
	// same postmaster.
	before := map[string]int{}
	for _, n := range nodes {
		before[n.name] = postmasterPID(t, n)
	}
	var hupped []int
	for _, n := range nodes {
		for _, prog := range []string{"pg-lockd", "pg-supervise", "pg-healthd"} {
			pid := findProcess(t, prog, n.config)
			if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
				t.Fatalf("SIGHUP %s of %s: %v", prog, n.name, err)
			}
			hupped = append(hupped, pid)
		}
	}
	time.Sleep(3 * time.Second) // three loops
	for _, pid := range hupped {
		if !alive(pid) {
			t.Errorf("pid %d died of SIGHUP", pid)
		}
	}
	for _, n := range nodes {
		if got := postmasterPID(t, n); got != before[n.name] || !alive(got) {
			t.Errorf("%s: postmaster pid %d before SIGHUP, %d after (alive %v)", n.name, before[n.name], got, alive(got))
		}
		// pg-lockd and pg-supervise read their YAML again; pg-healthd
		// ignores the signal.
		for prog, want := range map[string]string{"lockd": "reading the configuration again", "supervise": "reading the configuration again", "healthd": "SIGHUP ignored"} {
			b, _ := os.ReadFile(filepath.Join(n.dir, prog+".log"))
			if !strings.Contains(string(b), want) {
				t.Errorf("%s pg-%s: no log line %q about the SIGHUP", n.name, prog, want)
			}
		}
	}
	if p, r := waitPrimaryAndReplica(t, nodes, 10*time.Second); p != primary || r != replica {
		t.Errorf("after SIGHUP: primary %s replica %s, want %s and %s", p.name, r.name, primary.name, replica.name)
	}
}

func handConfig(scope string, n *handNode, apiPort int, etcdHost string) []byte {
	pgAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(n.pgPort))
	apiAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(apiPort))
	doc := map[string]any{
		"scope":   scope,
		"name":    n.name,
		"restapi": map[string]any{"listen": apiAddr, "connect_address": apiAddr},
		"etcd3":   map[string]any{"hosts": []string{etcdHost}},
		"bootstrap": map[string]any{
			"dcs": map[string]any{"postgresql": map[string]any{
				"use_pg_rewind": true,
				"parameters":    map[string]any{"wal_log_hints": "on", "fsync": "off"},
			}},
			"pg_hba": []string{
				"local all all trust",
				"host replication replicator 127.0.0.1/32 md5",
				"host all all 127.0.0.1/32 md5",
			},
		},
		"postgresql": map[string]any{
			"listen":          pgAddr,
			"connect_address": pgAddr,
			"data_dir":        n.dataDir,
			"pgpass":          filepath.Join(n.dir, "pgpass"),
			"authentication": map[string]any{
				"superuser":   map[string]any{"username": "postgres", "password": handPassword},
				"replication": map[string]any{"username": "replicator", "password": "hand-replicator"},
			},
			"parameters": map[string]any{"unix_socket_directories": n.dir},
		},
	}
	b, err := yaml.Marshal(doc)
	if err != nil {
		panic(err)
	}
	return b
}

// start runs script with sh as the postgres user in n's directory, in a
// process group of its own that the test's cleanup stops.
func (n *handNode) start(t *testing.T, bin string, uid, gid int, script string) {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Dir = n.dir
	cmd.Env = []string{
		"PATH=" + bin + ":/usr/lib/postgresql/15/bin:/usr/bin:/bin",
		"HOME=" + n.dir, "USER=postgres", "LOGNAME=postgres", "LANG=C.UTF-8",
		"F=" + n.config,
		"V=--log.level=" + cmp.Or(os.Getenv("PGHA_TEST_LOG_LEVEL"), "info"),
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)},
		Setpgid:    true,
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := cmd.Process.Pid
	n.groups = append(n.groups, pgid)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-done
		}
		// pg-supervise takes PostgreSQL down with it; make sure.
		if b, err := os.ReadFile(filepath.Join(n.dataDir, "postmaster.pid")); err == nil {
			if pid, err := strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0]); err == nil && alive(pid) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
}

// waitPrimaryAndReplica waits until one node is a writable primary and the
// other streams from it.
func waitPrimaryAndReplica(t *testing.T, nodes []*handNode, within time.Duration) (primary, replica *handNode) {
	t.Helper()
	deadline := time.Now().Add(within)
	last := ""
	for time.Now().Before(deadline) {
		primary, replica = nil, nil
		for _, n := range nodes {
			inRecovery, status, err := n.role()
			switch {
			case err != nil:
				last = fmt.Sprintf("%s: %v", n.name, err)
			case !inRecovery:
				primary = n
			case status == "streaming":
				replica = n
			default:
				last = fmt.Sprintf("%s: in recovery, wal receiver %q", n.name, status)
			}
		}
		if primary != nil && replica != nil {
			return primary, replica
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("no primary with a streaming replica within %s; last: %s", within, last)
	return nil, nil
}

func (n *handNode) role() (inRecovery bool, status string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/postgres?sslmode=disable", handPassword, n.pgPort))
	if err != nil {
		return false, "", err
	}
	defer conn.Close(ctx)
	var st *string
	err = conn.QueryRow(ctx, "SELECT pg_is_in_recovery(), (SELECT status FROM pg_stat_wal_receiver)").Scan(&inRecovery, &st)
	if st != nil {
		status = *st
	}
	return inRecovery, status, err
}

// loggedRuntimeDir returns the runtime_dir of the "runtime directory" line
// of a program's JSON log.
func loggedRuntimeDir(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var line struct {
			Message    string `json:"message"`
			RuntimeDir string `json:"runtime_dir"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.RuntimeDir != "" && strings.HasPrefix(line.Message, "runtime directory") {
			return line.RuntimeDir
		}
	}
	return ""
}

// findProcess returns the pid of program prog running with config.
func findProcess(t *testing.T, prog, config string) int {
	t.Helper()
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if filepath.Base(args[0]) == prog && strings.Contains(string(b), "\x00"+config) && alive(pid) {
			return pid
		}
	}
	t.Fatalf("no %s running with --config %s", prog, config)
	return 0
}

func postmasterPID(t *testing.T, n *handNode) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(n.dataDir, "postmaster.pid"))
	if err != nil {
		t.Fatalf("%s: %v", n.name, err)
	}
	pid, err := strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0])
	if err != nil {
		t.Fatalf("%s: postmaster.pid: %v", n.name, err)
	}
	return pid
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] != 'Z'
}
