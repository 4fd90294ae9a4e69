package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/testcluster"
)

// failsafeOptions is a cluster with failsafe_mode on in bootstrap.dcs and
// pg-healthd on every node (the members answer each other's POST /failsafe
// there), plus extra.
func failsafeOptions(extra testcluster.Options) testcluster.Options {
	o := extra
	o.Healthd = true
	o.ExtraDCS = map[string]any{"failsafe_mode": true}
	return o
}

// wantFailsafe is the failsafe key the leader must write: every member's
// name and api_url.
func wantFailsafe(c *testcluster.Cluster) map[string]string {
	want := map[string]string{}
	for _, n := range c.Nodes {
		want[n.Name] = fmt.Sprintf("http://127.0.0.1:%d/patroni", n.APIPort)
	}
	return want
}

// waitFailsafeKey waits up to timeout until the failsafe key lists every
// member with its api_url. It returns "" then, and otherwise what the key
// held last against what was wanted.
func waitFailsafeKey(c *testcluster.Cluster, timeout time.Duration) string {
	want := wantFailsafe(c)
	var last string
	ok := holdsWithin(timeout, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		raw, err := c.Get(ctx, c.Key("failsafe"))
		cancel()
		var got map[string]string
		switch {
		case err != nil:
			last = err.Error()
		case raw == "":
			last = "no key " + c.Key("failsafe")
		case json.Unmarshal([]byte(raw), &got) != nil:
			last = fmt.Sprintf("%s is %q, not a JSON object of member name to api_url", c.Key("failsafe"), raw)
		default:
			last = fmt.Sprintf("%s is %s", c.Key("failsafe"), raw)
			return maps.Equal(got, want)
		}
		return false
	})
	if ok {
		return ""
	}
	w, _ := json.Marshal(want)
	return fmt.Sprintf("want %s after %s; saw %s", w, timeout, last)
}

// checkFailsafeKey fails t (and goes on) unless the failsafe key lists
// every member with its api_url within 5s (the leader writes it every loop
// while it differs).
func checkFailsafeKey(t testing.TB, c *testcluster.Cluster) {
	t.Helper()
	if problem := waitFailsafeKey(c, 5*time.Second); problem != "" {
		t.Errorf("failsafe key: %s", problem)
	}
}

// checkOnlyPrimary fails t if a node other than p was a primary in any
// sample of primariesWatch.
func checkOnlyPrimary(t testing.TB, seen []primariesSeen, p *testcluster.Node, during string) {
	t.Helper()
	for _, s := range seen {
		if len(s.Names) > 1 || len(s.Names) == 1 && s.Names[0] != p.Name {
			t.Errorf("primaries during %s: want only %s at every sample, saw %s (all samples: %v)", during, p.Name, s, seen)
			return
		}
	}
}

// checkOnlyLeader fails t if the leader key named anyone but p in any sample
// of leaderWatch; no key ("") and no answer ("?") pass.
func checkOnlyLeader(t testing.TB, leaders []string, p *testcluster.Node, during string) {
	t.Helper()
	for _, l := range leaders {
		if l != p.Name && l != "" && l != "?" {
			t.Errorf("leader key during %s: want only %s (or none), saw %q (values in order: %q)", during, p.Name, l, leaders)
			return
		}
	}
}

// checkGap fails t if writer's longest gap is more than max.
func checkGap(t testing.TB, writer string, gap, max time.Duration, during string) {
	t.Helper()
	if gap > max {
		t.Errorf("%s writer's longest gap %s is %s, want at most %s: the primary stopped acknowledging writes",
			writer, during, gap.Round(time.Millisecond), max)
	}
}

// leaderBack waits up to timeout for a leader key and returns its value with
// its create revision (leaderWithRevision) and when it was first seen, or
// "" when there was none.
func leaderBack(c *testcluster.Cluster, timeout time.Duration) (string, time.Time) {
	var leader string
	var at time.Time
	holdsWithin(timeout, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		v, err := leaderWithRevision(ctx, c)
		if err != nil || v == "" {
			return false
		}
		leader, at = v, time.Now()
		return true
	})
	return leader, at
}

// leaderName is the member name of a leaderWithRevision value.
func leaderName(v string) string {
	if i := strings.LastIndexByte(v, '@'); i >= 0 {
		return v[:i]
	}
	return v
}

// stopWatches returns a channel for leaderWatch and primariesWatch and the
// function that closes it, which t's Cleanup also calls so that a test
// ended early does not leave them polling.
func stopWatches(t testing.TB) (chan struct{}, func()) {
	stop := make(chan struct{})
	done := sync.OnceFunc(func() { close(stop) })
	t.Cleanup(done)
	return stop, done
}

// TestFailsafeEtcdFrozen: with failsafe_mode on, etcd is frozen (SIGSTOP)
// for 30s, far past ttl. Every member still answers the leader's POST
// /failsafe, so the primary must keep acknowledging writes throughout (the
// multi writer's longest gap at most 1s), no other node may become a
// primary, and within 10s of etcd's return the same node must hold the
// leader key, with every replica streaming from it and no acknowledged
// write lost.
func TestFailsafeEtcdFrozen(t *testing.T) {
	const outage = 30 * time.Second
	c, w := start(t, failsafeOptions(testcluster.Options{}))
	p := c.WaitPrimary(t, 10*time.Second)
	checkFailsafeKey(t, c)
	before, _ := leaderBack(c, 2*time.Second)

	stop, stopWatching := stopWatches(t)
	leaders := leaderWatch(c, stop)
	primaries := primariesWatch(c, stop)
	stopHealth, stopHealthWatch := stopWatches(t)
	health := healthWatch(p, "/primary", stopHealth)
	frozen := w.Mark("SIGSTOP etcd")
	c.Etcd.Pause()
	paused := true
	resume := func() {
		if paused {
			paused = false
			c.Etcd.Resume()
		}
	}
	t.Cleanup(resume)
	time.Sleep(outage)
	during := w.Snapshot()
	stopHealthWatch()
	seenHealth := <-health
	// While etcd is frozen: the leader and the members it asks run on
	// failsafe_mode, and pg-healthd shows it as Patroni does.
	for _, n := range c.Nodes {
		checkFailsafeMetric(t, n, 1, "after "+outage.String()+" of frozen etcd")
	}
	if code, body, err := apiBody(p, "/failsafe"); err != nil || code != http.StatusOK || !strings.Contains(body, `"`+p.Name+`":`) {
		t.Errorf("GET /failsafe on %s while etcd is frozen: %d %q %v; want 200 with the failsafe key", p.Name, code, body, err)
	}
	if _, body, err := apiBody(p, "/patroni"); err != nil || !strings.Contains(body, `"failsafe_mode_is_active":true`) {
		t.Errorf("%s's /patroni while etcd is frozen: %q %v; want failsafe_mode_is_active true", p.Name, body, err)
	}
	resumed := w.Mark("SIGCONT etcd")
	resume()

	after, back := leaderBack(c, 10*time.Second)
	w.WaitAck(t, testcluster.MultiWriter, "", resumed, 15*time.Second)
	np, err := c.Primary(context.Background())
	stopWatching()
	seenLeaders, seenPrimaries := <-leaders, <-primaries

	h := w.Snapshot()
	pin := "pin-" + p.Name
	gap := testcluster.MaxGapSince(during, testcluster.MultiWriter, frozen)
	pinGap := testcluster.MaxGapSince(during, pin, frozen)
	// The gap spanning the resume and every later one.
	gapAfter := testcluster.MaxGapSince(h, testcluster.MultiWriter, resumed)
	backIn := "never"
	if after != "" {
		backIn = back.Sub(resumed).Round(time.Millisecond).String()
	}
	t.Logf("etcd frozen %s with failsafe_mode: %s writer's longest gap during the outage %s (%s %s), %s from the resume on; leader key %s before, %s %s after the resume; leader key values seen %q; primaries seen %v",
		outage, testcluster.MultiWriter, gap.Round(time.Millisecond), pin, pinGap.Round(time.Millisecond),
		gapAfter.Round(time.Millisecond), before, after, backIn, seenLeaders, seenPrimaries)

	checkGap(t, testcluster.MultiWriter, gap, time.Second, "while etcd was frozen")
	checkGap(t, pin, pinGap, time.Second, "while etcd was frozen")
	// HAProxy must keep routing to the primary that keeps running.
	if len(seenHealth) != 1 || seenHealth[0].Code != http.StatusOK {
		t.Errorf("%s's /primary while etcd was frozen: %v; want 200 throughout (HAProxy would stop routing to the primary failsafe_mode keeps)", p.Name, seenHealth)
	}
	if gap <= time.Second { // otherwise gapAfter may be the same gap
		checkGap(t, testcluster.MultiWriter, gapAfter, time.Second, "from etcd's resume on (the gap spanning it included)")
	}
	checkOnlyPrimary(t, seenPrimaries, p, "and after the etcd freeze")
	checkOnlyLeader(t, seenLeaders, p, "and after the etcd freeze")
	switch {
	case after == "":
		t.Errorf("leader key after etcd resumed: want %s within 10s, saw no key", p.Name)
	case leaderName(after) != p.Name:
		t.Errorf("leader key after etcd resumed: want %s (the primary before the freeze), saw %s", p.Name, after)
	}
	switch {
	case err != nil:
		t.Errorf("primary after etcd resumed: want %s, saw none: %v", p.Name, err)
	case np != p:
		t.Errorf("primary after etcd resumed: want %s (the primary before the freeze), saw %s", p.Name, np.Name)
	}
	finish(t, c, w)
}

// TestFailsafePrimaryCutFromEtcd: with failsafe_mode on, the primary's node
// alone is partitioned from etcd for 3×ttl; the replicas still reach etcd
// and the primary still reaches their pg-healthd. They answer its POST
// /failsafe, so the primary must keep acknowledging writes (longest gap at
// most 1s), the leader key must never name another node and no replica may
// be promoted; after the heal the same node holds the leader key again.
func TestFailsafePrimaryCutFromEtcd(t *testing.T) {
	c, w := start(t, failsafeOptions(testcluster.Options{EtcdProxy: true}))
	ttl := c.Options.TTL
	p := c.WaitPrimary(t, 10*time.Second)
	checkFailsafeKey(t, c)
	before, _ := leaderBack(c, 2*time.Second)

	stop, stopWatching := stopWatches(t)
	leaders := leaderWatch(c, stop)
	primaries := primariesWatch(c, stop)
	stopHealth, stopHealthWatch := stopWatches(t)
	health := healthWatch(p, "/primary", stopHealth)
	cut := w.Mark("partition " + p.Name + " (primary) from etcd")
	p.PartitionFromEtcd()
	t.Cleanup(func() {
		if p.EtcdPartitioned() {
			p.HealEtcd()
		}
	})
	time.Sleep(3 * ttl)
	during := w.Snapshot()
	stopHealthWatch()
	// HAProxy must keep routing to the primary failsafe_mode keeps.
	if seen := <-health; len(seen) != 1 || seen[0].Code != http.StatusOK {
		t.Errorf("%s's /primary while partitioned from etcd: %v; want 200 throughout", p.Name, seen)
	}
	checkFailsafeMetric(t, p, 1, "while partitioned from etcd")
	healed := w.Mark("heal " + p.Name + "'s partition from etcd")
	p.HealEtcd()

	var after string
	var back time.Time
	holdsWithin(15*time.Second, func() bool {
		after, back = leaderBack(c, 0)
		return leaderName(after) == p.Name
	})
	w.WaitAck(t, testcluster.MultiWriter, "", healed, 15*time.Second)
	np, err := c.Primary(context.Background())
	stopWatching()
	seenLeaders, seenPrimaries := <-leaders, <-primaries

	h := w.Snapshot()
	pin := "pin-" + p.Name
	gap := testcluster.MaxGapSince(during, testcluster.MultiWriter, cut)
	pinGap := testcluster.MaxGapSince(during, pin, cut)
	// The gap spanning the heal and every later one.
	gapAfter := testcluster.MaxGapSince(h, testcluster.MultiWriter, healed)
	backIn := "not within 15s"
	if leaderName(after) == p.Name {
		backIn = back.Sub(healed).Round(time.Millisecond).String() + " after the heal"
	}
	t.Logf("primary %s partitioned from etcd for %s (ttl %s) with failsafe_mode: %s writer's longest gap during the partition %s (%s %s), %s from the heal on; leader key %s before, %s %s; leader key values seen %q; primaries seen %v",
		p.Name, healed.Sub(cut).Round(time.Millisecond), ttl, testcluster.MultiWriter, gap.Round(time.Millisecond),
		pin, pinGap.Round(time.Millisecond), gapAfter.Round(time.Millisecond), before, after, backIn, seenLeaders, seenPrimaries)

	checkGap(t, testcluster.MultiWriter, gap, time.Second, "while the primary was partitioned from etcd")
	checkGap(t, pin, pinGap, time.Second, "while the primary was partitioned from etcd")
	if gap <= time.Second { // otherwise gapAfter may be the same gap
		checkGap(t, testcluster.MultiWriter, gapAfter, time.Second, "from the heal on (the gap spanning it included)")
	}
	checkOnlyPrimary(t, seenPrimaries, p, "and after the primary's partition from etcd")
	checkOnlyLeader(t, seenLeaders, p, "and after the primary's partition from etcd")
	if leaderName(after) != p.Name {
		if after == "" {
			after = "no key"
		}
		t.Errorf("leader key after the heal: want %s (the primary before the partition) within 15s, saw %s", p.Name, after)
	}
	switch {
	case err != nil:
		t.Errorf("primary after the heal: want %s, saw none: %v", p.Name, err)
	case np != p:
		t.Errorf("primary after the heal: want %s (the primary before the partition), saw %s", p.Name, np.Name)
	}
	finish(t, c, w)
}

// TestFailsafePrimaryAlsoCutFromReplica: with failsafe_mode on, one
// replica's pg-healthd is stopped (SIGSTOP), so it cannot answer POST
// /failsafe, and the primary is partitioned from etcd with sessions
// mid-transaction, mid-statement and mid-COPY on it. Failsafe cannot hold:
// the primary must be fenced as without it (no write acknowledged more than
// ttl after the cut, none of the held sessions committed), a replica must
// take over, never two primaries at once, and no acknowledged write lost.
func TestFailsafePrimaryAlsoCutFromReplica(t *testing.T) {
	c, w := start(t, failsafeOptions(testcluster.Options{EtcdProxy: true}))
	ttl := c.Options.TTL
	old := c.WaitPrimary(t, 10*time.Second)
	// Without the key the fault below proves nothing about failsafe_mode;
	// it must still fence.
	if problem := waitFailsafeKey(c, 5*time.Second); problem != "" {
		t.Logf("failsafe key: %s", problem)
	}
	replicas := replicasOf(c, old)
	mute := replicas[0]

	stop, stopWatching := stopWatches(t)
	primaries := primariesWatch(c, stop)
	stopHealth, stopHealthWatch := stopWatches(t)
	oldHealth := healthWatch(old, "/primary", stopHealth)
	holds := w.Hold(t, old, ttl+8*time.Second)
	if err := mute.Signal(testcluster.Healthd, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	muted := true
	unmute := func() {
		if muted {
			muted = false
			if err := mute.Signal(testcluster.Healthd, syscall.SIGCONT); err != nil {
				t.Errorf("resume %s's pg-healthd: %v", mute.Name, err)
			}
		}
	}
	t.Cleanup(unmute)
	cut := w.Mark("partition " + old.Name + " (primary) from etcd; " + mute.Name + "'s pg-healthd stopped")
	old.PartitionFromEtcd()
	t.Cleanup(func() {
		if old.EtcdPartitioned() {
			old.HealEtcd()
		}
	})

	np := c.WaitPrimary(t, 2*ttl+15*time.Second, old)
	w.WaitAck(t, testcluster.MultiWriter, np.Name, cut, 15*time.Second)
	h := w.Snapshot()
	last, first := handover(t, h, old, np, cut)
	watchEnd := time.Now()
	stopHealthWatch()
	// The old primary's pg-healthd must stop sending HAProxy there before
	// the new primary takes writes: the failsafe rounds failed, so only the
	// lease's validity stood for the leader key.
	seenOld := <-oldHealth
	for i, sample := range seenOld {
		if sample.Code != http.StatusOK {
			continue
		}
		end := watchEnd
		if i+1 < len(seenOld) {
			end = seenOld[i+1].At
		}
		if end.After(first.Ack) {
			t.Errorf("%s's /primary answered 200 until %s, after %s's first acknowledged write at %s: %v",
				old.Name, end.Format("15:04:05.000"), np.Name, first.Ack.Format("15:04:05.000"), seenOld)
		}
	}
	gap := testcluster.MaxGapSince(h, testcluster.MultiWriter, cut)
	which := "the replica whose pg-healthd answers"
	if np == mute {
		which = "the replica whose pg-healthd is stopped"
	}
	t.Logf("primary %s partitioned from etcd, %s's pg-healthd stopped, failsafe_mode on: its last ack %s after the cut (ttl %s); %s (%s) took over, first ack %s after the cut; %s writer's longest gap %s",
		old.Name, mute.Name, last.Ack.Sub(cut).Round(time.Millisecond), ttl, np.Name, which,
		first.Ack.Sub(cut).Round(time.Millisecond), testcluster.MultiWriter, gap.Round(time.Millisecond))
	if last.Ack.After(cut.Add(ttl)) {
		t.Errorf("old primary %s acknowledged %s, %s after the partition: want none later than its lease could have run (ttl %s): not fenced",
			old.Name, last, last.Ack.Sub(cut).Round(time.Millisecond), ttl)
	}

	unmute()
	w.Mark("resume " + mute.Name + "'s pg-healthd; heal " + old.Name + "'s partition from etcd")
	old.HealEtcd()
	testcluster.AssertNoneCommittedAfter(t, holds.Wait(t, 30*time.Second), cut, "the partition from etcd")
	h = finish(t, c, w)
	stopWatching()
	for _, s := range <-primaries {
		if len(s.Names) > 1 {
			t.Errorf("two primaries at once: want at most one at every sample, saw %s", s)
		}
	}
	// The whole history too: the old primary must never have acknowledged
	// a write after the new one's first.
	handover(t, h, old, np, cut)
}

// codeSeen is one answer of a node's pg-healthd: the status code (0 when it
// did not answer) first seen at At.
type codeSeen struct {
	At   time.Time
	Code int
}

// healthWatch asks n's pg-healthd GET path every 100ms until stop is closed
// and returns every change of its status code, in order.
func healthWatch(n *testcluster.Node, path string, stop <-chan struct{}) <-chan []codeSeen {
	client := &http.Client{Timeout: 500 * time.Millisecond}
	url := fmt.Sprintf("http://127.0.0.1:%d%s", n.APIPort, path)
	return watchChanges(stop, func() codeSeen {
		s := codeSeen{At: time.Now()}
		if resp, err := client.Get(url); err == nil {
			s.Code = resp.StatusCode
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return s
	}, func(a, b codeSeen) bool { return a.Code == b.Code })
}

// apiBody returns the status code and body of GET path on n's pg-healthd.
func apiBody(n *testcluster.Node, path string) (int, string, error) {
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d%s", n.APIPort, path))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// checkFailsafeMetric fails t unless n's /metrics says
// patroni_failsafe_mode_is_active is want.
func checkFailsafeMetric(t testing.TB, n *testcluster.Node, want int, when string) {
	t.Helper()
	code, body, err := apiBody(n, "/metrics")
	if err != nil || code != http.StatusOK {
		t.Errorf("%s's /metrics %s: %d %v", n.Name, when, code, err)
		return
	}
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "patroni_failsafe_mode_is_active{") {
			if !strings.HasSuffix(line, fmt.Sprintf(" %d", want)) {
				t.Errorf("%s's %s %s: want %d", n.Name, line, when, want)
			}
			return
		}
	}
	t.Errorf("%s's /metrics %s has no patroni_failsafe_mode_is_active", n.Name, when)
}
