package health

import (
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/clock"
	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/state"
)

// TestFailsafePromise: POST /failsafe records the promise before it
// answers 200; it never shortens one already given; it refuses the node's
// own name, a node whose pg-lockd holds the leader key or whose
// PostgreSQL runs as a primary, a body without a name and an absurd ttl.
func TestFailsafePromise(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	w, err := NewWriter(WriterOptions{Cfg: &config.Config{Name: "node2"}, RuntimeDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if got := writeRoute("POST", "/failsafe"); got != opFailsafe {
		t.Fatalf("POST /failsafe routes to %d", got)
	}
	before := clock.Now()
	if a := w.failsafe([]byte(`{"name":"node1","api_url":"http://x:8008/patroni","ttl":30}`)); a.code != 200 || a.body != "Accepted" {
		t.Fatalf("POST /failsafe: %d %q, want 200 Accepted", a.code, a.body)
	}
	f, err := state.ReadFailsafe(dir)
	if err != nil || f.Leader != "node1" || f.Until.Sub(before) < 30*time.Second || f.Until.Sub(clock.Now()) > 30*time.Second {
		t.Fatalf("promise %+v, %v; want node1 for 30 s from the request", f, err)
	}
	if !f.Active(clock.Now()) || f.Active(f.Until) {
		t.Errorf("Active: %v now, %v at its end", f.Active(clock.Now()), f.Active(f.Until))
	}
	if a := w.failsafe([]byte(`{"name":"node1","ttl":5}`)); a.code != 200 {
		t.Fatalf("a second POST /failsafe: %d %q", a.code, a.body)
	}
	if g, _ := state.ReadFailsafe(dir); g.Until != f.Until {
		t.Errorf("a shorter request moved the promise's end from %v to %v", f.Until, g.Until)
	}
	for _, tt := range []struct {
		body string
		code int
	}{
		{`{"name":"node2","ttl":5}`, 500},
		{`{"ttl":5}`, 400},
		{`not json`, 400},
		{`{"name":"node1","ttl":86400}`, 400},
	} {
		if a := w.failsafe([]byte(tt.body)); a.code != tt.code {
			t.Errorf("POST /failsafe %s: %d %q, want %d", tt.body, a.code, a.body, tt.code)
		}
	}
	if err := state.Write(dir, state.LockdFile, state.Lockd{Token: 7, Updated: clock.Now()}); err != nil {
		t.Fatal(err)
	}
	if a := w.failsafe([]byte(`{"name":"node1","ttl":5}`)); a.code != 500 || a.body != "Running as a leader" {
		t.Errorf("POST /failsafe to a leader: %d %q, want 500 Running as a leader", a.code, a.body)
	}
	if err := state.Write(dir, state.LockdFile, state.Lockd{Updated: clock.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := state.Write(dir, state.SuperviseFile, state.Supervise{State: "running", Role: "primary", PID: 42}); err != nil {
		t.Fatal(err)
	}
	if a := w.failsafe([]byte(`{"name":"node1","ttl":5}`)); a.code != 500 {
		t.Errorf("POST /failsafe to a node running a primary: %d %q, want 500", a.code, a.body)
	}
}
