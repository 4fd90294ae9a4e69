package pgdata

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/pg"
	"github.com/pg-ha/pg-ha/lib/pg/pgtest"
)

// TestIntegrationTrialStart: a complete copy (pg_basebackup with its WAL)
// starts as a standby and is stopped again; a copy without the WAL it needs
// (-X none, no archive, no primary to stream from) is refused once its
// recovery has not moved for the stall window, and nothing is left running.
func TestIntegrationTrialStart(t *testing.T) {
	primary := pgtest.New(t)
	primary.Start()
	good := primary.Standby(t)
	n := trialNode(t, primary.Owner)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	began := time.Now()
	if err := n.TrialStart(ctx, good.DataDir, nil, nil, 10*time.Second); err != nil {
		t.Fatalf("a complete copy: %v", err)
	}
	t.Logf("a complete copy started and stopped in %s", time.Since(began).Round(time.Millisecond))
	if pid, _ := readPostmasterPid(good.DataDir); pid != 0 {
		t.Errorf("postmaster.pid left behind (pid %d)", pid)
	}

	bad := filepath.Join(filepath.Dir(n.RuntimeDir), "bad")
	if err := n.makeOwnedDir(bad); err != nil {
		t.Fatal(err)
	}
	if _, err := pg.Run(ctx, primary.Owner, pgtest.BinDir, "pg_basebackup", []string{"-D", bad, "-X", "none", "-c", "fast", "--no-sync",
		"-h", primary.SockDir, "-p", strconv.Itoa(primary.Port), "-U", "postgres"}); err != nil {
		t.Fatal(err)
	}
	began = time.Now()
	err := n.TrialStart(ctx, bad, nil, nil, 3*time.Second)
	if err == nil || !strings.Contains(err.Error(), "no progress") {
		t.Fatalf("a copy without its WAL: %v, want refused for no progress", err)
	}
	t.Logf("a copy without its WAL refused in %s: %v", time.Since(began).Round(time.Millisecond), err)
	if pid, _ := readPostmasterPid(bad); pid != 0 {
		t.Errorf("the refused trial's postmaster (pid %d) still runs", pid)
	}
}

func trialNode(t *testing.T, owner pg.Owner) *Node {
	root, err := os.MkdirTemp("", "pgha-trial-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	run := filepath.Join(root, "run")
	n := &Node{Owner: owner, RuntimeDir: run, Cfg: &config.Config{Postgres: config.Postgres{
		Listen: "127.0.0.1:" + strconv.Itoa(pgtest.FreePort(t)), BinDir: pgtest.BinDir, DataDir: filepath.Join(root, "data")}}}
	if err := n.makeOwnedDir(run); err != nil {
		t.Fatal(err)
	}
	return n
}
