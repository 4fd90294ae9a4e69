package sdnotifytest

import (
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/sdnotify"
)

// Call is one notification a daemon made: a call of a Recorder's method, or
// one assignment of a datagram received by Recorder.Listen.
type Call struct {
	// Kind is the variable sent: "READY", "STATUS", "STOPPING" or
	// "WATCHDOG" (through Listen, whatever the daemon sent).
	Kind string
	// Arg is the status of a STATUS call (through Listen, the value of any
	// assignment that is not "1"); empty otherwise.
	Arg string
	// At is when the call was made (through Listen, when it was received).
	At time.Time
	// FileExisted says whether the Recorder's File existed at that moment;
	// false when File is empty.
	FileExisted bool
}

// String gives the call as sd_notify sends it: "READY=1", "STATUS=…".
func (c Call) String() string {
	if c.Arg != "" || c.Kind == "STATUS" {
		return c.Kind + "=" + c.Arg
	}
	return c.Kind + "=1"
}

// Recorder is an sdnotify.Daemon that records every call, for tests that
// hand a main loop a fake notifier instead of a socket. It sends nothing
// and does not suppress a repeated status, so a test sees exactly what the
// loop asked for. One Status call can be made to block (BlockStatus), to
// hang the loop inside a call it makes. Recorder.Listen records what a
// daemon sends to a real NOTIFY_SOCKET instead.
//
// The zero value is ready to use; set the exported fields before handing it
// out. Its methods are safe for concurrent use.
type Recorder struct {
	// Interval is what WatchdogInterval returns.
	Interval time.Duration
	// File, if set, is checked on every call: Call.FileExisted says whether
	// it existed then (say, a state file READY=1 must come after).
	File string

	mu       sync.Mutex
	calls    []Call
	blocking bool          // the next Status with prefix block blocks
	block    string        // its prefix
	blocked  chan string   // receives the blocked status
	release  chan struct{} // closed to unblock it
}

var _ sdnotify.Daemon = (*Recorder)(nil)

// Ready records READY=1.
func (r *Recorder) Ready() error { r.record("READY", ""); return nil }

// Stopping records STOPPING=1.
func (r *Recorder) Stopping() error { r.record("STOPPING", ""); return nil }

// Watchdog records WATCHDOG=1.
func (r *Recorder) Watchdog() error { r.record("WATCHDOG", ""); return nil }

// WatchdogInterval returns Interval.
func (r *Recorder) WatchdogInterval() time.Duration { return r.Interval }

// Status records STATUS=s; then, if s is the status BlockStatus waits for,
// it blocks until that block is released.
func (r *Recorder) Status(s string) error {
	r.record("STATUS", s)
	r.mu.Lock()
	hold := r.blocking && strings.HasPrefix(s, r.block)
	if hold {
		r.blocking = false
	}
	blocked, release := r.blocked, r.release
	r.mu.Unlock()
	if hold {
		blocked <- s
		<-release
	}
	return nil
}

// BlockStatus makes the next Status starting with prefix (any status, for
// "") block after it is recorded: the status is sent on blocked, and the
// call returns once release is called. Release may be called any number of
// times, also when nothing blocked; call it before the test ends (say, in a
// deferred function) so that the loop can finish.
func (r *Recorder) BlockStatus(prefix string) (blocked <-chan string, release func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.blocking, r.block = true, prefix
	r.blocked = make(chan string, 1)
	r.release = make(chan struct{})
	ch := r.release
	var once sync.Once
	return r.blocked, func() { once.Do(func() { close(ch) }) }
}

func (r *Recorder) record(kind, arg string) {
	existed := false
	if r.File != "" {
		_, err := os.Stat(r.File)
		existed = err == nil
	}
	r.mu.Lock()
	r.calls = append(r.calls, Call{Kind: kind, Arg: arg, At: time.Now(), FileExisted: existed})
	r.mu.Unlock()
}

// Calls returns a copy of the calls recorded so far, oldest first.
func (r *Recorder) Calls() []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Call(nil), r.calls...)
}

// Wait polls every 5 ms until a call at index from or later satisfies ok
// and returns its index. After d (at once for d <= 0: one look) it fails t
// with what ("READY=1 after …") and the calls so far.
func (r *Recorder) Wait(t testing.TB, from int, d time.Duration, what string, ok func(Call) bool) int {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		calls := r.Calls()
		for i := from; i < len(calls); i++ {
			if ok(calls[i]) {
				return i
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v; calls so far: %v", what, d, calls)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// CheckStopping checks how a run ended: a STOPPING call at index from or
// later, already made (t fails at once without one), and no READY or
// WATCHDOG after it (t.Errorf for each). It returns the STOPPING's index.
func (r *Recorder) CheckStopping(t testing.TB, from int) int {
	t.Helper()
	stopping := r.Wait(t, from, 0, "STOPPING=1", KindIs("STOPPING"))
	for _, c := range r.Calls()[stopping+1:] {
		if c.Kind == "WATCHDOG" || c.Kind == "READY" {
			t.Errorf("%v after STOPPING=1", c)
		}
	}
	return stopping
}

// CheckStatusChanges checks that STATUS is sent only on a change: t.Errorf
// for every status equal to the one before it. It returns the number of
// STATUS calls.
func (r *Recorder) CheckStatusChanges(t testing.TB) int {
	t.Helper()
	prev, n := "", 0
	for _, c := range r.Calls() {
		if c.Kind != "STATUS" {
			continue
		}
		n++
		if c.Arg == prev {
			t.Errorf("STATUS=%s sent twice in a row", c.Arg)
		}
		prev = c.Arg
	}
	return n
}

// KindIs matches the calls of one kind ("READY", "WATCHDOG", …), for Wait.
func KindIs(kind string) func(Call) bool { return func(c Call) bool { return c.Kind == kind } }

// StatusIs matches STATUS=s, for Wait.
func StatusIs(s string) func(Call) bool {
	return func(c Call) bool { return c.Kind == "STATUS" && c.Arg == s }
}

// Pings returns the times of the WATCHDOG calls made in [from, to).
func (r *Recorder) Pings(from, to time.Time) []time.Time {
	var out []time.Time
	for _, c := range r.Calls() {
		if c.Kind == "WATCHDOG" && !c.At.Before(from) && c.At.Before(to) {
			out = append(out, c.At)
		}
	}
	return out
}

// MaxGap is the longest time in [from, to) without a ping, given the
// pings in that interval in order (as Pings returns them).
func MaxGap(pings []time.Time, from, to time.Time) time.Duration {
	var gap time.Duration
	prev := from
	for _, p := range append(pings, to) {
		gap = max(gap, p.Sub(prev))
		prev = p
	}
	return gap
}

// Listen opens a notification socket as the package-level Listen does and
// records every assignment of every datagram sent to it as a Call
// ("READY=1" as Kind "READY", "STATUS=x" as Kind "STATUS", Arg "x"), for a
// daemon that talks to NOTIFY_SOCKET itself. It returns the socket's path.
// Do not use BlockStatus with it. Recording stops when the test ends.
func (r *Recorder) Listen(t testing.TB) (socketPath string) {
	t.Helper()
	done := make(chan struct{})
	started := false
	// Registered before Listen's own cleanup, so it runs after it: by then
	// the channel is closed and the goroutine below returns.
	t.Cleanup(func() {
		if started {
			<-done
		}
	})
	socketPath, msgs := Listen(t)
	started = true
	go func() {
		defer close(done)
		for m := range msgs {
			for _, line := range strings.Split(strings.TrimRight(m, "\n"), "\n") {
				kind, arg, _ := strings.Cut(line, "=")
				if kind != "STATUS" && arg == "1" {
					arg = ""
				}
				r.record(kind, arg)
			}
		}
	}()
	return socketPath
}
