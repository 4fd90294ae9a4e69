package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/testcluster"
)

// TestRewindFailurePolicy: pg_rewind fails on every node (their bin_dir
// holds the real PostgreSQL programs but a pg_rewind that always exits 1),
// while the application writes to the primary throughout.
//
//   - With the default (remove_data_directory_on_rewind_failure off), the
//     primary that is switched over cannot be rewound: after its retries it
//     stays down with the member state "rewind failed" (in pg-failover list
//     and /patroni), its data directory untouched (same directory, a marker
//     file still there), the instruction logged once; pg-failover reinit
//     brings it back as a streaming replica.
//   - With remove_data_directory_on_rewind_failure: true set in the config
//     key, the next switched-over primary is re-created by itself and its
//     old data is kept in a directory beside data_dir, never deleted.
//
// No acknowledged write is lost.
func TestRewindFailurePolicy(t *testing.T) {
	began := time.Now()
	bin := failingRewindBinDir(t)
	c, w := start(t, testcluster.Options{
		Healthd:       true,
		ExtraPostgres: func(int) map[string]any { return map[string]any{"bin_dir": bin} },
	})
	p := c.WaitPrimary(t, 10*time.Second)
	next := replicasOf(c, p)[0]

	// 1. The default: the old primary waits for an operator.
	mark := plantMarker(t, p)
	ino := inode(t, p.DataDir)
	w.Mark("switchover " + p.Name + " -> " + next.Name + " (pg_rewind fails everywhere)")
	if _, stderr, code := pgFailover(t, next, "--to", next.Name, "--force"); code != 0 {
		t.Fatalf("switchover to %s: exit %d: %s", next.Name, code, lastLine(stderr))
	}
	switched := time.Now()
	waitMember(t, c, p.Name, 40*time.Second, `in state "rewind failed"`, func(m map[string]any) bool {
		return m != nil && m["state"] == "rewind failed"
	})
	t.Logf("%s shows \"rewind failed\" %s after the switchover", p.Name, time.Since(switched).Round(time.Millisecond))
	// It stays so: PostgreSQL down, the data directory as it was.
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if pid := p.PID(testcluster.Postmaster); pid != 0 {
			t.Fatalf("%s: PostgreSQL runs (pid %d) on data pg_rewind could not repair", p.Name, pid)
		}
	}
	if got := inode(t, p.DataDir); got != ino {
		t.Errorf("%s: data directory replaced (inode %d, was %d)", p.Name, got, ino)
	}
	if !hasMarker(p.DataDir, mark) {
		t.Errorf("%s: the marker file is gone from its data directory", p.Name)
	}
	if n := strings.Count(superviseLog(t, p), "cannot follow its leader without being re-created"); n != 1 {
		t.Errorf("%s: what to do is logged %d times, want once", p.Name, n)
	} else if !strings.Contains(superviseLog(t, p), "pg-failover reinit "+p.Name) {
		t.Errorf("%s: the log does not say to run pg-failover reinit %s", p.Name, p.Name)
	}
	if p.LogContains(testcluster.Supervise, "re-cloning from the leader") {
		t.Errorf("%s was re-created although remove_data_directory_on_rewind_failure is off", p.Name)
	}
	out, _, code := pgFailover(t, next, "list")
	if code != 0 || !listShows(out, p.Name, "rewind failed") {
		t.Errorf("pg-failover list (exit %d) does not show %s as \"rewind failed\":\n%s", code, p.Name, out)
	}
	if st := patroniState(t, p); st != "rewind failed" {
		t.Errorf("%s: /patroni state %q, want \"rewind failed\"", p.Name, st)
	}

	w.Mark("reinit " + p.Name)
	if out, stderr, code := pgFailover(t, next, "reinit", p.Name, "--force"); code != 0 {
		t.Fatalf("reinit %s: exit %d, %q, %s", p.Name, code, out, lastLine(stderr))
	}
	c.WaitReplicasStreaming(t, 30*time.Second)
	if aside := markerBeside(p.DataDir, mark); aside == "" {
		t.Errorf("%s: after reinit, no directory beside %s holds the old data", p.Name, p.DataDir)
	}
	// The promoted replica's configuration lost nothing that needs a
	// restart (the recovery targets are written alike for both roles).
	waitMembersStreaming(t, c, next, 10*time.Second)
	if ms, err := c.Members(context.Background()); err != nil || ms[next.Name]["pending_restart"] == true {
		t.Errorf("%s: pending_restart after its promotion (%v): %s", next.Name, err, fmtJSON(ms[next.Name]))
	}

	// 2. remove_data_directory_on_rewind_failure in the config key: the
	// next old primary is re-created by itself, its old data kept aside.
	old, to := next, p
	if _, stderr, code := pgFailover(t, old, "edit-config", "--set", "postgresql.remove_data_directory_on_rewind_failure=true", "--force", "-q"); code != 0 {
		t.Fatalf("edit-config: exit %d: %s", code, lastLine(stderr))
	}
	waitUntil(t, 10*time.Second, old.Name+"'s pg-supervise to follow the config key", func() bool {
		return strings.Contains(superviseLog(t, old), `"remove_data_directory_on_rewind_failure":true`)
	})
	waitMembersStreaming(t, c, old, 10*time.Second)
	mark = plantMarker(t, old)
	w.Mark("switchover " + old.Name + " -> " + to.Name + " (remove_data_directory_on_rewind_failure)")
	if _, stderr, code := pgFailover(t, to, "--to", to.Name, "--force"); code != 0 {
		t.Fatalf("switchover to %s: exit %d: %s", to.Name, code, lastLine(stderr))
	}
	switched = time.Now()
	if err := c.ReplicasStreamingWithin(45 * time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s re-created and streaming %s after the switchover", old.Name, time.Since(switched).Round(time.Millisecond))
	if !old.LogContains(testcluster.Supervise, "re-cloning from the leader") {
		t.Errorf("%s streams, but its pg-supervise did not re-create it", old.Name)
	}
	if hasMarker(old.DataDir, mark) {
		t.Errorf("%s: the marker file is still in data_dir: not re-created", old.Name)
	}
	if aside := markerBeside(old.DataDir, mark); aside == "" {
		t.Errorf("%s: no directory beside %s holds the old data: it was deleted", old.Name, old.DataDir)
	} else {
		t.Logf("%s: old data kept in %s", old.Name, aside)
	}
	finishLossless(t, c, w)
	t.Logf("test took %s", time.Since(began).Round(time.Second))
}

// failingRewindBinDir returns a directory that postgres can read with a link
// to every PostgreSQL program, except pg_rewind, which always fails.
func failingRewindBinDir(t *testing.T) string {
	t.Helper()
	real := os.Getenv("PGHA_PG_BIN_DIR")
	if real == "" {
		real = testcluster.PGBinDir
	}
	testcluster.SkipUnlessAvailable(t)
	dir, err := os.MkdirTemp("", "pgha-rewindbin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(real)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() == "pg_rewind" {
			continue
		}
		if err := os.Symlink(filepath.Join(real, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	script := "#!/bin/sh\necho 'pg_rewind: error: refused by the pg-ha test' >&2\nexit 1\n"
	if err := os.WriteFile(filepath.Join(dir, "pg_rewind"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// plantMarker writes a file with random content into n's data directory
// and returns the content.
func plantMarker(t *testing.T, n *testcluster.Node) string {
	t.Helper()
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	mark := hex.EncodeToString(b)
	if err := os.WriteFile(filepath.Join(n.DataDir, markerFile), []byte(mark), 0o644); err != nil {
		t.Fatal(err)
	}
	return mark
}

const markerFile = "pgha-test-marker"

func hasMarker(dir, mark string) bool {
	b, err := os.ReadFile(filepath.Join(dir, markerFile))
	return err == nil && string(b) == mark
}

// markerBeside returns the directory next to dataDir (in its parent, not
// dataDir itself) that holds the marker, or "".
func markerBeside(dataDir, mark string) string {
	parent := filepath.Dir(dataDir)
	ents, err := os.ReadDir(parent)
	if err != nil {
		return ""
	}
	for _, e := range ents {
		d := filepath.Join(parent, e.Name())
		if e.IsDir() && d != filepath.Clean(dataDir) && hasMarker(d, mark) {
			return d
		}
	}
	return ""
}

func superviseLog(t *testing.T, n *testcluster.Node) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(n.Dir, testcluster.Supervise.String()+".log"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// listShows reports whether pg-failover list's table has a row for member
// that shows state.
func listShows(out, member, state string) bool {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, " "+member+" ") && strings.Contains(l, state) {
			return true
		}
	}
	return false
}

// patroniState returns the state n's GET /patroni reports.
func patroniState(t *testing.T, n *testcluster.Node) string {
	t.Helper()
	cl := http.Client{Timeout: 3 * time.Second}
	resp, err := cl.Get(fmt.Sprintf("http://127.0.0.1:%d/patroni", n.APIPort))
	if err != nil {
		t.Errorf("%s: GET /patroni: %v", n.Name, err)
		return ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var st struct {
		State string `json:"state"`
	}
	if err := json.Unmarshal(body, &st); err != nil {
		t.Errorf("%s: GET /patroni: %q: %v", n.Name, body, err)
	}
	return st.State
}
