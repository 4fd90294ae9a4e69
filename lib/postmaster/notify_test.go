package postmaster

import (
	"context"
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

// TestSupervisorNotifies runs Supervisor.Run with a fake Notifier and no
// PostgreSQL: the data directory is empty and bin_dir names a directory
// without programs, so a start fails at once without running anything.
// READY comes only once the state file is published; the main loop pings
// the watchdog on every tick (500 ms); STATUS is sent on state changes only;
// STOPPING on cancellation. While the main loop hangs inside a call it
// makes (here a Status that does not return), no WATCHDOG is sent, and the
// pings resume once the call returns: a hung loop stops the pings, so
// systemd's watchdog kills a hung pg-supervise.
func TestSupervisorNotifies(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	runtimeDir := filepath.Join(dir, "run")
	for _, d := range []string{dataDir, runtimeDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	cfg, _, err := config.Parse([]byte(fmt.Sprintf(`
scope: notify
name: node1
postgresql:
  listen: 127.0.0.1:1
  data_dir: %s
  bin_dir: %s
`, dataDir, filepath.Join(dir, "no-programs-here"))), []string{})
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
	node := &pgdata.Node{Cfg: cfg, RuntimeDir: runtimeDir, Owner: owner}
	logs := &logxtest.Buffer{}
	log := zerolog.New(logs).With().Timestamp().Logger()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("supervisor log:\n%s", logs)
		}
	})

	// Each call records whether supervise.json had been published.
	f := &sdnotifytest.Recorder{File: filepath.Join(runtimeDir, state.SuperviseFile), Interval: 2 * time.Second}
	pr, pw := io.Pipe()
	reader := rolepipe.NewReader(pr, clock.System{}, log)
	sup := NewSupervisor(node, reader, clock.System{}, f, log)
	reader.OnLine = sup.OnLine
	readerDone := make(chan error, 1)
	go func() { readerDone <- reader.Run() }()
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- sup.Run(ctx) }()
	var release func()
	returned := false
	t.Cleanup(func() {
		if release != nil {
			release()
		}
		cancel()
		if !returned {
			<-runDone
		}
		pw.Close()
		<-readerDone
	})

	// READY once the first state is published, not before.
	ready := f.Wait(t, 0, 5*time.Second, "READY=1", sdnotifytest.KindIs("READY"))
	notes := f.Calls()
	if !notes[ready].FileExisted {
		t.Fatalf("READY=1 sent before %s was published", state.SuperviseFile)
	}
	for _, n := range notes[:ready] {
		if n.Kind == "WATCHDOG" {
			t.Errorf("WATCHDOG=1 before READY=1: %v", notes[:ready+1])
		}
	}
	if st, err := state.ReadSupervise(runtimeDir); err != nil || st.State != state.Stopped {
		t.Fatalf("state file after READY=1: %+v, %v; want state %q", st, err, state.Stopped)
	}
	f.Wait(t, 0, 0, "STATUS=stopped, stopped before READY=1", sdnotifytest.StatusIs("stopped, stopped"))

	// Pings from the main loop: one right after READY, then one per tick.
	first := f.Wait(t, ready, 5*time.Second, "WATCHDOG=1 after READY=1", sdnotifytest.KindIs("WATCHDOG"))
	last := first
	for range 3 {
		last = f.Wait(t, last+1, 5*time.Second, "another WATCHDOG=1", sdnotifytest.KindIs("WATCHDOG"))
	}
	notes = f.Calls()
	from, to := notes[first].At, notes[last].At
	if gap := sdnotifytest.MaxGap(f.Pings(from, to), from, to); gap > time.Second {
		t.Errorf("%v between two WATCHDOG=1 of an idle loop that ticks every 500ms", gap)
	}

	// The main loop hangs inside a call: a standby line makes it start
	// PostgreSQL, which sends STATUS=starting…; that call does not return.
	blocked, rel := f.BlockStatus("starting")
	release = rel
	if _, err := io.WriteString(pw, "standby\n"); err != nil {
		t.Fatal(err)
	}
	var hungAt time.Time
	select {
	case s := <-blocked:
		hungAt = time.Now()
		t.Logf("main loop hangs in Status(%q)", s)
	case <-time.After(5 * time.Second):
		t.Fatalf("the standby line did not lead to STATUS=starting…: %v", f.Calls())
	}
	const hang = 1500 * time.Millisecond // three ticks
	time.Sleep(hang)
	for _, n := range f.Calls() {
		if n.Kind == "WATCHDOG" && !n.At.Before(hungAt) {
			t.Fatalf("WATCHDOG=1 %v after the main loop hung: pings must come from the main loop only", n.At.Sub(hungAt))
		}
	}
	mark := len(f.Calls())
	releasedAt := time.Now()
	release()
	resumed := f.Wait(t, mark, 2*time.Second, "WATCHDOG=1 after the main loop resumed", sdnotifytest.KindIs("WATCHDOG"))
	t.Logf("no ping for %v while hung; pings resumed %v after the call returned",
		hang, f.Calls()[resumed].At.Sub(releasedAt).Round(time.Millisecond))
	// The start failed (no programs in bin_dir): a state change, so a STATUS.
	f.Wait(t, mark, 2*time.Second, "STATUS=crashed, stopped after the failed start", sdnotifytest.StatusIs("crashed, stopped"))
	if st, err := state.ReadSupervise(runtimeDir); err != nil || st.Desired != string(rolepipe.Standby) {
		t.Errorf("state file after the standby line: %+v, %v; want desired %q", st, err, rolepipe.Standby)
	}

	// STOPPING on cancellation; Run returns once stopped.
	beforeStop := len(f.Calls())
	cancel()
	select {
	case err := <-runDone:
		returned = true
		if err != nil {
			t.Errorf("Run after cancellation: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s of cancellation")
	}
	f.CheckStopping(t, beforeStop)
	notes = f.Calls()
	if l := notes[len(notes)-1]; l.String() != "STATUS=stopped, stopped" {
		t.Errorf("last call %v, want STATUS=stopped, stopped", l)
	}

	// STATUS only on a change: never the same status twice in a row.
	statuses := f.CheckStatusChanges(t)
	if statuses < 4 {
		t.Errorf("%d STATUS calls; want at least stopped, starting, crashed, stopping: %v", statuses, notes)
	}
	if !strings.Contains(logs.String(), "start postgres") {
		t.Errorf("the log does not show the failed start")
	}
	t.Logf("%d notifier calls, %d of them STATUS", len(notes), statuses)
}
