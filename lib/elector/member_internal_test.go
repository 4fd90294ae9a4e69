package elector

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/pg-ha/pg-ha/lib/clock"
	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/dcs"
	"github.com/pg-ha/pg-ha/lib/state"
)

// TestMemberDataWhileCloning: a node that clones publishes Patroni's
// "creating replica" with its progress in steps of 5 % as the pg-ha field
// "progress", whether pg-supervise re-clones it or a running pg-bootstrap
// does; the member key's JSON changes only when a 5 % step is crossed.
func TestMemberDataWhileCloning(t *testing.T) {
	cfg, _, err := config.Parse([]byte(`
scope: s
name: node1
postgresql:
  listen: 127.0.0.1:5432
  data_dir: /nonexistent
`), []string{})
	if err != nil {
		t.Fatal(err)
	}
	fake := clock.NewFake(clock.Now())
	e := &Elector{cfg: cfg, clock: fake}
	const total = 100 << 24
	prog := func(pc int64) *state.Progress {
		return &state.Progress{Method: "basebackup", Done: total*pc/100 + 12345, Total: total}
	}
	supervising := func(st string, p *state.Progress) local {
		return local{supOK: true, sup: state.Supervise{State: st, Progress: p, Updated: fake.Now()}}
	}
	bootstrapping := func(st string, p *state.Progress) local {
		return local{bootOK: true, boot: state.Bootstrap{State: st, PID: os.Getpid(), Progress: p, Updated: fake.Now()}}
	}
	for _, c := range []struct {
		name  string
		loc   local
		state string
		pc    int // published percentage, -1: no progress field
	}{
		{"pg-supervise re-clones", supervising(state.Cloning, prog(43)), "creating replica", 40},
		{"before the first report", supervising(state.Cloning, nil), "creating replica", -1},
		{"at the end", supervising(state.Cloning, prog(100)), "creating replica", 100},
		{"pg-bootstrap clones", bootstrapping(state.CreatingReplica, prog(7)), "creating replica", 5},
		{"pg-bootstrap restores", bootstrapping(state.CustomBootstrap, prog(99)), "running custom bootstrap script", 95},
		{"pg-bootstrap waits for a leader", bootstrapping(state.Bootstrapping, nil), "stopped", -1},
		{"pg-supervise stopped", supervising(state.Stopped, nil), "stopped", -1},
		{"pg-supervise starts", supervising(state.Starting, nil), "starting", -1},
	} {
		d := e.memberData(c.loc, &dcs.Cluster{})
		if d.State != c.state || d.Role != "replica" {
			t.Errorf("%s: state %q role %q, want %q replica", c.name, d.State, d.Role, c.state)
		}
		p := state.MemberProgress(d.Extra)
		switch {
		case c.pc < 0 && p != nil:
			t.Errorf("%s: progress %+v published", c.name, p)
		case c.pc >= 0 && (p == nil || p.Percent() != c.pc || p.Method != "basebackup" || p.Total != total):
			t.Errorf("%s: progress %+v, want %d %%", c.name, p, c.pc)
		}
		// What Patroni and pg-ha read back from the key.
		b, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		var back dcs.MemberData
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if back.State != c.state || (c.pc >= 0) != (state.MemberProgress(back.Extra) != nil) {
			t.Errorf("%s: the key %s reads back as %+v", c.name, b, back)
		}
	}

	// A whole clone, reported every 0.1 %: the key's JSON takes 21 values.
	values := map[string]bool{}
	for permille := int64(0); permille <= 1000; permille++ {
		p := &state.Progress{Method: "basebackup", Done: total * permille / 1000, Total: total}
		b, _ := json.Marshal(e.memberData(supervising(state.Cloning, p), &dcs.Cluster{}))
		values[string(b)] = true
	}
	if len(values) != 21 {
		t.Errorf("a clone gives the member key %d values, want 21 (0, 5, …, 100 %%)", len(values))
	}

	// A running server wins over a stale clone report.
	loc := supervising(state.Cloning, prog(50))
	loc.pgOK = true
	if d := e.memberData(loc, &dcs.Cluster{}); d.State != "running" || d.Extra != nil {
		t.Errorf("running server: %+v", d)
	}
}

// TestMemberReplicationState: a standby without a WAL receiver that replays
// from an archive says "in archive recovery", as Patroni; one streaming
// says "streaming"; one with neither says what its receiver does.
func TestMemberReplicationState(t *testing.T) {
	for _, c := range []struct {
		name     string
		tags     map[string]any
		restore  string
		receiver string
		want     string
	}{
		{"streaming", nil, "", "streaming", "streaming"},
		{"nostream", map[string]any{"nostream": true}, "", "", "in archive recovery"},
		{"restore_command, receiver not up", nil, "cp /a/%f %p", "", "in archive recovery"},
		{"restore_command, streaming", nil, "cp /a/%f %p", "streaming", "streaming"},
		{"neither", nil, "", "", ""},
		{"receiver waiting", nil, "", "waiting", "waiting"},
	} {
		cfg := &config.Config{Name: "node2", Tags: c.tags}
		if c.restore != "" {
			cfg.Postgres.RecoveryConf = map[string]any{"restore_command": c.restore}
		}
		e := &Elector{cfg: cfg, clock: clock.NewFake(clock.Now())}
		loc := local{pgOK: true}
		loc.status.InRecovery, loc.status.ReceiverStatus = true, c.receiver
		if got := e.memberData(loc, &dcs.Cluster{}).ReplicationState; got != c.want {
			t.Errorf("%s: replication_state %q, want %q", c.name, got, c.want)
		}
	}
}

// TestMemberRoleAndProxy: a standby cluster's key holder publishes Patroni's
// role standby_leader while in recovery, primary once promoted;
// proxy_address is published as proxy_url.
func TestMemberRoleAndProxy(t *testing.T) {
	cfg := &config.Config{Name: "node1"}
	cfg.Postgres.ProxyAddress = "10.0.0.5:6432"
	e := &Elector{cfg: cfg, clock: clock.NewFake(clock.Now()), token: 3}
	e.dyn.StandbyCluster = &config.StandbyCluster{Host: "10.1.0.1", Port: 5432}
	loc := local{pgOK: true}
	loc.status.InRecovery = true
	d := e.memberData(loc, &dcs.Cluster{})
	if d.Role != "standby_leader" || d.ProxyURL != "postgres://10.0.0.5:6432/postgres" {
		t.Errorf("standby leader: role %q proxy_url %q", d.Role, d.ProxyURL)
	}
	loc.status.InRecovery = false
	if d := e.memberData(loc, &dcs.Cluster{}); d.Role != "primary" {
		t.Errorf("promoted: role %q", d.Role)
	}
	e.token, loc.status.InRecovery = 0, true
	if d := e.memberData(loc, &dcs.Cluster{}); d.Role != "replica" {
		t.Errorf("member of a standby cluster: role %q", d.Role)
	}
}
