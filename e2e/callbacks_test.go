package e2e

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/testcluster"
)

// cbTimeout is pg-supervise's --callback-timeout in TestCallbacks: longer
// than a failover, so that a callback hung just before one is still
// running while the candidates promote.
const cbTimeout = 20 * time.Second

// callbackScripts writes, into a fresh directory every node may use:
//   - cb.sh NODE ARGS…: appends "<unix time> NODE ARGS…" to log; run as an
//     on_* callback while the file hang exists it then hangs (a child
//     sleep, whose pid goes to hangpids as "NODE PID");
//   - pre.sh NODE: pre_promote; while the file prefail exists the first
//     call of all (mkdir is atomic) exits 1, every other call 0; it logs
//     "NODE pre_promote exit=N".
func callbackScripts(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pgha-cb-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	cb := `#!/bin/sh
d=` + dir + `
node=$1
shift
printf '%s %s %s\n' "$(date +%s.%N)" "$node" "$*" >> $d/log
case "$1" in
on_*)
	if [ -e $d/hang ]; then
		sleep 600 &
		echo "$node $!" >> $d/hangpids
		wait
	fi ;;
esac
`
	pre := `#!/bin/sh
d=` + dir + `
rc=0
if [ -e $d/prefail ] && mkdir $d/prefail.taken 2>/dev/null; then rc=1; fi
printf '%s %s pre_promote exit=%s\n' "$(date +%s.%N)" "$1" $rc >> $d/log
exit $rc
`
	for name, src := range map[string]string{"cb.sh": cb, "pre.sh": pre} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// cbEvent is one line of the callback log.
type cbEvent struct {
	at   time.Time
	node string
	what string // "on_start primary", "before_stop", "pre_promote exit=0", …
}

func (e cbEvent) String() string { return e.node + " " + e.what }

// readCallbacks parses the callback log; every on_* line must carry the
// cluster's scope as its last argument.
func readCallbacks(t *testing.T, dir, scope string) []cbEvent {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "log"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []cbEvent
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 3 {
			continue // a line being written
		}
		sec, err := strconv.ParseFloat(fs[0], 64)
		if err != nil {
			t.Fatalf("callback log line %q", sc.Text())
		}
		e := cbEvent{at: time.Unix(0, int64(sec*1e9)), node: fs[1], what: strings.Join(fs[2:], " ")}
		if strings.HasPrefix(fs[2], "on_") {
			if len(fs) != 5 || fs[4] != scope {
				t.Errorf("callback called as %q, want <action> <role> %s", strings.Join(fs[2:], " "), scope)
			}
			e.what = fs[2] + " " + fs[3]
		}
		out = append(out, e)
	}
	return out
}

// seq lists what node's events from index from on say, without on_reload
// (config reloads may come at any time).
func seq(evs []cbEvent, from int, node string) []string {
	var out []string
	for _, e := range evs[min(from, len(evs)):] {
		if e.node == node && !strings.HasPrefix(e.what, "on_reload") {
			out = append(out, e.what)
		}
	}
	return out
}

// find returns the first event of node saying what, from index from on.
func find(evs []cbEvent, from int, node, what string) (cbEvent, bool) {
	for _, e := range evs[min(from, len(evs)):] {
		if e.node == node && e.what == what {
			return e, true
		}
	}
	return cbEvent{}, false
}

// TestCallbacks: one cluster whose nodes run a logging callback script for
// all five callbacks, before_stop, and pre_promote, with the workload
// writing throughout:
//   - start: the first primary's pre_promote, then on_start primary (or,
//     if it answered as a replica before it won the key, on_start replica,
//     pre_promote, on_role_change primary); the others on_start replica;
//     every callback with the scope as last argument;
//   - switchover: the old primary's before_stop, on_stop demoted (hung,
//     and killed by the newer on_role_change replica), on_role_change
//     replica; the new primary's pre_promote then on_role_change primary;
//   - failover with callbacks hung on every node and a pre_promote that
//     refuses the first promotion: the refusing candidate gives the key up,
//     the other one promotes, writes resume within ttl + 5s, and the hung
//     callbacks are killed at the callback timeout;
//   - the dead node rejoins with on_start replica; a replica stopped with
//     SIGTERM runs before_stop, then on_stop replica.
func TestCallbacks(t *testing.T) {
	began := time.Now()
	dir := callbackScripts(t)
	o := testcluster.Options{
		ExtraPostgres: func(i int) map[string]any {
			cb := fmt.Sprintf("%s/cb.sh node%d", dir, i+1)
			cbs := map[string]any{}
			for _, a := range []string{"on_start", "on_stop", "on_restart", "on_reload", "on_role_change"} {
				cbs[a] = cb
			}
			return map[string]any{"callbacks": cbs, "before_stop": cb + " before_stop",
				"pre_promote": fmt.Sprintf("%s/pre.sh node%d", dir, i+1)}
		},
		SuperviseArgs: []string{"--callback-timeout", cbTimeout.String()},
	}
	c, w := start(t, o)
	ttl := c.Options.TTL
	events := func() []cbEvent { return readCallbacks(t, dir, c.Scope) }
	waitFor := func(within time.Duration, node, what string, from int) cbEvent {
		t.Helper()
		var e cbEvent
		waitUntil(t, within, node+" "+what+" in the callback log", func() bool {
			var ok bool
			e, ok = find(events(), from, node, what)
			return ok
		})
		return e
	}

	// Start.
	p0 := c.WaitPrimary(t, 10*time.Second)
	c.WaitReplicasStreaming(t, 30*time.Second)
	for _, n := range c.Nodes {
		if n != p0 {
			waitFor(10*time.Second, n.Name, "on_start replica", 0)
		}
	}
	waitFor(10*time.Second, p0.Name, "pre_promote exit=0", 0)
	evs := events()
	for _, n := range c.Nodes {
		got := seq(evs, 0, n.Name)
		switch {
		case n != p0:
			if want := []string{"on_start replica"}; !slices.Equal(got, want) {
				t.Errorf("start: %s ran %q, want %q", n.Name, got, want)
			}
		case slices.Contains(got, "on_start replica"):
			// It started as a replica while no node led, then won the key.
			// on_start runs on its own, so it may log after pre_promote.
			want := []string{"on_start replica", "pre_promote exit=0", "on_role_change primary"}
			if len(got) == 3 && got[0] == "pre_promote exit=0" && got[1] == "on_start replica" {
				want = []string{"pre_promote exit=0", "on_start replica", "on_role_change primary"}
			}
			if !slices.Equal(got, want) {
				t.Errorf("start: %s ran %q, want %q", n.Name, got, want)
			}
		default:
			// It started in order to lead: on_start waited for the promotion.
			if want := []string{"pre_promote exit=0", "on_start primary"}; !slices.Equal(got, want) {
				t.Errorf("start: %s ran %q, want %q", n.Name, got, want)
			}
		}
	}
	t.Logf("start checked at %s", time.Since(began).Round(time.Millisecond))

	// Switchover, with every callback from now on hanging.
	touch(t, filepath.Join(dir, "hang"))
	r1, r2 := replicasOf(c, p0)[0], replicasOf(c, p0)[1]
	mark := len(events())
	switchTo(t, c, p0, r1)
	waitFor(20*time.Second, p0.Name, "on_role_change replica", mark)
	waitFor(10*time.Second, r1.Name, "on_role_change primary", mark)
	waitFor(10*time.Second, r2.Name, "on_reload replica", mark)
	evs = events()
	if got, want := seq(evs, mark, p0.Name), []string{"before_stop", "on_stop demoted", "on_role_change replica"}; !slices.Equal(got, want) {
		t.Errorf("switchover: old primary %s ran %q, want %q", p0.Name, got, want)
	}
	if got, want := seq(evs, mark, r1.Name), []string{"pre_promote exit=0", "on_role_change primary"}; !slices.Equal(got, want) {
		t.Errorf("switchover: new primary %s ran %q, want %q", r1.Name, got, want)
	}
	if got := seq(evs, mark, r2.Name); len(got) != 0 {
		t.Errorf("switchover: %s, which only follows the new primary, ran %q", r2.Name, got)
	}
	stopped, _ := find(evs, mark, p0.Name, "on_stop demoted")
	promoted, _ := find(evs, mark, r1.Name, "on_role_change primary")
	if !stopped.at.Before(promoted.at) {
		t.Errorf("switchover: %s on_stop demoted at %s is not before %s on_role_change primary at %s",
			p0.Name, stopped.at.Format("15:04:05.000"), r1.Name, promoted.at.Format("15:04:05.000"))
	}
	if !p0.LogContains(testcluster.Supervise, "a newer one is due") {
		t.Errorf("%s: the hung on_stop was not killed by the newer on_role_change", p0.Name)
	}
	t.Logf("switchover checked at %s", time.Since(began).Round(time.Millisecond))

	// Failover: hung on_reload callbacks on every node, and pre_promote
	// refusing the first promotion.
	mark = len(events())
	if _, errOut, code := pgFailover(t, p0, "reload"); code != 0 {
		t.Fatalf("pg-failover reload: exit %d: %s", code, lastLine(errOut))
	}
	for _, n := range c.Nodes {
		waitFor(10*time.Second, n.Name, "on_reload "+map[bool]string{true: "primary", false: "replica"}[n == r1], mark)
	}
	touch(t, filepath.Join(dir, "prefail"))
	mark = len(events())
	killed := w.Mark("kill node " + r1.Name + " (primary) with callbacks hung on every node")
	r1.KillAll()
	// Callbacks fired from now on run to their end; those already hung
	// stay hung.
	if err := os.Remove(filepath.Join(dir, "hang")); err != nil {
		t.Fatal(err)
	}
	np := c.WaitPrimary(t, ttl+20*time.Second, r1)
	first := w.WaitAck(t, testcluster.MultiWriter, np.Name, killed, 15*time.Second)
	gap := testcluster.MaxGapSince(w.Snapshot(), testcluster.MultiWriter, killed)
	t.Logf("failover: %s took over; first write %s after the kill, longest gap %s (ttl %s)",
		np.Name, first.Ack.Sub(killed).Round(time.Millisecond), gap.Round(time.Millisecond), ttl)
	if gap > ttl+5*time.Second {
		t.Errorf("longest write gap after the node death is %s, want at most ttl + 5s = %s", gap.Round(time.Millisecond), ttl+5*time.Second)
	}
	evs = events()
	var pres []cbEvent
	for _, e := range evs[mark:] {
		if strings.HasPrefix(e.what, "pre_promote") {
			pres = append(pres, e)
		}
	}
	switch {
	case len(pres) < 2 || pres[0].what != "pre_promote exit=1" || pres[1].what != "pre_promote exit=0":
		t.Errorf("failover: pre_promote calls %v, want a refusal then an allowance", pres)
	case pres[0].node == pres[1].node || pres[1].node != np.Name:
		t.Errorf("failover: pre_promote calls %v; new primary %s: want the refusing candidate passed over for the other", pres, np.Name)
	default:
		t.Logf("failover: %s refused at %s, %s allowed at %s", pres[0].node, pres[0].at.Sub(killed).Round(time.Millisecond),
			pres[1].node, pres[1].at.Sub(killed).Round(time.Millisecond))
		if got := seq(evs, mark, pres[0].node); slices.Contains(got, "on_role_change primary") {
			t.Errorf("failover: %s, whose pre_promote refused, ran %q", pres[0].node, got)
		}
	}
	waitFor(10*time.Second, np.Name, "on_role_change primary", mark)

	// The dead node rejoins.
	mark = len(events())
	r1.Start(t)
	c.WaitReplicasStreaming(t, 45*time.Second)
	waitFor(10*time.Second, r1.Name, "on_start replica", mark)

	// Every hung callback of a living node is killed at the timeout.
	deadline := killed.Add(cbTimeout + 5*time.Second)
	for _, h := range hangPIDs(t, dir) {
		if h.node == r1.Name {
			continue // died with its node
		}
		for syscall.Kill(h.pid, 0) == nil {
			if time.Now().After(deadline) {
				t.Errorf("%s: hung callback (sleep pid %d) still alive %s after the kill", h.node, h.pid, time.Since(killed).Round(time.Second))
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// Killed at the timeout, or earlier by a newer callback of the same
	// node when the rejoin's callbacks came first (a matter of timing; the
	// timeout itself is covered by lib/callback's tests).
	killedLogged := false
	for _, n := range c.Nodes {
		killedLogged = killedLogged || n.LogContains(testcluster.Supervise, "ran longer than its timeout") ||
			n.LogContains(testcluster.Supervise, "a newer one is due")
	}
	if !killedLogged {
		t.Error("no pg-supervise logged killing a hung callback")
	}

	// A replica stopped with SIGTERM.
	var rs *testcluster.Node
	for _, n := range c.Nodes {
		if n != np {
			rs = n
		}
	}
	mark = len(events())
	rs.Stop(t, syscall.SIGTERM)
	waitFor(10*time.Second, rs.Name, "on_stop replica", mark)
	if got, want := seq(events(), mark, rs.Name), []string{"before_stop", "on_stop replica"}; !slices.Equal(got, want) {
		t.Errorf("stop: %s ran %q, want %q", rs.Name, got, want)
	}
	finish(t, c, w)
	t.Logf("TestCallbacks took %s", time.Since(began).Round(time.Millisecond))
}

type hangPID struct {
	node string
	pid  int
}

func hangPIDs(t *testing.T, dir string) []hangPID {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "hangpids"))
	if err != nil {
		t.Fatalf("no callback hung: %v", err)
	}
	var out []hangPID
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		node, p, _ := strings.Cut(l, " ")
		if pid, err := strconv.Atoi(p); err == nil {
			out = append(out, hangPID{node, pid})
		}
	}
	return out
}

func touch(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
}
