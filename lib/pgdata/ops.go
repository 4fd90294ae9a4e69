package pgdata

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/pg"
)

// DirState says what a data directory holds.
type DirState int

// The states of a data directory.
const (
	Missing DirState = iota // absent or empty
	Valid                   // has a readable control file
	Broken                  // not empty, but no usable control file
)

// Inspect reports the state of dataDir; for Valid it returns the control
// data. It runs pg_controldata as the owner.
func (n *Node) Inspect(ctx context.Context) (DirState, pg.ControlData, error) {
	dir := n.DataDir()
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) || (err == nil && len(entries) == 0) {
		return Missing, pg.ControlData{}, nil
	}
	if err != nil {
		return Broken, pg.ControlData{}, fmt.Errorf("read data directory %s: %w", dir, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "global", "pg_control")); err != nil {
		return Broken, pg.ControlData{}, nil
	}
	cd, err := pg.ReadControlData(ctx, n.Owner, n.BinDir(), dir)
	if err != nil {
		return Broken, pg.ControlData{}, err
	}
	return Valid, cd, nil
}

// EnsureParent creates the data directory's parent if needed and makes
// sure the data directory itself, if it exists, belongs to the owner.
func (n *Node) EnsureParent() error {
	parent := filepath.Dir(n.DataDir())
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", parent, err)
	}
	return nil
}

// InitDB runs initdb into an empty data directory with the bootstrap.initdb
// options. The superuser's password is passed in a file, never as an
// argument.
func (n *Node) InitDB(ctx context.Context) error {
	dir := n.DataDir()
	if err := n.makeOwnedDir(dir); err != nil {
		return err
	}
	args := []string{"-D", dir, "-U", n.Cfg.Postgres.Authentication.Superuser.Username}
	args = append(args, n.Cfg.Bootstrap.InitDB.Args()...)
	hasAuth := false
	for _, o := range n.Cfg.Bootstrap.InitDB {
		switch o.Name {
		case "auth", "auth-local", "auth-host", "pwfile", "A":
			hasAuth = true
		}
	}
	if !hasAuth {
		args = append(args, "--auth-local=trust", "--auth-host=scram-sha-256")
	}
	if pw := n.Cfg.Postgres.Authentication.Superuser.Password; pw != "" {
		pwfile := filepath.Join(n.RuntimeDir, ".initdb-pw")
		if err := writeAtomic(pwfile, []byte(pw+"\n"), 0o600, n.Owner); err != nil {
			return err
		}
		defer os.Remove(pwfile)
		args = append(args, "--pwfile="+pwfile)
	}
	if _, err := pg.Run(ctx, n.Owner, n.BinDir(), "initdb", args); err != nil {
		return fmt.Errorf("initdb: %w", err)
	}
	return nil
}

// basebackupArgs renders postgresql.basebackup (a list of switches and
// one-key maps, or a map) as pg_basebackup arguments.
func basebackupArgs(v any) []string {
	var out []string
	add := func(k string, val any) {
		if val == nil || val == "" {
			out = append(out, "--"+k)
			return
		}
		out = append(out, "--"+k+"="+config.ParamString(val))
	}
	switch x := v.(type) {
	case []any:
		for _, it := range x {
			switch y := it.(type) {
			case string:
				add(y, nil)
			case map[string]any:
				for k, val := range y {
					add(k, val)
				}
			}
		}
	case map[string]any:
		for k, val := range x {
			add(k, val)
		}
	}
	return out
}

// MoveAside renames the data directory to <dir>.<suffix>, replacing an
// earlier one, so that a rebuild never destroys data outright.
func (n *Node) MoveAside(suffix string) (string, error) {
	dir := n.DataDir()
	dst := dir + "." + suffix
	if err := os.RemoveAll(dst); err != nil {
		return "", fmt.Errorf("remove old %s: %w", dst, err)
	}
	if err := os.Rename(dir, dst); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("move %s aside: %w", dir, err)
	}
	return dst, nil
}

func (n *Node) makeOwnedDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("chmod %s: %w", dir, err)
	}
	if os.Geteuid() == 0 {
		if err := os.Chown(dir, int(n.Owner.UID), int(n.Owner.GID)); err != nil {
			return fmt.Errorf("chown %s: %w", dir, err)
		}
	}
	return nil
}

// RewindResult says what pg_rewind did.
type RewindResult int

// Outcomes of Rewind.
const (
	NotNeeded RewindResult = iota // the target had not diverged
	Rewound                       // the target was rewound (or would be, with dryRun)
)

// Rewind runs pg_rewind against the source server; with dryRun it only
// reports whether a rewind is needed. The target must be stopped; a crashed
// target is first recovered by pg_rewind itself (single-user mode).
func (n *Node) Rewind(ctx context.Context, src pg.ConnParams, dryRun bool) (RewindResult, string, error) {
	src.Replication = false
	args := []string{"-D", n.DataDir(), "--source-server=" + src.ConnString()}
	if dryRun {
		args = append(args, "--dry-run")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	out, err := pg.Run(ctx, n.Owner, n.BinDir(), "pg_rewind", args, "PGPASSFILE="+n.Pgpass())
	text := string(out)
	if err != nil {
		return NotNeeded, text, fmt.Errorf("pg_rewind: %w", err)
	}
	if strings.Contains(text, "no rewind required") {
		return NotNeeded, text, nil
	}
	return Rewound, text, nil
}

// EnsureSourceCheckpoint makes sure the server at src (a new primary) has
// completed a checkpoint on its current timeline, running CHECKPOINT there
// if not. pg_rewind reads the source's timeline from its control file, which
// a promotion updates only at the next checkpoint: without one it would
// wrongly report "no rewind required". src must name a superuser. It fails
// while the source is still in recovery (being promoted): retry later —
// unless standbyOK (the source is a standby this node cascades from), when
// a restartpoint is asked for instead.
func (n *Node) EnsureSourceCheckpoint(ctx context.Context, src pg.ConnParams, standbyOK bool) error {
	src.Replication = false
	conn, err := pg.Connect(ctx, src)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var inRecovery bool
	var ckptTL, curTL int64
	err = conn.QueryRow(ctx, `SELECT pg_is_in_recovery(), (SELECT timeline_id FROM pg_control_checkpoint()),
		CASE WHEN pg_is_in_recovery() THEN 0 ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::bigint END`).
		Scan(&inRecovery, &ckptTL, &curTL)
	if err != nil {
		return fmt.Errorf("read the source's timeline: %w", err)
	}
	if inRecovery {
		if !standbyOK {
			return fmt.Errorf("the source %s:%d is still in recovery", src.Host, src.Port)
		}
		// A standby source (pg_rewind takes one since PostgreSQL 14): a
		// restartpoint writes its control file with the timeline it
		// replays, which pg_rewind reads.
		if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
			return fmt.Errorf("restartpoint on the source: %w", err)
		}
		return nil
	}
	if ckptTL >= curTL {
		return nil
	}
	if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
		return fmt.Errorf("checkpoint on the source: %w", err)
	}
	return nil
}

// RecoverCleanly brings a stopped data directory that may have diverged
// into the state pg_rewind can judge: cleanly shut down, with all of its own
// WAL replayed. standby.signal is removed (single-user mode refuses standby
// mode), and unless the control file already says "shut down", PostgreSQL
// runs once in single-user mode, which replays the local WAL to its end and
// writes a shutdown checkpoint. Without this, a server stopped in the middle
// of its recovery leaves a control file whose recovery point lies before the
// end of its WAL, and pg_rewind would wrongly report "no rewind required".
func (n *Node) RecoverCleanly(ctx context.Context) error {
	dir := n.DataDir()
	if err := SetStandbySignal(dir, n.Owner, false); err != nil {
		return err
	}
	_ = os.Remove(filepath.Join(dir, "recovery.signal"))
	cd, err := pg.ReadControlData(ctx, n.Owner, n.BinDir(), dir)
	if err != nil {
		return err
	}
	if cd.State == pg.StateShutDown {
		return nil
	}
	if _, err := pg.Run(ctx, n.Owner, n.BinDir(), "postgres", []string{"--single", "-F", "-D", dir, "template1"}); err != nil {
		return fmt.Errorf("crash recovery in single-user mode: %w", err)
	}
	return nil
}
