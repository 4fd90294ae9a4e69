package clusterctl

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pg-ha/pg-ha/lib/dcs"
	"github.com/pg-ha/pg-ha/lib/dcs/etcdtest"
)

// These tests run Ctl against a real etcd, with the test playing the
// daemons' part by writing their keys, so that every way a wait ends is
// reached in a second or two.

var nonKey = regexp.MustCompile(`[^a-zA-Z0-9_-]+`)

// fake is a cluster in etcd whose "daemons" the test drives.
type fake struct {
	t      *testing.T
	c      *dcs.Client
	ctl    *Ctl
	leases map[string]int64
	token  int64
	etcd   *etcdtest.Etcd
}

func newFake(t *testing.T) *fake {
	t.Helper()
	e := etcdtest.Start(t)
	c, err := dcs.New(context.Background(), dcs.Options{
		Endpoints: e.Endpoints(), Prefix: "/service/" + strings.Trim(nonKey.ReplaceAllString(t.Name(), "-"), "-") + "/",
		WatchProgressInterval: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	f := &fake{t: t, c: c, leases: map[string]int64{}, etcd: e,
		ctl: &Ctl{DCS: c, Cfg: testConfig(t), Log: zerolog.Nop()}}
	for _, n := range []string{"node1", "node2", "node3"} {
		l, err := c.Grant(f.ctx(), 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		f.leases[n] = l.ID
	}
	f.put("node1", primary)
	f.put("node2")
	f.put("node3")
	if f.token, err = c.AcquireLeader(f.ctx(), "node1", f.leases["node1"]); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fake) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	f.t.Cleanup(cancel)
	return ctx
}

// put publishes member name as pg-lockd would.
func (f *fake) put(name string, opts ...func(*dcs.MemberData)) {
	f.t.Helper()
	if err := f.c.PutMember(f.ctx(), name, m(name, 100*mb, opts...).Data, f.leases[name]); err != nil {
		f.t.Fatal(err)
	}
}

// await polls the cluster until cond holds (at most 5s).
func (f *fake) await(what string, cond func(*dcs.Cluster) bool) *dcs.Cluster {
	f.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		cl, err := f.c.Get(f.ctx())
		if err == nil && cond(cl) {
			return cl
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("fake daemons: %s never happened (%v)", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (f *fake) failoverKey(cl *dcs.Cluster) bool { return cl.Failover != nil }

// switchover plays a successful switchover from node1 to to.
func (f *fake) switchover(to string) {
	f.await("the failover key", f.failoverKey)
	if err := f.c.ReleaseLeader(f.ctx(), f.token); err != nil {
		f.t.Error(err)
		return
	}
	f.put("node1", stopped)
	if _, err := f.c.AcquireLeader(f.ctx(), to, f.leases[to]); err != nil {
		f.t.Error(err)
		return
	}
	time.Sleep(100 * time.Millisecond) // promoting
	f.put(to, primary)
	if err := f.c.DeleteFailover(f.ctx()); err != nil {
		f.t.Error(err)
	}
}

func run(t *testing.T, f *fake, req Request, o SwitchoverOptions, daemons func()) (Result, error) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if daemons != nil {
			daemons()
		}
	}()
	r, err := f.ctl.Switchover(context.Background(), req, o)
	<-done
	return r, err
}

func TestSwitchoverWait(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	r, err := run(t, f, Request{Candidate: "node2"}, SwitchoverOptions{Timeout: 10 * time.Second}, func() { f.switchover("node2") })
	if err != nil || r.Result != "done" || !strings.HasPrefix(r.Message, "switchover to node2 done in ") || r.Leader != "node1" {
		t.Fatalf("Switchover = %+v, %v", r, err)
	}
}

func TestSwitchoverRefusedByLeader(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	r, err := run(t, f, Request{Candidate: "node2"}, SwitchoverOptions{Timeout: 10 * time.Second}, func() {
		f.await("the failover key", f.failoverKey)
		// The leader finds node2 no longer streaming and drops the request.
		f.put("node2", receiver("waiting"))
		if err := f.c.DeleteFailover(f.ctx()); err != nil {
			t.Error(err)
		}
	})
	if ReasonOf(err) != Refused || r.ExitCode != 16 ||
		!strings.Contains(err.Error(), "the leader node1 refused the switchover and keeps leading: node2 is not eligible: not streaming") {
		t.Fatalf("Switchover = %+v, %v", r, err)
	}
}

func TestSwitchoverTimeout(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	began := time.Now()
	_, err := run(t, f, Request{Candidate: "node3"}, SwitchoverOptions{Timeout: 1500 * time.Millisecond}, nil)
	if ReasonOf(err) != TimedOut || !strings.Contains(err.Error(), "node1 still holds the leader key; node3 is replica, running; the request is still in etcd") {
		t.Fatalf("Switchover = %v", err)
	}
	if d := time.Since(began); d < 1500*time.Millisecond || d > 4*time.Second {
		t.Errorf("timed out after %s, want about 1.5s", d)
	}
	// A second request is refused while the first is pending.
	_, err = f.ctl.Switchover(context.Background(), Request{Candidate: "node2"}, SwitchoverOptions{Timeout: time.Second})
	if ReasonOf(err) != Pending {
		t.Errorf("second switchover: %v, want Pending", err)
	}
}

func TestSwitchoverElsewhere(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	_, err := run(t, f, Request{Candidate: "node2"}, SwitchoverOptions{Timeout: 10 * time.Second}, func() {
		f.await("the failover key", f.failoverKey)
		if err := f.c.ReleaseLeader(f.ctx(), f.token); err != nil {
			t.Error(err)
		}
		if _, err := f.c.AcquireLeader(f.ctx(), "node3", f.leases["node3"]); err != nil {
			t.Error(err)
		}
	})
	if ReasonOf(err) != Diverted || !strings.Contains(err.Error(), "node3 leads now") {
		t.Fatalf("Switchover = %v", err)
	}
}

func TestSwitchoverNoWaitAndDryRun(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	r, err := f.ctl.Switchover(context.Background(), Request{Candidate: "node2"}, SwitchoverOptions{DryRun: true})
	if err != nil || r.Result != "dry_run" || len(r.Members) != 3 {
		t.Fatalf("dry run = %+v, %v", r, err)
	}
	if cl := f.await("a read", func(*dcs.Cluster) bool { return true }); cl.Failover != nil {
		t.Fatalf("the dry run wrote %+v", cl.Failover)
	}
	at := time.Now().Add(time.Hour).Truncate(time.Second)
	r, err = f.ctl.Switchover(context.Background(), Request{Candidate: "node2", At: &at}, SwitchoverOptions{NoWait: true})
	if err != nil || r.Result != "scheduled" {
		t.Fatalf("no-wait = %+v, %v", r, err)
	}
	cl := f.await("the failover key", f.failoverKey)
	if cl.Failover.Leader != "node1" || cl.Failover.Member != "node2" || !cl.Failover.ScheduledAt.Equal(at) {
		t.Errorf("failover key %+v", cl.Failover)
	}
	if l := List("demo", cl, Settings{}); l.Scheduled == nil || !strings.Contains(RenderList(l), "Switchover scheduled at: ") {
		t.Errorf("list does not show the scheduled switchover:\n%s", RenderList(l))
	}
}

func TestPauseResume(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	if err := f.c.PutConfig(f.ctx(), []byte(`{"ttl":8,"loop_wait":1,"postgresql":{"use_slots":true}}`), 0); err != nil {
		t.Fatal(err)
	}
	// The members report the mode they read from the config key.
	reporter := func(pause bool) func() {
		return func() {
			f.await("the config key", func(cl *dcs.Cluster) bool { return SettingsOf(f.ctl.Cfg, cl).Paused == pause })
			for _, n := range []string{"node1", "node2", "node3"} {
				opts := []func(*dcs.MemberData){func(d *dcs.MemberData) { d.Pause = pause }}
				if n == "node1" {
					opts = append(opts, primary)
				}
				f.put(n, opts...)
			}
		}
	}
	done := make(chan struct{})
	go func() { defer close(done); reporter(true)() }()
	changed, err := f.ctl.SetPaused(context.Background(), true, 5*time.Second)
	<-done
	if err != nil || !changed {
		t.Fatalf("pause = %v, %v", changed, err)
	}
	cl := f.await("a read", func(*dcs.Cluster) bool { return true })
	var cfg map[string]any
	if err := json.Unmarshal(cl.Config, &cfg); err != nil || cfg["pause"] != true || cfg["ttl"] != 8.0 || cfg["postgresql"] == nil {
		t.Fatalf("config after pause: %s (%v)", cl.Config, err)
	}
	if changed, err := f.ctl.SetPaused(context.Background(), true, time.Second); err != nil || changed {
		t.Errorf("second pause = %v, %v; want unchanged", changed, err)
	}
	// Nobody reports the resume: the wait times out, naming them.
	changed, err = f.ctl.SetPaused(context.Background(), false, time.Second)
	if !changed || ReasonOf(err) != TimedOut || !strings.Contains(err.Error(), "[node1 node2 node3]") {
		t.Fatalf("resume = %v, %v", changed, err)
	}
	cl = f.await("a read", func(*dcs.Cluster) bool { return true })
	if strings.Contains(string(cl.Config), "pause") || !strings.Contains(string(cl.Config), `"ttl":8`) {
		t.Errorf("config after resume: %s", cl.Config)
	}
}

func TestRequestRestart(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		cl := f.await("the request", func(cl *dcs.Cluster) bool { return cl.Requests["node2"].ID != "" })
		f.put("node2", stopped)
		if err := f.c.FinishRequest(f.ctx(), "node2", cl.Requests["node2"], ""); err != nil {
			t.Error(err)
		}
		time.Sleep(100 * time.Millisecond)
		f.put("node2", withState("starting"))
		time.Sleep(100 * time.Millisecond)
		f.put("node2")
	}()
	began := time.Now()
	err := f.ctl.Request(context.Background(), "node2", dcs.ActionRestart, 10*time.Second)
	<-done
	if err != nil {
		t.Fatalf("Request = %v", err)
	}
	if d := time.Since(began); d < 200*time.Millisecond {
		t.Errorf("done after %s, before the member ran again", d)
	}
}

func TestRequestFailedAndTimeout(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		cl := f.await("the request", func(cl *dcs.Cluster) bool { return cl.Requests["node3"].ID != "" })
		if err := f.c.FinishRequest(f.ctx(), "node3", cl.Requests["node3"], "no leader to clone from"); err != nil {
			t.Error(err)
		}
	}()
	err := f.ctl.Request(context.Background(), "node3", dcs.ActionReinit, 10*time.Second)
	<-done
	if ReasonOf(err) != RequestFailed || !strings.Contains(err.Error(), "node3 could not reinit: no leader to clone from") {
		t.Fatalf("Request = %v", err)
	}
	// The failed request was read and deleted.
	f.await("the failed request deleted", func(cl *dcs.Cluster) bool { return cl.Requests == nil })

	if err := f.ctl.Request(context.Background(), "node1", dcs.ActionReinit, time.Second); ReasonOf(err) != NotEligible {
		t.Errorf("reinit of the leader: %v", err)
	}
	if err := f.ctl.Request(context.Background(), "node9", dcs.ActionRestart, time.Second); ReasonOf(err) != NoSuchMember {
		t.Errorf("restart of node9: %v", err)
	}
	err = f.ctl.Request(context.Background(), "node2", dcs.ActionRestart, time.Second)
	if ReasonOf(err) != TimedOut || !strings.Contains(err.Error(), "is pg-lockd running on node2?") {
		t.Errorf("unanswered request: %v", err)
	}
	if err := f.ctl.Request(context.Background(), "node2", dcs.ActionRestart, 0); ReasonOf(err) != Pending {
		t.Errorf("second request: %v", err)
	}
}

func TestInterrupted(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	_, err := f.ctl.Switchover(ctx, Request{Candidate: "node2"}, SwitchoverOptions{Timeout: 10 * time.Second})
	if !errors.Is(err, context.Canceled) || ReasonOf(err) != Unknown || !strings.Contains(err.Error(), "the request stays in etcd") {
		t.Fatalf("interrupted Switchover = %v", err)
	}
}

// TestCancel: cancel deletes a scheduled request, so a new one is no longer
// refused as pending, and is a noop when nothing is pending.
func TestCancel(t *testing.T) {
	f := newFake(t)
	at := time.Now().Add(time.Hour)
	if _, err := f.ctl.Switchover(f.ctx(), Request{Candidate: "node2", At: &at}, SwitchoverOptions{NoWait: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.ctl.Switchover(f.ctx(), Request{Candidate: "node3"}, SwitchoverOptions{NoWait: true}); ReasonOf(err) != Pending {
		t.Fatalf("second request: %v, want pending", err)
	}
	r, err := f.ctl.Cancel(f.ctx())
	if err != nil || r.Result != "cancelled" || r.Candidate != "node2" || !strings.Contains(r.Message, "scheduled at") {
		t.Fatalf("Cancel = %+v, %v", r, err)
	}
	cl, err := f.c.Get(f.ctx())
	if err != nil || cl.Failover != nil {
		t.Fatalf("failover key after cancel: %+v, %v", cl, err)
	}
	if r, err := f.ctl.Cancel(f.ctx()); err != nil || r.Result != "noop" {
		t.Fatalf("second Cancel = %+v, %v", r, err)
	}
}

// The time reported for a switchover counts from the request, not from
// the start of the command: minutes spent at the confirmation prompt are
// not part of it.
func TestSwitchoverSecondsExcludePrompt(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	var skew atomic.Int64
	f.ctl.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	o := SwitchoverOptions{Timeout: 10 * time.Second, Confirm: func(Plan) bool {
		skew.Add(int64(10 * time.Minute)) // the operator reads the prompt for ten minutes
		return true
	}}
	r, err := run(t, f, Request{Candidate: "node2"}, o, func() { f.switchover("node2") })
	if err != nil || r.Result != "done" {
		t.Fatalf("Switchover = %+v, %v", r, err)
	}
	if r.Seconds > 30 || strings.Contains(r.Message, "done in 6") {
		t.Errorf("switchover reported %.2fs (%q): the time at the prompt was counted", r.Seconds, r.Message)
	}
}
