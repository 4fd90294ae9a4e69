package e2e

import (
	"bytes"
	"context"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/pg-ha/pg-ha/lib/testcluster"
)

// TestPatronictlForms drives two real nodes with pg-failover typed as a
// Patroni operator types patronictl: edit-config CLUSTER --pg … --force
// changes the config key so that patronictl show-config reads the same
// configuration as pg-failover show-config; failover CLUSTER --candidate R
// --force demotes the live leader and R ends up the writable primary;
// topology and dsn then show R as the leader; a misspelt command gets one
// line with the right one.
func TestPatronictlForms(t *testing.T) {
	c := testcluster.Start(t, testcluster.Options{Nodes: 2})
	p := c.WaitPrimary(t, 10*time.Second)
	r := replicasOf(c, p)[0]
	c.WaitReplicasStreaming(t, 10*time.Second)

	out, stderr, code := pgFailover(t, p, "edit-config", c.Scope, "--pg", "work_mem=8MB", "--force")
	if code != 0 || !strings.Contains(out, "+    work_mem: 8MB\n") {
		t.Fatalf("edit-config: exit %d, stdout %q, stderr %s", code, out, lastLine(stderr))
	}
	ours, _, code := pgFailover(t, p, "show-config")
	if code != 0 {
		t.Fatalf("show-config: exit %d", code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/usr/bin/patronictl", "-c", p.ConfigPath, "show-config")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	theirs, err := cmd.Output()
	if err != nil {
		t.Fatalf("patronictl show-config: %v\n%s", err, errb.String())
	}
	var a, b map[string]any
	if err := yaml.Unmarshal([]byte(ours), &a); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(theirs, &b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) || !strings.Contains(ours, "work_mem: 8MB") {
		t.Errorf("pg-failover show-config:\n%s\npatronictl show-config:\n%s", ours, theirs)
	}

	out, stderr, code = pgFailover(t, p, "failover", c.Scope, "--candidate", r.Name, "--force")
	if code != 0 || !strings.HasPrefix(out, "switchover to "+r.Name+" done in ") {
		t.Fatalf("failover --candidate %s: exit %d, stdout %q, stderr %s\n%s", r.Name, code, out, lastLine(stderr), c.Logs())
	}
	if now, err := c.Primary(context.Background()); err != nil || now != r {
		t.Fatalf("after failover --candidate %s exited 0: primary %v, %v", r.Name, now, err)
	}
	c.WaitReplicasStreaming(t, 20*time.Second)

	out, _, code = pgFailover(t, p, "topology")
	if code != 0 || !strings.Contains(out, "| "+r.Name+" ") || !strings.Contains(out, "| + "+p.Name+" ") {
		t.Errorf("topology: exit %d:\n%s", code, out)
	}
	out, _, code = pgFailover(t, p, "dsn")
	if code != 0 || !strings.Contains(out, " port="+strconv.Itoa(r.PGPort)+" ") {
		t.Errorf("dsn: exit %d, %q; want the leader %s's port %d", code, out, r.Name, r.PGPort)
	}
	_, stderr, code = pgFailover(t, p, "lsit")
	if code != 2 || lastLine(stderr) != "pg-failover: unknown command lsit; did you mean list?" {
		t.Errorf("lsit: exit %d, stderr %q", code, stderr)
	}
}
