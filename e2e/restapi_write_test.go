package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/testcluster"
)

// patronictl runs Debian's patronictl (Patroni 3.0.2) with node n's YAML
// and returns its combined output. patronictl exits 0 even when the REST
// call failed, so callers check the output and the effect.
func patronictl(t testing.TB, n *testcluster.Node, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	began := time.Now()
	cmd := exec.CommandContext(ctx, "/usr/bin/patronictl", append([]string{"-c", n.ConfigPath}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	t.Logf("patronictl %s → %v in %s\n  %s", strings.Join(args, " "), err, time.Since(began).Round(time.Millisecond),
		indent(out.String()))
	if err != nil {
		t.Fatalf("patronictl %s: %v", strings.Join(args, " "), err)
	}
	return out.String()
}

// patroniStatus is pg-healthd's GET /patroni on node n.
func patroniStatus(t testing.TB, n *testcluster.Node) map[string]any {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/patroni", n.APIPort))
	if err != nil {
		t.Fatalf("GET /patroni on %s: %v", n.Name, err)
	}
	defer resp.Body.Close()
	var doc map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("GET /patroni on %s: %q: %v", n.Name, b, err)
	}
	return doc
}

// TestPatronictlWrites drives a pg-ha cluster with Debian's patronictl
// through pg-healthd's write API, with restapi.authentication set:
// switchover (the leader changes), pause --wait and resume --wait (every
// member reports the mode), restart of a member (its postmaster is a new
// one), reload of every member, failover to a replica with the leader
// alive (it leads), reinit of a replica (its data directory is cloned
// anew and it streams again), edit-config --pg (the config key and every
// running server carry the parameter), topology (the replicas hang under
// the leader) and history (the two timeline switches); a POST without
// credentials is 401.
func TestPatronictlWrites(t *testing.T) {
	c, w := start(t, testcluster.Options{Healthd: true, ExtraRestAPI: map[string]any{
		"authentication": map[string]any{"username": "patroni", "password": "rest-secret"},
	}})
	p := c.WaitPrimary(t, 10*time.Second)
	r := replicasOf(c, p)[0]

	resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/switchover", p.APIPort), "application/json",
		strings.NewReader(fmt.Sprintf(`{"leader": %q, "candidate": %q}`, p.Name, r.Name)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST /switchover without credentials: %d, want 401", resp.StatusCode)
	}
	if l, _ := c.Leader(context.Background()); l != p.Name {
		t.Fatalf("leader %q after the refused POST, want %s", l, p.Name)
	}

	w.Mark("patronictl switchover to " + r.Name)
	out := patronictl(t, p, "switchover", "--candidate", r.Name, "--force")
	if !strings.Contains(out, fmt.Sprintf("Successfully switched over to %q", r.Name)) {
		t.Errorf("switchover output does not report success")
	}
	leaderIs(t, c, r)
	c.WaitReplicasStreaming(t, 30*time.Second)

	out = patronictl(t, r, "pause", "--wait")
	if !strings.Contains(out, "Success: cluster management is paused") {
		t.Errorf("pause output does not report success")
	}
	// patronictl polls for loop_wait + 1 s only, then reports success
	// anyway when no member key changed meanwhile: give the members a few
	// loops more.
	waitMembersPause(t, c, true)
	out = patronictl(t, r, "resume", "--wait")
	if !strings.Contains(out, "Success: cluster management is resumed") {
		t.Errorf("resume output does not report success")
	}
	waitMembersPause(t, c, false)

	// Restart the replica (the old primary) through its own pg-healthd.
	pid := p.PID(testcluster.Postmaster)
	startTime := patroniStatus(t, p)["postmaster_start_time"]
	w.Mark("patronictl restart " + p.Name)
	out = patronictl(t, r, "restart", c.Scope, p.Name, "--force")
	if !strings.Contains(out, "Success: restart on member "+p.Name) {
		t.Errorf("restart output does not report success")
	}
	if np := p.PID(testcluster.Postmaster); np == 0 || np == pid {
		t.Errorf("%s postmaster pid %d after restart returned, was %d", p.Name, np, pid)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := patroniStatus(t, p)["postmaster_start_time"]
		if st != nil && st != startTime {
			t.Logf("postmaster_start_time of %s: %v → %v", p.Name, startTime, st)
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("postmaster_start_time of %s still %v 10 s after the restart", p.Name, st)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}

	out = patronictl(t, r, "reload", c.Scope, "--force")
	for _, n := range c.Nodes {
		if !strings.Contains(out, "Reload request received for member "+n.Name) {
			t.Errorf("reload output does not report %s", n.Name)
		}
	}
	leaderIs(t, c, r)

	// failover --candidate with a live leader demotes it, as a switchover.
	w.Mark("patronictl failover to " + p.Name)
	out = patronictl(t, r, "failover", "--candidate", p.Name, "--force")
	if !strings.Contains(out, fmt.Sprintf("Successfully failed over to %q", p.Name)) {
		t.Errorf("failover output does not report success")
	}
	leaderIs(t, c, p)
	c.WaitReplicasStreaming(t, 30*time.Second)

	// reinit of the replica that led a moment ago: its data directory is
	// cloned anew (a file the leader does not have is gone), and its
	// PostgreSQL is a new one that streams again.
	marker := filepath.Join(r.DataDir, "before-reinit")
	if err := os.WriteFile(marker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	before := postmasterStart(t, r)
	w.Mark("patronictl reinit " + r.Name)
	out = patronictl(t, p, "reinit", c.Scope, r.Name, "--force")
	if !strings.Contains(out, "Success: reinitialize for member "+r.Name) {
		t.Errorf("reinit output does not report success")
	}
	waitRestarted(t, r, before, 20*time.Second)
	if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still in the data directory after reinit (%v): not cloned anew", marker, err)
	}
	c.WaitReplicasStreaming(t, 30*time.Second)

	// edit-config writes the config key itself; every member's pg-supervise
	// applies a reload parameter from it.
	out = patronictl(t, p, "edit-config", "--pg", "work_mem=7MB", "--force")
	if !strings.Contains(out, "Configuration changed") {
		t.Errorf("edit-config output does not report the change")
	}
	cfg, err := c.Get(context.Background(), c.Key("config"))
	var doc struct {
		PostgreSQL struct {
			Parameters map[string]any `json:"parameters"`
		} `json:"postgresql"`
	}
	if err == nil {
		err = json.Unmarshal([]byte(cfg), &doc)
	}
	if err != nil || doc.PostgreSQL.Parameters["work_mem"] != "7MB" {
		t.Errorf("config key after edit-config: %s (%v), want work_mem 7MB", cfg, err)
	}
	for _, n := range c.Nodes {
		waitSetting(t, n, "work_mem", "7MB", 10*time.Second)
	}

	out = patronictl(t, p, "topology", c.Scope)
	lines := strings.Split(out, "\n")
	for _, n := range c.Nodes {
		row := ""
		for _, l := range lines {
			if strings.Contains(l, " "+n.Name+" ") {
				row = l
			}
		}
		switch {
		case row == "":
			t.Errorf("topology does not list %s", n.Name)
		case n == p && !strings.Contains(row, "Leader"):
			t.Errorf("topology row of %s is not the leader: %q", n.Name, row)
		case n != p && !strings.Contains(row, "+ "+n.Name):
			t.Errorf("topology does not show %s under the leader: %q", n.Name, row)
		}
	}

	// history lists the timelines' switches: the last two are the
	// switchover to r and the failover to p.
	out = patronictl(t, p, "history", c.Scope, "--format", "json")
	var hist []map[string]any
	if err := json.Unmarshal([]byte(out), &hist); err != nil {
		t.Fatalf("history --format json: %v", err)
	}
	if len(hist) < 2 || hist[len(hist)-2]["New Leader"] != r.Name || hist[len(hist)-1]["New Leader"] != p.Name {
		t.Errorf("history %v does not end with the switchover to %s and the failover to %s", hist, r.Name, p.Name)
	}
	finish(t, c, w)
}

// waitRestarted waits until n's PostgreSQL answers with a start time
// after before.
func waitRestarted(t testing.TB, n *testcluster.Node, before time.Time, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var at time.Time
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := n.QueryRow(ctx, "SELECT pg_postmaster_start_time()", nil, &at)
		cancel()
		if err == nil && at.After(before) {
			t.Logf("postmaster_start_time of %s: %s → %s", n.Name, before.Format("15:04:05.000"), at.Format("15:04:05.000"))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: postmaster started %s (%v) %s after the request, was %s", n.Name,
				at.Format("15:04:05.000"), err, timeout, before.Format("15:04:05.000"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitSetting waits until SHOW name on n answers want.
func waitSetting(t testing.TB, n *testcluster.Node, name, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var got string
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := n.QueryRow(ctx, "SELECT current_setting($1)", []any{name}, &got)
		cancel()
		if err == nil && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: %s is %q (%v) %s after edit-config, want %q", n.Name, name, got, err, timeout, want)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitMembersPause waits up to 5 s until every member key reports pause
// as want.
func waitMembersPause(t testing.TB, c *testcluster.Cluster, want bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ms, err := c.Members(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var behind []string
		for name, m := range ms {
			if (m["pause"] == true) != want {
				behind = append(behind, name)
			}
		}
		if len(behind) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("members %v do not report pause %v 5 s after patronictl returned", behind, want)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}
