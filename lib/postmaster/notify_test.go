package postmaster

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pg-ha/pg-ha/lib/clock"
	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/pg"
	"github.com/pg-ha/pg-ha/lib/pgdata"
	"github.com/pg-ha/pg-ha/lib/rolepipe"
	"github.com/pg-ha/pg-ha/lib/state"
)

// note is one call the supervisor made on its Notifier.
type note struct {
	kind      string // READY, STATUS, STOPPING or WATCHDOG
	arg       string // the status
	at        time.Time
	stateFile bool // supervise.json existed when the call was made
}

func (n note) String() string {
	if n.kind == "STATUS" {
		return "STATUS=" + n.arg
	}
	return n.kind
}

// fakeNotifier records the calls of a Supervisor. Status can be made to
// block once, to hang the supervisor's main loop inside a call it makes.
type fakeNotifier struct {
	stateFile string
	interval  time.Duration

	mu      sync.Mutex
	notes   []note
	block   string        // the next Status with this prefix blocks
	blocked chan string   // receives the blocked status
	release chan struct{} // closing it unblocks
}

func (f *fakeNotifier) record(kind, arg string) {
	_, err := os.Stat(f.stateFile)
	f.mu.Lock()
	f.notes = append(f.notes, note{kind: kind, arg: arg, at: time.Now(), stateFile: err == nil})
	f.mu.Unlock()
}

func (f *fakeNotifier) Ready() error    { f.record("READY", ""); return nil }
func (f *fakeNotifier) Stopping() error { f.record("STOPPING", ""); return nil }
func (f *fakeNotifier) Watchdog() error { f.record("WATCHDOG", ""); return nil }

func (f *fakeNotifier) WatchdogInterval() time.Duration { return f.interval }

func (f *fakeNotifier) Status(s string) error {
	f.record("STATUS", s)
	f.mu.Lock()
	hold := f.block != "" && strings.HasPrefix(s, f.block)
	if hold {
		f.block = ""
	}
	release := f.release
	f.mu.Unlock()
	if hold {
		f.blocked <- s
		<-release
	}
	return nil
}

// blockStatus makes the next Status starting with prefix block until the
// returned function is called (once; later calls do nothing).
func (f *fakeNotifier) blockStatus(prefix string) (blocked <-chan string, release func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.block = prefix
	f.blocked = make(chan string, 1)
	f.release = make(chan struct{})
	ch := f.release
	var once sync.Once
	return f.blocked, func() { once.Do(func() { close(ch) }) }
}

func (f *fakeNotifier) snapshot() []note {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]note(nil), f.notes...)
}

// wait polls until a note at index from or later satisfies ok and returns
// its index.
func (f *fakeNotifier) wait(t *testing.T, from int, d time.Duration, what string, ok func(note) bool) int {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		notes := f.snapshot()
		for i := from; i < len(notes); i++ {
			if ok(notes[i]) {
				return i
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v; calls so far: %v", what, d, notes)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func kindIs(kind string) func(note) bool { return func(n note) bool { return n.kind == kind } }

func statusIs(s string) func(note) bool {
	return func(n note) bool { return n.kind == "STATUS" && n.arg == s }
}

// syncBuffer collects log lines from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

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
	logs := &syncBuffer{}
	log := zerolog.New(logs).With().Timestamp().Logger()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("supervisor log:\n%s", logs)
		}
	})

	f := &fakeNotifier{stateFile: filepath.Join(runtimeDir, state.SuperviseFile), interval: 2 * time.Second}
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
	ready := f.wait(t, 0, 5*time.Second, "READY=1", kindIs("READY"))
	notes := f.snapshot()
	if !notes[ready].stateFile {
		t.Fatalf("READY=1 sent before %s was published", state.SuperviseFile)
	}
	for _, n := range notes[:ready] {
		if n.kind == "WATCHDOG" {
			t.Errorf("WATCHDOG=1 before READY=1: %v", notes[:ready+1])
		}
	}
	if st, err := state.ReadSupervise(runtimeDir); err != nil || st.State != state.Stopped {
		t.Fatalf("state file after READY=1: %+v, %v; want state %q", st, err, state.Stopped)
	}
	f.wait(t, 0, 0, "STATUS=stopped, stopped before READY=1", statusIs("stopped, stopped"))

	// Pings from the main loop: one right after READY, then one per tick.
	first := f.wait(t, ready, 5*time.Second, "WATCHDOG=1 after READY=1", kindIs("WATCHDOG"))
	last := first
	for range 3 {
		last = f.wait(t, last+1, 5*time.Second, "another WATCHDOG=1", kindIs("WATCHDOG"))
	}
	notes = f.snapshot()
	for i, prev := first+1, first; i <= last; i++ {
		if notes[i].kind != "WATCHDOG" {
			continue
		}
		if gap := notes[i].at.Sub(notes[prev].at); gap > time.Second {
			t.Errorf("%v between two WATCHDOG=1 of an idle loop that ticks every 500ms", gap)
		}
		prev = i
	}

	// The main loop hangs inside a call: a standby line makes it start
	// PostgreSQL, which sends STATUS=starting…; that call does not return.
	blocked, rel := f.blockStatus("starting")
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
		t.Fatalf("the standby line did not lead to STATUS=starting…: %v", f.snapshot())
	}
	const hang = 1500 * time.Millisecond // three ticks
	time.Sleep(hang)
	for _, n := range f.snapshot() {
		if n.kind == "WATCHDOG" && !n.at.Before(hungAt) {
			t.Fatalf("WATCHDOG=1 %v after the main loop hung: pings must come from the main loop only", n.at.Sub(hungAt))
		}
	}
	mark := len(f.snapshot())
	releasedAt := time.Now()
	release()
	resumed := f.wait(t, mark, 2*time.Second, "WATCHDOG=1 after the main loop resumed", kindIs("WATCHDOG"))
	t.Logf("no ping for %v while hung; pings resumed %v after the call returned",
		hang, f.snapshot()[resumed].at.Sub(releasedAt).Round(time.Millisecond))
	// The start failed (no programs in bin_dir): a state change, so a STATUS.
	f.wait(t, mark, 2*time.Second, "STATUS=crashed, stopped after the failed start", statusIs("crashed, stopped"))
	if st, err := state.ReadSupervise(runtimeDir); err != nil || st.Desired != string(rolepipe.Standby) {
		t.Errorf("state file after the standby line: %+v, %v; want desired %q", st, err, rolepipe.Standby)
	}

	// STOPPING on cancellation; Run returns once stopped.
	beforeStop := len(f.snapshot())
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
	stopping := f.wait(t, beforeStop, 0, "STOPPING=1 after cancellation", kindIs("STOPPING"))
	notes = f.snapshot()
	for _, n := range notes[stopping+1:] {
		if n.kind == "WATCHDOG" || n.kind == "READY" {
			t.Errorf("%v after STOPPING=1", n)
		}
	}
	if l := notes[len(notes)-1]; l.String() != "STATUS=stopped, stopped" {
		t.Errorf("last call %v, want STATUS=stopped, stopped", l)
	}

	// STATUS only on a change: never the same status twice in a row.
	prev := ""
	statuses := 0
	for _, n := range notes {
		if n.kind != "STATUS" {
			continue
		}
		statuses++
		if n.arg == prev {
			t.Errorf("STATUS=%s sent twice in a row", n.arg)
		}
		prev = n.arg
	}
	if statuses < 4 {
		t.Errorf("%d STATUS calls; want at least stopped, starting, crashed, stopping: %v", statuses, notes)
	}
	if !strings.Contains(logs.String(), "start postgres") {
		t.Errorf("the log does not show the failed start")
	}
	t.Logf("%d notifier calls, %d of them STATUS", len(notes), statuses)
}
