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
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/pg-ha/pg-ha/lib/testcluster"
)

// The pg-failover tests: switchover to a named replica and to the best
// candidate, refusals that leave the cluster untouched, a scheduled
// switchover, a dry run, 20 switchovers in a row without losing an
// acknowledged write, pause and resume, a failover without a leader, and
// patronictl reading the same cluster. Each runs against three real nodes
// with the application workload writing throughout.

// pgFailover runs the pg-failover binary with node n's YAML and args and
// returns its stdout, stderr and exit code. Its stdin is not a terminal.
func pgFailover(t testing.TB, n *testcluster.Node, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	began := time.Now()
	stdout, stderr, code, err := runPGFailover(testcluster.Binaries(t), n, args...)
	if err != nil {
		t.Fatalf("run pg-failover %s: %v", strings.Join(args, " "), err)
	}
	t.Logf("pg-failover %s → exit %d in %s\n  stdout: %s\n  stderr (last line): %s", strings.Join(args, " "), code,
		time.Since(began).Round(time.Millisecond), indent(stdout), lastLine(stderr))
	return stdout, stderr, code
}

// runPGFailover is pgFailover without t, for other goroutines; err is set
// only when the binary could not be run.
func runPGFailover(binDir string, n *testcluster.Node, args ...string) (stdout, stderr string, code int, err error) {
	full := append([]string{"--config", n.ConfigPath, "--log.format", "json"}, args...)
	cmd := exec.Command(filepath.Join(binDir, "pg-failover"), full...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code, err = ee.ExitCode(), nil
	}
	return out.String(), errb.String(), code, err
}

func indent(s string) string {
	return strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n    ")
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

// wantExit fails t unless pg-failover exited with want and, for a failure,
// its last stderr line names every one of words.
func wantExit(t testing.TB, code int, stderr string, want int, words ...string) {
	t.Helper()
	if code != want {
		t.Errorf("exit %d, want %d; stderr: %s", code, want, lastLine(stderr))
		return
	}
	line := lastLine(stderr)
	for _, w := range words {
		if !strings.Contains(line, w) {
			t.Errorf("stderr's last line %q does not mention %q", line, w)
		}
	}
}

// result is pg-failover's --json result.
type result struct {
	Action    string  `json:"action"`
	Result    string  `json:"result"`
	ExitCode  int     `json:"exit_code"`
	Message   string  `json:"message"`
	Leader    string  `json:"leader"`
	Candidate string  `json:"candidate"`
	Seconds   float64 `json:"seconds"`
	Members   []struct {
		Name     string   `json:"name"`
		Leader   bool     `json:"leader"`
		Eligible bool     `json:"eligible"`
		Reasons  []string `json:"reasons"`
		Lag      *int64   `json:"lag_bytes"`
	} `json:"members"`
}

func parseResult(t testing.TB, stdout string) result {
	t.Helper()
	var r result
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("pg-failover --json output %q: %v", stdout, err)
	}
	return r
}

// reasons returns the reasons r gives for member name ("" if eligible).
func (r result) reasons(name string) string {
	for _, m := range r.Members {
		if m.Name == name {
			return strings.Join(m.Reasons, "; ")
		}
	}
	return "(not listed)"
}

// state is what "the cluster is untouched" compares: the leader key (with
// its revision, so a release and re-acquisition shows), the failover and
// config keys, and which nodes run a primary.
type state struct {
	leader, failover, config string
	primaries                []string
}

func snapshot(t testing.TB, c *testcluster.Cluster) state {
	t.Helper()
	ctx := context.Background()
	var s state
	var err error
	if s.leader, err = leaderWithRevision(ctx, c); err != nil {
		t.Fatal(err)
	}
	if s.failover, err = c.Get(ctx, c.Key("failover")); err != nil {
		t.Fatal(err)
	}
	if s.config, err = c.Get(ctx, c.Key("config")); err != nil {
		t.Fatal(err)
	}
	s.primaries = nodeNames(c.Primaries(ctx))
	return s
}

// leaderWithRevision is the leader key's value and create revision, so
// that a release and re-acquisition by the same member shows.
func leaderWithRevision(ctx context.Context, c *testcluster.Cluster) (string, error) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Etcd.Endpoints(), DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return "", err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, c.Key("leader"))
	if err != nil {
		return "", fmt.Errorf("read the leader key: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return "", nil
	}
	return fmt.Sprintf("%s@%d", resp.Kvs[0].Value, resp.Kvs[0].CreateRevision), nil
}

// untouched fails t if the cluster changed since before.
func untouched(t testing.TB, c *testcluster.Cluster, before state, what string) {
	t.Helper()
	after := snapshot(t, c)
	if after.leader != before.leader || after.failover != before.failover || after.config != before.config ||
		!slices.Equal(after.primaries, before.primaries) {
		t.Errorf("%s changed the cluster: before %+v, after %+v", what, before, after)
	}
}

// leaderIs fails t unless want holds the leader key and accepts writes.
func leaderIs(t testing.TB, c *testcluster.Cluster, want *testcluster.Node) {
	t.Helper()
	p, err := c.Primary(context.Background())
	if err != nil || p != want {
		t.Fatalf("primary %v (%v), want %s", p, err, want.Name)
	}
}

// tagNoFailover restarts n tagged nofailover, as an operator would, and
// waits until its member key shows the tag and every member streams from
// leader again.
func tagNoFailover(t testing.TB, c *testcluster.Cluster, w *testcluster.Workload, n, leader *testcluster.Node) {
	t.Helper()
	w.Mark("restart " + n.Name + " tagged nofailover")
	setTags(t, c, n, map[string]any{"nofailover": true})
	waitMember(t, c, n.Name, 10*time.Second, "tagged nofailover", func(m map[string]any) bool {
		tags, _ := m["tags"].(map[string]any)
		return tags["nofailover"] == true
	})
	waitMembersStreaming(t, c, leader, 10*time.Second)
}

// replicasOf returns the nodes other than p.
func replicasOf(c *testcluster.Cluster, p *testcluster.Node) []*testcluster.Node {
	var out []*testcluster.Node
	for _, n := range c.Nodes {
		if n != p {
			out = append(out, n)
		}
	}
	return out
}

// switchTo runs a switchover to n and checks it: exit 0, the final line on
// stdout, n the writable primary holding the leader key, every other node
// streaming from it again.
func switchTo(t testing.TB, c *testcluster.Cluster, via, n *testcluster.Node, extra ...string) {
	t.Helper()
	out, stderr, code := pgFailover(t, via, append([]string{"--to", n.Name}, extra...)...)
	if code != 0 {
		t.Fatalf("switchover to %s: exit %d: %s\n%s", n.Name, code, lastLine(stderr), c.Logs())
	}
	if !strings.HasPrefix(out, "switchover to "+n.Name+" done ") {
		t.Errorf("switchover to %s: stdout %q, want \"switchover to %s done …\"", n.Name, out, n.Name)
	}
	// Exit 0 promises the candidate leads and accepts writes right now.
	p, err := c.Primary(context.Background())
	if err != nil || p != n {
		t.Fatalf("after pg-failover exited 0 for %s: primary %v, %v", n.Name, p, err)
	}
	c.WaitReplicasStreaming(t, 30*time.Second)
	waitMembersStreaming(t, c, n, 10*time.Second)
}

// waitMembersStreaming waits until every member key but leader's says
// running, streaming, on the leader's timeline: what pg-failover checks
// before the next switchover. The keys are refreshed once per loop_wait, so
// they trail what PostgreSQL itself says.
func waitMembersStreaming(t testing.TB, c *testcluster.Cluster, leader *testcluster.Node, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ms, err := c.Members(context.Background())
		var behind []string
		for _, n := range c.Nodes {
			m := ms[n.Name]
			switch {
			case n == leader || !n.Running(testcluster.Supervise):
			case m == nil:
				behind = append(behind, n.Name+": no member key")
			case m["state"] != "running" || m["replication_state"] != "streaming" || m["timeline"] != ms[leader.Name]["timeline"]:
				behind = append(behind, n.Name+": "+fmtJSON(m))
			}
		}
		if err == nil && len(behind) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("member keys not all streaming from %s within %s: %v %v", leader.Name, timeout, behind, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// setTags restarts n's daemons with tags in its YAML.
func setTags(t testing.TB, c *testcluster.Cluster, n *testcluster.Node, tags map[string]any) {
	t.Helper()
	n.Stop(t, syscall.SIGTERM)
	b, err := os.ReadFile(n.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	doc["tags"] = tags
	if b, err = yaml.Marshal(doc); err != nil {
		t.Fatal(err)
	}
	// Rewritten in place: the file keeps its owner and mode.
	if err := os.WriteFile(n.ConfigPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	n.Start(t)
	c.WaitReplicasStreaming(t, 45*time.Second)
}

// waitEligible polls pg-failover --dry-run until it finds n eligible.
func waitEligible(t testing.TB, via, n *testcluster.Node, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if _, _, code := pgFailover(t, via, "--dry-run", "--to", n.Name); code == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not eligible within %s", n.Name, timeout)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// holdTenure sleeps long enough after a switchover for the workload's
// checker to tell the writable windows apart: it merges a node's writes
// less than testcluster.SplitBrainGap apart into one window, so a node that
// leads again within that gap would look like a split brain.
func holdTenure(since time.Time) {
	time.Sleep(time.Until(since.Add(testcluster.SplitBrainGap + 500*time.Millisecond)))
}

// finishLossless is finish without tolerating any loss: a switchover must
// not lose an acknowledged write, even with asynchronous replication.
func finishLossless(t testing.TB, c *testcluster.Cluster, w *testcluster.Workload) *testcluster.History {
	t.Helper()
	c.WaitReplicasStreaming(t, 45*time.Second)
	h := w.Stop()
	final, p := testcluster.FinalWrites(t, c)
	testcluster.AssertSafe(t, h, final)
	replicasMatch(t, c, p, final)
	return h
}

// waitMember polls the member keys until cond holds for member name, or
// fails t after timeout.
func waitMember(t testing.TB, c *testcluster.Cluster, name string, timeout time.Duration, what string, cond func(map[string]any) bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ms, err := c.Members(context.Background())
		if err == nil && cond(ms[name]) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("member %s: not %s within %s: %v (%v)", name, what, timeout, fmtJSON(ms[name]), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// walReceiverPID returns the PID of n's WAL receiver.
func walReceiverPID(t testing.TB, n *testcluster.Node) int {
	t.Helper()
	var pid int32
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.QueryRow(ctx, "SELECT pid FROM pg_stat_wal_receiver", nil, &pid); err != nil {
		t.Fatalf("%s: wal receiver pid: %v", n.Name, err)
	}
	return int(pid)
}

// writeWAL makes the primary write about mb MB of WAL.
func writeWAL(t testing.TB, p *testcluster.Node, mb int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Exec(ctx, "CREATE TABLE IF NOT EXISTS pgha_pad (b text)"); err != nil {
		t.Fatal(err)
	}
	if err := p.Exec(ctx, fmt.Sprintf("INSERT INTO pgha_pad SELECT repeat(md5(i::text), 32) FROM generate_series(1, %d) i", mb*1000)); err != nil {
		t.Fatal(err)
	}
}

// patronictlList runs Debian's patronictl against n's YAML and returns the
// leader and the member names it lists.
func patronictlList(t testing.TB, n *testcluster.Node) (leader string, members []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/usr/bin/patronictl", "-c", n.ConfigPath, "list", "-f", "json")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("patronictl -c %s list -f json: %v\n%s", n.ConfigPath, err, errb.String())
	}
	var rows []map[string]any
	if err := json.Unmarshal(out, &rows); err != nil {
		t.Fatalf("patronictl list output %q: %v", out, err)
	}
	for _, r := range rows {
		name, _ := r["Member"].(string)
		members = append(members, name)
		if r["Role"] == "Leader" {
			leader = name
		}
	}
	slices.Sort(members)
	return leader, members
}

// pgFailoverList runs pg-failover list --json.
func pgFailoverList(t testing.TB, n *testcluster.Node) (leader string, members []string, paused bool) {
	t.Helper()
	out, stderr, code := pgFailover(t, n, "--json", "list")
	if code != 0 {
		t.Fatalf("pg-failover list: exit %d: %s", code, lastLine(stderr))
	}
	var l struct {
		Leader  string `json:"leader"`
		Paused  bool   `json:"paused"`
		Members []struct {
			Name string `json:"name"`
		} `json:"members"`
	}
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		t.Fatalf("pg-failover list --json: %q: %v", out, err)
	}
	for _, m := range l.Members {
		members = append(members, m.Name)
	}
	return l.Leader, members, l.Paused
}

// TestSwitchoverCommands runs, on one cluster whose node3 is tagged
// nofailover: a dry run, refusals (--from mismatch, no such member,
// nofailover, stopped and lagging candidates) that leave the cluster
// untouched, a switchover to a named replica, to the best candidate, a
// scheduled one, history, and patronictl list reading the same keys.
func TestSwitchoverCommands(t *testing.T) {
	// The tag is set by restarting a replica with it, as an operator
	// would: a node tagged nofailover from the start may win pg-bootstrap's
	// initialize race and then never take the leader key.
	c, w := start(t, testcluster.Options{})
	p := c.WaitPrimary(t, 10*time.Second)
	// r is the replica that may lead; nf may not.
	r, nf := replicasOf(c, p)[0], replicasOf(c, p)[1]
	tagNoFailover(t, c, w, nf, p)
	names := []string{p.Name, r.Name, nf.Name}
	slices.Sort(names)

	t.Run("list matches patronictl", func(t *testing.T) {
		leader, members, paused := pgFailoverList(t, p)
		pl, pm := patronictlList(t, p)
		want := names
		if leader != p.Name || pl != p.Name || !slices.Equal(members, want) || !slices.Equal(pm, want) || paused {
			t.Errorf("pg-failover list: leader %q members %v paused %v; patronictl list: leader %q members %v; want leader %s, members %v",
				leader, members, paused, pl, pm, p.Name, want)
		}
		out, _, code := pgFailover(t, p, "list")
		if code != 0 || !strings.Contains(out, "+ Cluster: "+c.Scope+" (") || !strings.Contains(out, "| Leader ") {
			t.Errorf("pg-failover list: exit %d, table:\n%s", code, out)
		}
	})

	t.Run("dry run changes nothing", func(t *testing.T) {
		before := snapshot(t, c)
		out, _, code := pgFailover(t, p, "--dry-run", "--to", r.Name)
		if code != 0 || !strings.Contains(out, "would be requested") {
			t.Errorf("dry run to %s: exit %d, stdout %q", r.Name, code, out)
		}
		out, stderr, code := pgFailover(t, p, "--dry-run", "--json", "--to", nf.Name)
		wantExit(t, code, stderr, 11, nf.Name, "nofailover")
		res := parseResult(t, out)
		if res.Result != "not_eligible" || !strings.Contains(res.reasons(nf.Name), "nofailover") || res.reasons(r.Name) != "" {
			t.Errorf("dry run --json: %+v", res)
		}
		untouched(t, c, before, "--dry-run")
	})

	t.Run("refusals leave the cluster untouched", func(t *testing.T) {
		before := snapshot(t, c)
		_, stderr, code := pgFailover(t, p, "--from", r.Name, "--to", r.Name)
		wantExit(t, code, stderr, 14, r.Name, "leader is "+p.Name)
		_, stderr, code = pgFailover(t, p, "--to", "node9")
		wantExit(t, code, stderr, 10, "node9")
		_, stderr, code = pgFailover(t, p, "--to", nf.Name)
		wantExit(t, code, stderr, 11, nf.Name, "tagged nofailover")
		_, stderr, code = pgFailover(t, p, "--failover", "--to", r.Name)
		wantExit(t, code, stderr, 15, p.Name)
		_, stderr, code = pgFailover(t, p, "--to", r.Name, "--at", "2001-01-01T00:00:00Z")
		wantExit(t, code, stderr, 2, "past")
		untouched(t, c, before, "a refused switchover")
	})

	t.Run("stopped candidate", func(t *testing.T) {
		// pg-supervise frozen, its postmaster killed: nobody restarts it,
		// and pg-lockd publishes that PostgreSQL does not run.
		w.Mark("stop PostgreSQL on " + nf.Name)
		if err := nf.Signal(testcluster.Supervise, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		defer nf.Signal(testcluster.Supervise, syscall.SIGCONT)
		if err := nf.Signal(testcluster.Postmaster, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitMember(t, c, nf.Name, 10*time.Second, "stopped", func(m map[string]any) bool {
			return m != nil && m["xlog_location"] == nil
		})
		before := snapshot(t, c)
		_, stderr, code := pgFailover(t, p, "--to", nf.Name)
		wantExit(t, code, stderr, 11, nf.Name, "not running")
		untouched(t, c, before, "a switchover to a stopped member")
		nf.Signal(testcluster.Supervise, syscall.SIGCONT)
		w.Mark("PostgreSQL on " + nf.Name + " may start again")
		c.WaitReplicasStreaming(t, 30*time.Second)
		waitMembersStreaming(t, c, p, 10*time.Second)
	})

	t.Run("lagging candidate", func(t *testing.T) {
		pid := walReceiverPID(t, r)
		w.Mark("freeze the WAL receiver of " + r.Name)
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		defer syscall.Kill(pid, syscall.SIGCONT)
		writeWAL(t, p, 4)
		// Positions are published once per loop: wait until the lag shows.
		deadline := time.Now().Add(15 * time.Second)
		for {
			out, _, _ := pgFailover(t, p, "--dry-run", "--json", "--to", r.Name)
			if strings.Contains(parseResult(t, out).reasons(r.Name), "lags") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never reported as lagging", r.Name)
			}
			time.Sleep(500 * time.Millisecond)
		}
		before := snapshot(t, c)
		_, stderr, code := pgFailover(t, p, "--to", r.Name)
		wantExit(t, code, stderr, 11, r.Name, "lags", "MB behind the leader", "maximum_lag_on_failover (1 MB)")
		untouched(t, c, before, "a switchover to a lagging member")
		syscall.Kill(pid, syscall.SIGCONT)
		w.Mark("thaw the WAL receiver of " + r.Name)
		c.WaitReplicasStreaming(t, 30*time.Second)
		waitEligible(t, p, r, 15*time.Second)
	})

	t.Run("named replica", func(t *testing.T) {
		w.Mark("switchover to " + r.Name)
		switchTo(t, c, nf, r, "--from", p.Name)
		holdTenure(time.Now())
		p, r = r, p
	})

	t.Run("best candidate", func(t *testing.T) {
		w.Mark("switchover to the best candidate")
		out, stderr, code := pgFailover(t, nf, "--json")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, lastLine(stderr))
		}
		res := parseResult(t, out)
		// nf may not lead, so the best candidate is the one other replica.
		if res.Result != "done" || res.Candidate != r.Name || res.Leader != p.Name {
			t.Fatalf("result %+v, want done from %s to %s", res, p.Name, r.Name)
		}
		leaderIs(t, c, r)
		c.WaitReplicasStreaming(t, 30*time.Second)
		waitMembersStreaming(t, c, r, 10*time.Second)
		p, r = r, p
	})

	t.Run("scheduled", func(t *testing.T) {
		at := time.Now().Add(4 * time.Second).Truncate(time.Second).UTC()
		w.Mark("switchover to " + r.Name + " scheduled at " + at.Format(time.RFC3339))
		type outcome struct {
			out, stderr string
			code        int
			err         error
		}
		cmd := make(chan outcome, 1)
		bin := testcluster.Binaries(t)
		go func() {
			var o outcome
			o.out, o.stderr, o.code, o.err = runPGFailover(bin, nf, "--to", r.Name, "--at", at.Format(time.RFC3339))
			cmd <- o
		}()
		// Until then the leader stays, and list shows the plan.
		var left time.Time
		listed := false
		for time.Now().Before(at.Add(5 * time.Second)) {
			if l, err := c.Leader(context.Background()); err == nil && l != p.Name {
				left = time.Now()
				break
			}
			if !listed && time.Until(at) < 3*time.Second {
				listed = true
				if out, _, _ := pgFailover(t, nf, "list"); !strings.Contains(out, "Switchover scheduled at: ") {
					t.Errorf("list while scheduled does not show it:\n%s", out)
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		o := <-cmd
		t.Logf("pg-failover --to %s --at %s → exit %d: %s %s", r.Name, at.Format(time.RFC3339), o.code, strings.TrimSpace(o.out), lastLine(o.stderr))
		if o.err != nil || o.code != 0 || !strings.HasPrefix(o.out, "switchover to "+r.Name+" done ") {
			t.Fatalf("scheduled switchover: exit %d, %v, %q", o.code, o.err, o.out)
		}
		switch {
		case left.IsZero():
			t.Errorf("never saw the leader key leave %s", p.Name)
		case left.Before(at):
			t.Errorf("the leader key left %s at %s, before the scheduled %s", p.Name, left.Format("15:04:05.000"), at.Format("15:04:05"))
		case left.After(at.Add(3 * time.Second)):
			t.Errorf("the leader key left %s at %s, more than 3s after the scheduled %s", p.Name, left.Format("15:04:05.000"), at.Format("15:04:05"))
		default:
			t.Logf("scheduled at %s; the leader key left %s %s later", at.Format("15:04:05"), p.Name, left.Sub(at).Round(time.Millisecond))
		}
		leaderIs(t, c, r)
		c.WaitReplicasStreaming(t, 30*time.Second)
		waitMembersStreaming(t, c, r, 10*time.Second)
		p, r = r, p
	})

	t.Run("history", func(t *testing.T) {
		out, _, code := pgFailover(t, nf, "--json", "history")
		var rows []struct {
			Timeline  int    `json:"timeline"`
			Reason    string `json:"reason"`
			NewLeader string `json:"new_leader"`
		}
		if err := json.Unmarshal([]byte(out), &rows); err != nil || code != 0 {
			t.Fatalf("history --json: exit %d, %q: %v", code, out, err)
		}
		if len(rows) < 3 {
			t.Fatalf("history has %d lines, want at least 3 switchovers: %+v", len(rows), rows)
		}
		last := rows[len(rows)-1]
		if last.Reason != "switchover" || last.NewLeader != p.Name {
			t.Errorf("last history line %+v, want a switchover to %s", last, p.Name)
		}
		if tbl, _, _ := pgFailover(t, nf, "history"); !strings.Contains(tbl, "| TL |") {
			t.Errorf("history table:\n%s", tbl)
		}
	})

	t.Run("patronictl after switchovers", func(t *testing.T) {
		pl, pm := patronictlList(t, nf)
		leader, members, _ := pgFailoverList(t, nf)
		if pl != p.Name || leader != p.Name || !slices.Equal(pm, members) {
			t.Errorf("patronictl: leader %s members %v; pg-failover: leader %s members %v; want leader %s", pl, pm, leader, members, p.Name)
		}
	})
	finishLossless(t, c, w)
}

// TestSwitchoverRepeated: 20 switchovers in a row under writes; after each,
// every member streams from the new primary, and no acknowledged write is
// lost in the end.
func TestSwitchoverRepeated(t *testing.T) {
	c, w := start(t, testcluster.Options{})
	p := c.WaitPrimary(t, 10*time.Second)
	began := time.Now()
	for i := range 20 {
		// Round the ring, so that a node leads again only after two others
		// did: see holdTenure.
		to := c.Nodes[(p.Index+1)%len(c.Nodes)]
		w.Mark(fmt.Sprintf("switchover %d to %s", i+1, to.Name))
		switchTo(t, c, c.Nodes[i%3], to)
		time.Sleep(700 * time.Millisecond)
		p = to
	}
	t.Logf("20 switchovers in %s", time.Since(began).Round(time.Millisecond))
	h := finishLossless(t, c, w)
	t.Logf("%s writer's longest gap: %s", testcluster.MultiWriter, testcluster.MaxGap(h, testcluster.MultiWriter).Round(time.Millisecond))
}

// TestPauseResume: while paused, a switchover is still carried out, the
// death of the primary's node promotes nobody, and resume brings automatic
// failover back.
func TestPauseResume(t *testing.T) {
	c, w := start(t, testcluster.Options{Healthd: true})
	p := c.WaitPrimary(t, 10*time.Second)
	r := replicasOf(c, p)[0]
	out, stderr, code := pgFailover(t, r, "pause")
	if code != 0 || !strings.HasPrefix(out, "paused") {
		t.Fatalf("pause: exit %d, %q, %s", code, out, lastLine(stderr))
	}
	// pause waits until every member reports it.
	ms, err := c.Members(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for name, m := range ms {
		if m["pause"] != true {
			t.Errorf("member %s does not report pause after pause returned: %s", name, fmtJSON(m))
		}
	}
	if _, _, paused := pgFailoverList(t, r); !paused {
		t.Errorf("list --json does not say paused")
	}
	if tbl, _, _ := pgFailover(t, r, "list"); !strings.Contains(tbl, "Maintenance mode: on") {
		t.Errorf("list does not show maintenance mode:\n%s", tbl)
	}
	// pg-healthd's JSON, like Patroni's, says so too.
	waitHealthPause(t, r, true)
	// A switchover is honoured in maintenance mode, as in Patroni.
	if out, stderr, code := pgFailover(t, r, "--to", r.Name); code != 0 {
		t.Fatalf("switchover while paused: exit %d, %q, %s", code, out, lastLine(stderr))
	}
	p, r = r, p
	c.WaitReplicasStreaming(t, 30*time.Second)
	if out, _, code := pgFailover(t, r, "pause"); code != 0 || !strings.Contains(out, "already paused") {
		t.Errorf("second pause: exit %d, %q", code, out)
	}

	killed := w.Mark("kill node " + p.Name + " while paused")
	p.KillAll()
	ttl := c.Options.TTL
	deadline := time.Now().Add(ttl + 4*time.Second)
	for time.Now().Before(deadline) {
		if ps := c.Primaries(context.Background()); len(ps) > 0 {
			t.Fatalf("paused, yet %v became primary %s after %s died", nodeNames(ps), time.Since(killed).Round(time.Millisecond), p.Name)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if l, err := c.Leader(context.Background()); err != nil || l != "" {
		t.Errorf("leader key %q (%v) %s after the leader died, want none", l, err, ttl+4*time.Second)
	}

	resumed := w.Mark("resume")
	out, stderr, code = pgFailover(t, r, "resume")
	if code != 0 || !strings.HasPrefix(out, "resumed") {
		t.Fatalf("resume: exit %d, %q, %s", code, out, lastLine(stderr))
	}
	np := c.WaitPrimary(t, 15*time.Second, p)
	waitHealthPause(t, r, false)
	w.WaitAck(t, testcluster.MultiWriter, np.Name, resumed, 10*time.Second)
	t.Logf("after resume, %s took over in %s", np.Name, time.Since(resumed).Round(time.Millisecond))
	finish(t, c, w)
}

// waitHealthPause polls n's pg-healthd GET /patroni until its "pause" is
// want (Patroni omits it when false).
func waitHealthPause(t testing.TB, n *testcluster.Node, want bool) {
	t.Helper()
	url := fmt.Sprintf("http://127.0.0.1:%d/patroni", n.APIPort)
	deadline := time.Now().Add(10 * time.Second)
	var last string
	for {
		resp, err := http.Get(url)
		if err == nil {
			var doc map[string]any
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			last = string(b)
			if json.Unmarshal(b, &doc) == nil && (doc["pause"] == true) == want {
				return
			}
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			t.Fatalf("pg-healthd of %s: pause is not %v within 10s: %s", n.Name, want, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestFailoverNoLeader: both replicas lag more than
// maximum_lag_on_failover when the primary's node dies, so nobody is
// promoted automatically; --failover refuses the lagging candidate until
// --force, then promotes it. The WAL it lacked is lost by design; the test
// checks that there is one primary, every other node streams from it, and
// there was no split brain.
func TestFailoverNoLeader(t *testing.T) {
	c, w := start(t, testcluster.Options{})
	p := c.WaitPrimary(t, 10*time.Second)
	rs := replicasOf(c, p)
	var pids []int
	for _, r := range rs {
		pids = append(pids, walReceiverPID(t, r))
	}
	w.Mark("freeze both WAL receivers")
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		// Killed, not resumed: what the frozen receivers left in their
		// sockets must not reach the replicas after the primary died.
		defer syscall.Kill(pid, syscall.SIGKILL)
	}
	writeWAL(t, p, 4)
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, _, _ := pgFailover(t, p, "--dry-run", "--json")
		res := parseResult(t, out)
		if strings.Contains(res.reasons(rs[0].Name), "lags") && strings.Contains(res.reasons(rs[1].Name), "lags") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replicas never reported as lagging")
		}
		time.Sleep(500 * time.Millisecond)
	}
	// A leader is alive: --failover refuses.
	_, stderr, code := pgFailover(t, rs[0], "--failover", "--to", rs[0].Name)
	wantExit(t, code, stderr, 15, p.Name)

	killed := w.Mark("kill node " + p.Name + " and the frozen WAL receivers")
	p.KillAll()
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	// No automatic failover: both lag too much.
	for {
		l, _ := c.Leader(context.Background())
		if l != "" && l != p.Name {
			t.Fatalf("%s took the leader key though it lags more than maximum_lag_on_failover", l)
		}
		if l == "" && time.Since(killed) > c.Options.TTL+3*time.Second {
			break
		}
		if time.Since(killed) > 2*c.Options.TTL {
			t.Fatalf("the leader key of dead %s did not expire", p.Name)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if ps := c.Primaries(context.Background()); len(ps) != 0 {
		t.Fatalf("primaries %v without a leader key", nodeNames(ps))
	}

	_, stderr, code = pgFailover(t, rs[0], "--failover")
	wantExit(t, code, stderr, 11, "no eligible candidate", "lags")
	// The candidate --force would pick is the replica with the most WAL,
	// so the other one can follow it without a rewind.
	out, stderr, code := pgFailover(t, rs[0], "--failover", "--force", "--dry-run", "--json")
	if code != 0 {
		t.Fatalf("forced failover dry run: exit %d: %s", code, lastLine(stderr))
	}
	to := c.Node(parseResult(t, out).Candidate)
	if to == nil || to == p {
		t.Fatalf("forced failover dry run picked %q", parseResult(t, out).Candidate)
	}
	_, stderr, code = pgFailover(t, to, "--failover", "--to", to.Name)
	wantExit(t, code, stderr, 11, to.Name, "lags", "--force")
	_, stderr, code = pgFailover(t, to, "--to", to.Name)
	wantExit(t, code, stderr, 12, "no leader")

	w.Mark("forced failover to " + to.Name)
	out, stderr, code = pgFailover(t, to, "--failover", "--force", "--to", to.Name)
	if code != 0 || !strings.HasPrefix(out, "failover to "+to.Name+" done in ") {
		t.Fatalf("forced failover: exit %d, %q, %s\n%s", code, out, lastLine(stderr), c.Logs())
	}
	leaderIs(t, c, to)
	c.WaitReplicasStreaming(t, 45*time.Second)
	h := w.Stop()
	for _, v := range testcluster.SplitBrain(h, testcluster.SplitBrainGap) {
		t.Errorf("SPLIT BRAIN: %s", v)
	}
	final, _ := testcluster.FinalWrites(t, c)
	l := testcluster.Lost(h, final)
	t.Logf("forced failover onto a replica about 4 MB behind: %d acknowledged writes lost, as --force accepts", len(l.Lost))
}

// TestRestartReinit: restart and reinit requests travel through etcd to the
// member's own daemons; pg-failover returns once the member runs again.
func TestRestartReinit(t *testing.T) {
	c, w := start(t, testcluster.Options{})
	p := c.WaitPrimary(t, 10*time.Second)
	r := replicasOf(c, p)[0]

	pid := r.PID(testcluster.Postmaster)
	w.Mark("restart " + r.Name)
	out, stderr, code := pgFailover(t, p, "restart", r.Name)
	if code != 0 || !strings.HasPrefix(out, "restart of "+r.Name+" done in ") {
		t.Fatalf("restart %s: exit %d, %q, %s", r.Name, code, out, lastLine(stderr))
	}
	if np := r.PID(testcluster.Postmaster); np == 0 || np == pid {
		t.Errorf("%s postmaster pid %d after restart returned, was %d", r.Name, np, pid)
	}
	c.WaitReplicasStreaming(t, 30*time.Second)

	pid = p.PID(testcluster.Postmaster)
	w.Mark("restart the primary " + p.Name)
	out, stderr, code = pgFailover(t, r, "restart", p.Name)
	if code != 0 {
		t.Fatalf("restart %s: exit %d, %q, %s", p.Name, code, out, lastLine(stderr))
	}
	if np := p.PID(testcluster.Postmaster); np == 0 || np == pid {
		t.Errorf("%s postmaster pid %d after restart returned, was %d", p.Name, np, pid)
	}
	leaderIs(t, c, p)

	_, stderr, code = pgFailover(t, r, "reinit", p.Name)
	wantExit(t, code, stderr, 11, p.Name, "leader")
	_, stderr, code = pgFailover(t, r, "restart", "node9")
	wantExit(t, code, stderr, 10, "node9")

	w.Mark("reinit " + r.Name)
	out, stderr, code = pgFailover(t, p, "--json", "reinit", r.Name)
	if code != 0 || parseResult(t, out).Result != "done" {
		t.Fatalf("reinit %s: exit %d, %q, %s", r.Name, code, out, lastLine(stderr))
	}
	c.WaitReplicasStreaming(t, 30*time.Second)
	finishLossless(t, c, w)
}
