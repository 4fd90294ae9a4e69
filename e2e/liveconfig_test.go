package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	clientv3 "go.etcd.io/etcd/client/v3"
	"gopkg.in/yaml.v3"

	"github.com/pg-ha/pg-ha/lib/testcluster"
)

// TestLiveConfig changes the configuration of a running 3-node cluster
// under a continuous workload, as an operator would with patronictl
// edit-config and a SIGHUP: a parameter PostgreSQL reloads (work_mem)
// written into the config key is in force on every node within seconds,
// without a restart of any postmaster; one that needs a restart
// (max_locks_per_transaction) shows as pending_restart in every member key;
// a pg_hba line added in the config key lets a new client in; and a
// parameter changed in each node's YAML applies after a SIGHUP to
// pg-supervise, to pg-lockd, or to both, with PostgreSQL left running.
func TestLiveConfig(t *testing.T) {
	c, w := start(t, testcluster.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	pids := map[string]int{}
	for _, n := range c.Nodes {
		pids[n.Name] = n.PID(testcluster.Postmaster)
		if pids[n.Name] == 0 {
			t.Fatalf("%s: no postmaster", n.Name)
		}
	}
	p := c.WaitPrimary(t, 10*time.Second)
	if err := p.Exec(ctx, "CREATE ROLE newcomer LOGIN"); err != nil {
		t.Fatal(err)
	}
	c.WaitReplicasCaughtUp(t, 10*time.Second)
	for _, n := range c.Nodes {
		if err := newcomer(ctx, n); err == nil {
			t.Fatalf("%s: newcomer connects without a password before pg_hba lets it in", n.Name)
		}
	}

	// patronictl edit-config: parameters and pg_hba in the config key.
	raw, err := c.Get(ctx, c.Key("config"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		t.Fatalf("config key %q: %v", raw, err)
	}
	pgc, _ := cfg["postgresql"].(map[string]any)
	if pgc == nil {
		pgc = map[string]any{}
		cfg["postgresql"] = pgc
	}
	params, _ := pgc["parameters"].(map[string]any)
	if params == nil {
		params = map[string]any{}
		pgc["parameters"] = params
	}
	params["work_mem"] = "7MB"
	params["max_locks_per_transaction"] = 128
	pgc["pg_hba"] = []string{
		"host all newcomer 127.0.0.1/32 trust",
		"local all all trust",
		"host replication replicator 127.0.0.1/32 md5",
		"host all all 127.0.0.1/32 md5",
	}
	b, _ := json.Marshal(cfg)
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Etcd.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	w.Mark("config key changed")
	changed := time.Now()
	if _, err := cli.Put(ctx, c.Key("config"), string(b)); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Nodes {
		waitUntil(t, 10*time.Second, n.Name+" work_mem 7MB from the config key", func() bool { return setting(ctx, n, "work_mem") == "7MB" })
		waitUntil(t, 10*time.Second, n.Name+" letting newcomer in through the config key's pg_hba", func() bool { return newcomer(ctx, n) == nil })
	}
	t.Logf("config key applied on every node in %s", time.Since(changed).Round(10*time.Millisecond))
	waitUntil(t, 15*time.Second, "pending_restart in every member key", func() bool {
		ms, err := c.Members(ctx)
		if err != nil {
			return false
		}
		for _, n := range c.Nodes {
			if ms[n.Name]["pending_restart"] != true {
				return false
			}
		}
		return true
	})
	for _, n := range c.Nodes {
		if got := setting(ctx, n, "max_locks_per_transaction"); got != "64" {
			t.Errorf("%s: max_locks_per_transaction %q in force without a restart", n.Name, got)
		}
		// pg-supervise looks at pending_restart on its next tick, which may
		// come after pg-lockd published it.
		deadline := time.Now().Add(5 * time.Second)
		for !n.LogContains(testcluster.Supervise, "max_locks_per_transaction: 64 -> 128") {
			if time.Now().After(deadline) {
				t.Errorf("%s: pg-supervise did not log the pending parameter with its old and new value", n.Name)
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	// A parameter changed in each node's YAML, then SIGHUP: to pg-supervise
	// alone, to pg-lockd alone, to both.
	signalled := [][]testcluster.Proc{{testcluster.Supervise}, {testcluster.Lockd}, {testcluster.Lockd, testcluster.Supervise}}
	for i, n := range c.Nodes {
		setLocalParameter(t, n, "log_min_duration_statement", 1234)
		for _, p := range signalled[i] {
			if err := n.Signal(p, syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i, n := range c.Nodes {
		waitUntil(t, 10*time.Second, fmt.Sprintf("%s log_min_duration_statement from its YAML after SIGHUP to %v", n.Name, signalled[i]),
			func() bool { return setting(ctx, n, "log_min_duration_statement") == "1234ms" })
	}
	// pg-failover reload: every member reloads PostgreSQL on request.
	before := map[string]int{}
	for _, n := range c.Nodes {
		before[n.Name] = logCount(n, testcluster.Supervise, reloadedMsg)
	}
	if out, errOut, code := pgFailover(t, c.Nodes[0], "reload"); code != 0 {
		t.Fatalf("pg-failover reload: exit %d: %s %s", code, out, errOut)
	}
	for _, n := range c.Nodes {
		waitUntil(t, 5*time.Second, n.Name+" reloading PostgreSQL on pg-failover reload", func() bool {
			return logCount(n, testcluster.Supervise, reloadedMsg) > before[n.Name]
		})
	}

	// A YAML that does not load is refused; everything keeps running.
	n := c.Nodes[0]
	good, err := os.ReadFile(n.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(n.ConfigPath, []byte("scope: [unterminated\n"), 0); err != nil {
		t.Fatal(err)
	}
	for _, p := range []testcluster.Proc{testcluster.Lockd, testcluster.Supervise} {
		if err := n.Signal(p, syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, 5*time.Second, "the bad YAML refused by both daemons", func() bool {
		return logCount(n, testcluster.Lockd, "configuration not reloaded") >= 1 &&
			logCount(n, testcluster.Supervise, "configuration not reloaded") >= 1
	})
	if err := os.WriteFile(n.ConfigPath, good, 0); err != nil {
		t.Fatal(err)
	}
	if got := setting(ctx, n, "log_min_duration_statement"); got != "1234ms" {
		t.Errorf("%s: log_min_duration_statement %q after a bad YAML, want the settings in force kept", n.Name, got)
	}

	for _, n := range c.Nodes {
		for _, p := range []testcluster.Proc{testcluster.Lockd, testcluster.Supervise} {
			if !n.Running(p) {
				t.Errorf("%s: %s exited after SIGHUP: %s", n.Name, p, n.Exited(p))
			}
		}
		if got := n.PID(testcluster.Postmaster); got != pids[n.Name] {
			t.Errorf("%s: postmaster %d became %d: the configuration changes restarted PostgreSQL", n.Name, pids[n.Name], got)
		}
	}
	finish(t, c, w)
}

// reloadedMsg is what pg-supervise logs when it reloads PostgreSQL.
const reloadedMsg = "PostgreSQL reloaded"

// logCount counts the lines of program p's log on n that contain s.
func logCount(n *testcluster.Node, p testcluster.Proc, s string) int {
	b, err := os.ReadFile(filepath.Join(n.Dir, p.String()+".log"))
	if err != nil {
		return 0
	}
	return strings.Count(string(b), s)
}

// setting returns current_setting(name) on n, "" if it does not answer.
func setting(ctx context.Context, n *testcluster.Node, name string) string {
	var v string
	if err := n.QueryRow(ctx, "SELECT current_setting($1)", []any{name}, &v); err != nil {
		return ""
	}
	return v
}

// newcomer connects to n as the role newcomer without a password.
func newcomer(ctx context.Context, n *testcluster.Node) error {
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, fmt.Sprintf("host=127.0.0.1 port=%d user=newcomer dbname=postgres sslmode=disable connect_timeout=2", n.PGPort))
	if err != nil {
		return err
	}
	return conn.Close(cctx)
}

// setLocalParameter sets postgresql.parameters.name in n's YAML, in place
// (the file keeps its owner and mode).
func setLocalParameter(t *testing.T, n *testcluster.Node, name string, value any) {
	t.Helper()
	b, err := os.ReadFile(n.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	pg := doc["postgresql"].(map[string]any)
	params, _ := pg["parameters"].(map[string]any)
	if params == nil {
		params = map[string]any{}
		pg["parameters"] = params
	}
	params[name] = value
	out, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(n.ConfigPath, out, 0); err != nil {
		t.Fatal(err)
	}
}
