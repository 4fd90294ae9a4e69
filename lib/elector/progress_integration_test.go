package elector_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/clock"
	"github.com/pg-ha/pg-ha/lib/clusterctl"
	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/dcs"
	"github.com/pg-ha/pg-ha/lib/dcs/etcdtest"
	"github.com/pg-ha/pg-ha/lib/elector"
	"github.com/pg-ha/pg-ha/lib/logx/logxtest"
	"github.com/pg-ha/pg-ha/lib/pgdata"
	"github.com/pg-ha/pg-ha/lib/rolepipe"
	"github.com/pg-ha/pg-ha/lib/sdnotify/sdnotifytest"
	"github.com/pg-ha/pg-ha/lib/state"
)

// TestCloneProgressInList runs Elector.Run against a real etcd, without
// PostgreSQL, while supervise.json says what pg-supervise writes during a
// re-clone: the member key says "creating replica" with the progress in
// steps of 5 %, `pg-failover list` shows "creating replica 40 %", the key
// is rewritten only when a step is crossed, and the progress leaves the key
// with the cloning state.
func TestCloneProgressInList(t *testing.T) {
	etcd := etcdtest.Start(t)
	dir := t.TempDir()
	runtimeDir := filepath.Join(dir, "run")
	socketDir := filepath.Join(dir, "sockets") // no PostgreSQL listens here
	for _, d := range []string{runtimeDir, socketDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	cfg, _, err := config.Parse([]byte(fmt.Sprintf(`
scope: progress
namespace: /service/
name: node1
etcd3: {hosts: %q}
bootstrap:
  dcs: {ttl: 8, loop_wait: 1, retry_timeout: 3}
postgresql:
  listen: 127.0.0.1:%d
  data_dir: %s
  parameters: {unix_socket_directories: %s}
`, strings.TrimPrefix(etcd.Endpoints()[0], "http://"), freePort(t), filepath.Join(dir, "data"), socketDir)), []string{})
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, cfg)
	wctx, stopWriter := context.WithCancel(context.Background())
	w := rolepipe.NewWriter(wctx, &logxtest.Buffer{}, h.log)
	defer func() { stopWriter(); <-w.Done() }()
	node := &pgdata.Node{Cfg: cfg, RuntimeDir: runtimeDir, Owner: h.owner}
	e := elector.New(cfg, node, h.client, w, clock.System{}, &sdnotifytest.Recorder{}, h.log)
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- e.Run(ctx) }()
	defer func() { cancel(); <-runDone }()

	const total = 100 << 24
	publish := func(st string, percent int64) {
		t.Helper()
		s := state.Supervise{State: st, Updated: clock.Now()}
		if st == state.Cloning {
			s.Progress = &state.Progress{Method: "basebackup", Done: total * percent / 100, Total: total}
		}
		if err := state.Write(runtimeDir, state.SuperviseFile, s); err != nil {
			t.Fatal(err)
		}
	}
	member := func(what string, ok func(*dcs.Member) bool) *dcs.Cluster {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			cl, err := h.client.Get(context.Background())
			if err == nil && ok(cl.Member("node1")) {
				return cl
			}
			if time.Now().After(deadline) {
				m := cl.Member("node1")
				t.Fatalf("no %s in the member key within 10s: %+v (%v)", what, m, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	progressIs := func(pc int) func(*dcs.Member) bool {
		return func(m *dcs.Member) bool {
			if m == nil || m.Data.State != state.CreatingReplica {
				return false
			}
			p := state.MemberProgress(m.Data.Extra)
			return p != nil && p.Percent() == pc && p.Method == "basebackup" && p.Total == total
		}
	}

	publish(state.Cloning, 43)
	cl := member("creating replica 40 %", progressIs(40))
	list := clusterctl.RenderList(clusterctl.List("progress", cl, clusterctl.Settings{}))
	if !strings.Contains(list, "| creating replica 40 % |") {
		t.Errorf("list:\n%s", list)
	}
	rev := cl.Member("node1").ModRevision

	// Within the same 5 % step, for a few loops: the key is not rewritten.
	for pc := int64(41); pc <= 44; pc++ {
		publish(state.Cloning, pc)
		time.Sleep(600 * time.Millisecond)
	}
	cl = member("the same step", progressIs(40))
	if got := cl.Member("node1").ModRevision; got != rev {
		t.Errorf("member key rewritten within one 5 %% step (mod revision %d, then %d)", rev, got)
	}
	publish(state.Cloning, 100)
	member("creating replica 100 %", progressIs(100))

	// The clone is over: the state moves on and the progress leaves the key.
	publish(state.Starting, 0)
	cl = member("the starting state", func(m *dcs.Member) bool { return m != nil && m.Data.State == state.Starting })
	if p := state.MemberProgress(cl.Member("node1").Data.Extra); p != nil {
		t.Errorf("progress %+v left in the key after the clone", p)
	}
}
