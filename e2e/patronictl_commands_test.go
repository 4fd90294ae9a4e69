package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/testcluster"
)

// TestPatronictlCommands runs pg-failover's remaining patronictl commands
// against one two-node cluster whose REST API needs credentials:
//
//   - query: tsv on the leader by default, --role replica as JSON, a file
//     of statements as a table (the last statement's rows), and a SQL
//     error as exit 1 with the SQLSTATE;
//   - restart --role replica --scheduled: scheduled on the replica's
//     pg-healthd (POST /restart with schedule, with the YAML's
//     credentials); a second one is refused (exit 18); flush restart
//     cancels it, so that another can be scheduled, and that one restarts
//     the replica's postmaster, not before its time, and not the leader's;
//   - restart --pending: after edit-config changes a parameter that needs
//     a restart, --pending -r replica restarts the replica only, which then
//     runs with the new value; run again, it finds nothing to restart;
//   - remove: refused while a leader is alive (exit 15); once the nodes
//     are stopped a wrong typed answer removes nothing (exit 2), and the
//     right ones (the cluster's name, "Yes I am aware") delete every key.
func TestPatronictlCommands(t *testing.T) {
	auth := map[string]any{"username": "admin", "password": "s3cret"}
	c := testcluster.Start(t, testcluster.Options{Nodes: 2, Healthd: true, ExtraRestAPI: map[string]any{"authentication": auth}})
	p := c.WaitPrimary(t, 10*time.Second)
	r := replicasOf(c, p)[0]
	c.WaitReplicasStreaming(t, 20*time.Second)
	// query -r replica picks from the member keys, as patronictl does: wait
	// for them to say what PostgreSQL already says.
	waitMembersStreaming(t, c, p, 10*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// query
	const where = "SELECT inet_server_port() AS port, pg_is_in_recovery() AS standby"
	out, stderr, code := pgFailover(t, p, "query", c.Scope, "-c", where)
	if want := fmt.Sprintf("port\tstandby\n%d\tf\n", p.PGPort); code != 0 || out != want {
		t.Errorf("query: exit %d, %q, want %q; %s", code, out, want, lastLine(stderr))
	}
	out, stderr, code = pgFailover(t, p, "query", "-r", "replica", "--format", "json", "-c", where)
	var rows []map[string]any
	if err := json.Unmarshal([]byte(out), &rows); code != 0 || err != nil || len(rows) != 1 ||
		rows[0]["port"] != float64(r.PGPort) || rows[0]["standby"] != true {
		t.Errorf("query -r replica --format json: exit %d, %q (%v); %s", code, out, err, lastLine(stderr))
	}
	file := filepath.Join(t.TempDir(), "q.sql")
	if err := os.WriteFile(file, []byte("CREATE TEMP TABLE q (n int);\nINSERT INTO q VALUES (2), (1);\nSELECT n FROM q ORDER BY n;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, code = pgFailover(t, p, "query", "-m", p.Name, "-f", file, "--format", "pretty")
	if want := "+---+\n| n |\n+---+\n| 1 |\n| 2 |\n+---+\n"; code != 0 || out != want {
		t.Errorf("query -f: exit %d, %q, want %q; %s", code, out, want, lastLine(stderr))
	}
	_, stderr, code = pgFailover(t, p, "query", "-c", "SELEC 1")
	wantExit(t, code, stderr, 1, "query on "+p.Name, "42601")

	// restart --scheduled and flush restart, through the replica's REST API.
	started := func(n *testcluster.Node) time.Time {
		var ts time.Time
		if err := n.QueryRow(ctx, "SELECT pg_postmaster_start_time()", nil, &ts); err != nil {
			t.Fatal(err)
		}
		return ts
	}
	pStart, rStart := started(p), started(r)
	at := time.Now().Add(3 * time.Second).UTC().Truncate(time.Second).Add(time.Second)
	out, stderr, code = pgFailover(t, p, "restart", c.Scope, "--role", "replica", "--scheduled", at.Format(time.RFC3339), "--force")
	if code != 0 || !strings.HasPrefix(out, "restart of "+r.Name+" scheduled at ") {
		t.Fatalf("restart --role replica --scheduled: exit %d, %q; %s", code, out, lastLine(stderr))
	}
	_, stderr, code = pgFailover(t, p, "restart", r.Name, "--at", at.Add(time.Minute).Format(time.RFC3339))
	wantExit(t, code, stderr, 18, "already scheduled on "+r.Name)
	out, stderr, code = pgFailover(t, p, "flush", c.Scope, "restart")
	if code != 0 || strings.TrimSpace(out) != "cancelled the scheduled restart of "+r.Name {
		t.Errorf("flush restart: exit %d, %q; %s", code, out, lastLine(stderr))
	}
	out, _, code = pgFailover(t, p, "flush", c.Scope, r.Name, "restart")
	if code != 0 || !strings.HasPrefix(out, "no restart is scheduled") {
		t.Errorf("flush restart with none: exit %d, %q", code, out)
	}
	out, stderr, code = pgFailover(t, p, "restart", r.Name, "--at", at.Format(time.RFC3339))
	if code != 0 {
		t.Fatalf("restart --at after flush: exit %d, %q; %s", code, out, lastLine(stderr))
	}
	waitUntil(t, 30*time.Second, r.Name+" restarted by its scheduled restart", func() bool {
		var ts time.Time
		err := r.QueryRow(ctx, "SELECT pg_postmaster_start_time()", nil, &ts)
		return err == nil && !ts.Equal(rStart)
	})
	if now := started(r); now.Before(at) {
		t.Errorf("%s restarted at %s, before its schedule %s", r.Name, now.Format(time.RFC3339Nano), at.Format(time.RFC3339))
	}
	if !started(p).Equal(pStart) {
		t.Errorf("the leader %s was restarted too", p.Name)
	}
	c.WaitReplicasStreaming(t, 20*time.Second)

	// restart --pending: the replica only, once a parameter needs a restart.
	if _, stderr, code = pgFailover(t, p, "edit-config", "--pg", "max_locks_per_transaction=128", "--force", "-q"); code != 0 {
		t.Fatalf("edit-config: exit %d: %s", code, lastLine(stderr))
	}
	pending := func(n *testcluster.Node) bool {
		ms, err := c.Members(ctx)
		return err == nil && ms[n.Name]["pending_restart"] == true
	}
	waitUntil(t, 15*time.Second, "pending_restart in both member keys", func() bool { return pending(p) && pending(r) })
	out, stderr, code = pgFailover(t, p, "restart", "--pending", "-r", "replica")
	if code != 0 || !strings.HasPrefix(out, "restart of "+r.Name+" done in ") {
		t.Fatalf("restart --pending -r replica: exit %d, %q; %s", code, out, lastLine(stderr))
	}
	if got := setting(ctx, r, "max_locks_per_transaction"); got != "128" {
		t.Errorf("%s after restart --pending: max_locks_per_transaction %s, want 128", r.Name, got)
	}
	if got := setting(ctx, p, "max_locks_per_transaction"); got != "64" || !started(p).Equal(pStart) {
		t.Errorf("the leader %s was restarted by restart --pending -r replica (max_locks_per_transaction %s)", p.Name, got)
	}
	waitUntil(t, 15*time.Second, r.Name+" without pending_restart", func() bool { return !pending(r) })
	out, _, code = pgFailover(t, p, "restart", "--pending", "--role", "replica")
	if code != 0 || !strings.HasPrefix(out, "no member matches (role replica, with a pending restart)") {
		t.Errorf("restart --pending --role replica with none pending: exit %d, %q", code, out)
	}

	// remove
	_, stderr, code = pgFailover(t, p, "remove", c.Scope)
	wantExit(t, code, stderr, 15, p.Name+" holds the leader key")
	for _, n := range []*testcluster.Node{r, p} {
		n.Stop(t, syscall.SIGTERM)
	}
	waitUntil(t, 3*c.Options.TTL, "no leader key", func() bool {
		l, err := c.Leader(ctx)
		return err == nil && l == ""
	})
	_, stderr, code = pgFailoverInput(t, p, c.Scope+"\nyes\n", "remove", c.Scope)
	wantExit(t, code, stderr, 2, `You did not exactly type "Yes I am aware"`)
	if v, err := c.Get(ctx, c.Key("initialize")); err != nil || v == "" {
		t.Fatalf("initialize key after a refused remove: %q %v", v, err)
	}
	out, stderr, code = pgFailoverInput(t, p, c.Scope+"\nYes I am aware\n", "remove", c.Scope)
	if code != 0 || !strings.HasPrefix(out, "removed cluster "+c.Scope+" from etcd") {
		t.Fatalf("remove: exit %d, %q; %s", code, out, lastLine(stderr))
	}
	for _, k := range []string{"initialize", "config", "members/" + p.Name, "members/" + r.Name, "history"} {
		if v, err := c.Get(ctx, c.Key(k)); err != nil || v != "" {
			t.Errorf("key %s after remove: %q %v", k, v, err)
		}
	}
}

// pgFailoverInput runs pg-failover on n's YAML with input on its stdin.
func pgFailoverInput(t testing.TB, n *testcluster.Node, input string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	full := append([]string{"--config", n.ConfigPath, "--log.format", "json"}, args...)
	cmd := exec.Command(filepath.Join(testcluster.Binaries(t), "pg-failover"), full...)
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(input), &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code, err = ee.ExitCode(), nil
	}
	if err != nil {
		t.Fatalf("run pg-failover %s: %v", strings.Join(args, " "), err)
	}
	t.Logf("pg-failover %s (stdin %q) → exit %d\n  stdout: %s\n  stderr (last line): %s", strings.Join(args, " "), input, code,
		indent(out.String()), lastLine(errb.String()))
	return out.String(), errb.String(), code
}
