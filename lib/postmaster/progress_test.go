package postmaster

import (
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pg-ha/pg-ha/lib/clock"
	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/logx/logxtest"
	"github.com/pg-ha/pg-ha/lib/pg"
	"github.com/pg-ha/pg-ha/lib/pgdata"
	"github.com/pg-ha/pg-ha/lib/rolepipe"
	"github.com/pg-ha/pg-ha/lib/sdnotify/sdnotifytest"
	"github.com/pg-ha/pg-ha/lib/state"
)

// TestCloneProgress feeds cloneProgress reports as a clone's engine does,
// on a fake clock, and reads supervise.json after each: the progress is
// published while the state is cloning, written at most once a second
// except for the first and the 100 % report, logged every 10 percentage
// points, and gone once the state moves on.
func TestCloneProgress(t *testing.T) {
	dir := t.TempDir()
	runtimeDir := filepath.Join(dir, "run")
	if err := os.Mkdir(runtimeDir, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := config.Parse([]byte(fmt.Sprintf(`
scope: progress
name: node1
postgresql:
  listen: 127.0.0.1:1
  data_dir: %s
`, filepath.Join(dir, "data"))), []string{})
	if err != nil {
		t.Fatal(err)
	}
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	owner, err := pg.LookupOwner(me.Username)
	if err != nil {
		t.Fatal(err)
	}
	logs := &logxtest.Buffer{}
	log := zerolog.New(logs)
	fake := clock.NewFake(clock.Time(time.Hour))
	pr, pw := io.Pipe()
	defer pw.Close()
	reader := rolepipe.NewReader(pr, fake, log)
	s := NewSupervisor(&pgdata.Node{Cfg: cfg, RuntimeDir: runtimeDir, Owner: owner}, reader, fake, &sdnotifytest.Recorder{}, log)

	read := func() state.Supervise {
		t.Helper()
		st, err := state.ReadSupervise(runtimeDir)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	const total = 100 << 27 // 12800 MB
	report := func(after time.Duration, percent int64) {
		fake.Advance(after)
		s.cloneProgress(pgdata.Progress{Method: "basebackup", Done: total * percent / 100, Total: total})
	}

	// Not cloning: a report is logged, not published.
	s.setState(state.Stopped, "")
	report(0, 1)
	if st := read(); st.Progress != nil {
		t.Fatalf("progress published while %s: %+v", st.State, st.Progress)
	}
	s.setState(state.Cloning, "reinit requested")

	steps := []struct {
		after   time.Duration
		percent int64
		written int64 // percent in the file afterwards
	}{
		{0, 0, 0},                      // the first report of this clone
		{200 * time.Millisecond, 3, 0}, // too soon
		{800 * time.Millisecond, 6, 6},
		{100 * time.Millisecond, 12, 6},
		{time.Second, 43, 43},
		{100 * time.Millisecond, 100, 100}, // the last one, at once
	}
	for i, c := range steps {
		report(c.after, c.percent)
		st := read()
		if st.State != state.Cloning || st.Progress == nil || int64(st.Progress.Percent()) != c.written {
			t.Fatalf("step %d: after %d %%, supervise.json has %s %+v; want %d %%", i, c.percent, st.State, st.Progress, c.written)
		}
		if st.Updated != fake.Now() && c.written == c.percent {
			t.Errorf("step %d: written with an old time", i)
		}
		if st.Progress.Method != "basebackup" || st.Progress.Total != total {
			t.Errorf("step %d: progress %+v", i, st.Progress)
		}
	}
	// The control socket's status sees it too.
	s.mu.Lock()
	pub := s.published
	s.mu.Unlock()
	if pub.Progress == nil || pub.Progress.Percent() != 100 {
		t.Errorf("published state: %+v", pub.Progress)
	}
	// The report made while stopped (logged, not published), then 0, 6
	// (crossed nothing), 12 (10), 43 (40), 100: five lines.
	if n := strings.Count(logs.String(), `"clone progress"`); n != 5 {
		t.Errorf("%d progress log lines, want 5:\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), `"method":"basebackup","percent":43,"total_mb":12800,"done_mb":`) {
		t.Errorf("log lacks the fields of a report:\n%s", logs)
	}

	// The main loop publishes the state as it is: the progress stays while
	// cloning, and leaves with the state.
	s.publish()
	if st := read(); st.Progress == nil || st.Progress.Percent() != 100 {
		t.Errorf("publish while cloning dropped the progress: %+v", st.Progress)
	}
	s.setState(state.Starting, "")
	if st := read(); st.Progress != nil {
		t.Errorf("progress kept in state %s: %+v", st.State, st.Progress)
	}
	// A report that comes late (after the clone) changes nothing.
	report(time.Second, 100)
	if st := read(); st.State != state.Starting || st.Progress != nil {
		t.Errorf("a late report was published: %s %+v", st.State, st.Progress)
	}
	// A later clone starts afresh: its first report is written at once.
	s.setState(state.Cloning, "again")
	report(10*time.Millisecond, 2)
	if st := read(); st.Progress == nil || st.Progress.Percent() != 2 {
		t.Errorf("the next clone's first report: %+v", st.Progress)
	}
}

func TestLogProgress(t *testing.T) {
	for _, c := range []struct {
		p    pgdata.Progress
		want string
	}{
		{pgdata.Progress{Method: "basebackup", Done: 43 << 20, Total: 100 << 20}, `{"level":"info","method":"basebackup","percent":43,"total_mb":100,"done_mb":43,"message":"clone progress"}`},
		{pgdata.Progress{Method: "basebackup", Done: 1536 << 20}, `{"level":"info","method":"basebackup","done_mb":1536,"message":"clone progress"}`},
		{pgdata.Progress{Method: "wal_g", Done: 43, Total: 100}, `{"level":"info","method":"wal_g","percent":43,"message":"clone progress"}`},
	} {
		var b strings.Builder
		LogProgress(zerolog.New(&b), c.p)
		if got := strings.TrimSpace(b.String()); got != c.want {
			t.Errorf("LogProgress(%+v)\n got %s\nwant %s", c.p, got, c.want)
		}
	}
}
