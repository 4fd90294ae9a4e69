package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/pg"
	"github.com/pg-ha/pg-ha/lib/pgdata"
)

// A custom bootstrap method (Patroni's bootstrap.method): instead of
// initdb, the node that wins the initialize key runs the method's command
// into the empty data directory — typically a restore from a backup — and,
// when the method gives recovery settings, lets the restored cluster
// recover once on a private socket until it is a primary. initCluster then
// finishes it as it finishes an initdb.

// methodArgs are the arguments a custom bootstrap method's command gets,
// as Patroni passes them: --scope and --datadir unless no_params, then
// the section's other keys as --key=value (a scope or datadir key there
// is left out: it would contradict the first two).
func methodArgs(m *config.Method, scope, dataDir string) []string {
	var args []string
	if !m.NoParams {
		args = append(args, "--scope="+scope, "--datadir="+dataDir)
	}
	opts := *m
	opts.Options = slices.DeleteFunc(slices.Clone(m.Options), func(o config.Option) bool {
		return o.Key == "scope" || o.Key == "datadir"
	})
	return append(args, opts.Args()...)
}

// recoveryPlan says whether the restored cluster must first recover, and
// with which settings (server parameters): recovery_conf when the method
// has one; with keep_existing_recovery_conf and a recovery.signal or
// standby.signal the command left, the settings the command wrote (none
// added here); otherwise no recovery.
func recoveryPlan(m *config.Method, signalLeft bool) (settings map[string]string, recover bool) {
	switch {
	case len(m.RecoveryConf) > 0:
		return pgdata.RecoveryParams(m.RecoveryConf), true
	case m.KeepExistingRecoveryConf && signalLeft:
		return map[string]string{}, true
	}
	return nil, false
}

// runMethod runs the custom bootstrap method m into the empty data
// directory, which it creates if missing, and checks that the command left
// a PostgreSQL data directory. It returns the recovery settings of the
// first start (recover false: none; the cluster starts as a primary as it
// is). It blocks until the command exits; ctx kills it.
func (b *Bootstrapper) runMethod(ctx context.Context, m *config.Method) (settings map[string]string, recover bool, err error) {
	dir := b.Node.DataDir()
	if err := b.ownedDir(dir); err != nil {
		return nil, false, err
	}
	log := b.Log.With().Str("method", m.Name).Logger()
	log.Info().Str("data_dir", dir).Str("command", m.Command).
		Msg("this node initializes the cluster: running the custom bootstrap method")
	start := time.Now()
	err = b.Node.RunMethod(ctx, m.Command, methodArgs(m, b.Node.Cfg.Scope, dir), func(line string) {
		log.Info().Str("output", line).Msg("bootstrap method")
	})
	if err != nil {
		return nil, false, fmt.Errorf("bootstrap.%s: %w", m.Name, err)
	}
	st, _, err := b.Node.Inspect(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("bootstrap.%s: %w", m.Name, err)
	}
	if st != pgdata.Valid {
		return nil, false, fmt.Errorf("bootstrap.%s: %s succeeded but left no PostgreSQL data directory in %s", m.Name, m.Command, dir)
	}
	log.Info().Dur("took", time.Since(start)).Msg("bootstrap method done")
	// PostgreSQL refuses a data directory others may read; a restore may
	// have left the mode of the backup's directory.
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("chmod %s: %w", dir, err)
	}
	// Files of the backed-up server that must not act here: a promote
	// request, and the mark of the source's last run as a primary.
	for _, f := range []string{"promote", pgdata.WasPrimaryFile} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, false, fmt.Errorf("remove %s: %w", f, err)
		}
	}
	signalLeft := false
	for _, f := range []string{"recovery.signal", "standby.signal"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			signalLeft = true
		}
	}
	settings, recover = recoveryPlan(m, signalLeft)
	if signalLeft && !recover {
		log.Info().Msg("removed the recovery.signal/standby.signal the method left (keep_existing_recovery_conf is off)")
	}
	// WriteConf, which comes next, removes both signal files; recoverThen
	// writes recovery.signal again when the cluster must recover.
	return settings, recover, nil
}

// ownedDir creates dir (mode 0700, owned by the data directory's owner) if
// it is missing; an existing one is left as it is.
func (b *Bootstrapper) ownedDir(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	if os.Geteuid() == 0 {
		if err := os.Chown(dir, int(b.Node.Owner.UID), int(b.Node.Owner.GID)); err != nil {
			return fmt.Errorf("chown %s: %w", dir, err)
		}
	}
	return nil
}

// errShutdownAtTarget: the server shut down in recovery, as
// recovery_target_action shutdown makes it do at the target.
var errShutdownAtTarget = errors.New("the server shut down at the recovery target")

// recoverThen starts the restored cluster once, privately (no TCP
// listener, a socket in the runtime directory), in archive recovery
// (recovery.signal) with settings as command-line parameters, so that
// they never stay in its configuration files. It waits until recovery has
// ended and the server is a primary: paused at the target
// (recovery_target_action pause), recovery is resumed, which ends it; shut
// down at the target (shutdown), the server is started once more with the
// same settings and recovery_target_action promote — started without
// recovery it would replay the WAL it restored past the target. Then it
// runs f on a connection as the superuser and stops the server cleanly.
// It blocks as long as recovery takes; ctx kills the server.
func (b *Bootstrapper) recoverThen(ctx context.Context, settings map[string]string, f func(context.Context, *pgx.Conn) error) error {
	settings = maps.Clone(settings)
	for attempt := 1; ; attempt++ {
		err := b.recoverOnce(ctx, settings, f)
		if errors.Is(err, errShutdownAtTarget) && attempt == 1 {
			b.Log.Info().Msg("recovery stopped at its target with recovery_target_action shutdown: recovering to the same target again to promote")
			settings["recovery_target_action"] = "promote"
			continue
		}
		return err
	}
}

func (b *Bootstrapper) recoverOnce(ctx context.Context, settings map[string]string, f func(context.Context, *pgx.Conn) error) error {
	n := b.Node
	dir := n.DataDir()
	if err := os.WriteFile(filepath.Join(dir, "recovery.signal"), nil, 0o600); err != nil {
		return fmt.Errorf("write recovery.signal: %w", err)
	}
	if os.Geteuid() == 0 {
		if err := os.Chown(filepath.Join(dir, "recovery.signal"), int(n.Owner.UID), int(n.Owner.GID)); err != nil {
			return fmt.Errorf("chown recovery.signal: %w", err)
		}
	}
	logPath := filepath.Join(n.RuntimeDir, "bootstrap-recovery.log")
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("open %s: %w", logPath, err)
	}
	defer logf.Close()
	cmd := pg.Command(context.WithoutCancel(ctx), n.Owner, n.BinDir(), "postgres", recoveryArgs(dir, n.RuntimeDir, n.Cfg.ListenPort(), settings))
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start postgres to recover: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	pid := cmd.Process.Pid
	stop := func() error {
		_ = syscall.Kill(pid, syscall.SIGINT) // fast shutdown
		select {
		case <-exited:
			return nil
		case <-time.After(2 * time.Minute):
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			<-exited
			return errors.New("postgres did not shut down within 2m; killed it")
		}
	}
	b.Log.Info().Int("pid", pid).Strs("settings", slices.Sorted(maps.Keys(settings))).Msg("recovering the restored cluster")
	start := time.Now()
	conn, err := b.awaitPrimary(ctx, exited, logPath)
	if err != nil {
		_ = stop()
		return err
	}
	b.Log.Info().Dur("took", time.Since(start)).Msg("recovery done: the restored cluster is a primary")
	ferr := f(ctx, conn)
	_ = conn.Close(context.WithoutCancel(ctx))
	if err := stop(); err != nil && ferr == nil {
		return fmt.Errorf("stop postgres after recovery: %w", err)
	}
	return ferr
}

// exclusiveTargets are the recovery targets of which at most one may be
// set.
var exclusiveTargets = []string{"recovery_target", "recovery_target_lsn", "recovery_target_name",
	"recovery_target_time", "recovery_target_xid"}

// recoveryArgs are the postgres arguments of the private recovery run. The
// recovery targets not chosen are set empty on the command line first: the
// restored postgresql.conf may hold them (pg-ha writes them, empty, on every
// node), and PostgreSQL refuses any recovery target line read after the one
// in force ("multiple recovery targets specified") unless a command-line
// value, which takes precedence, makes it skip the line.
func recoveryArgs(dataDir, sockDir string, port int, settings map[string]string) []string {
	args := []string{"-D", dataDir, "-c", "listen_addresses=", "-c", "unix_socket_directories=" + sockDir,
		"-c", "port=" + strconv.Itoa(port), "-c", "hot_standby=on", "-c", "logging_collector=off"}
	for _, k := range exclusiveTargets {
		if _, ok := settings[k]; !ok {
			args = append(args, "-c", k+"=")
		}
	}
	for _, k := range slices.Sorted(maps.Keys(settings)) {
		args = append(args, "-c", k+"="+settings[k])
	}
	return args
}

// awaitPrimary polls the recovering server until it left recovery and
// returns a connection to it. It resumes a recovery paused at its target.
// The server exiting is errShutdownAtTarget when it shut down in recovery,
// else a failed recovery, told by the server's last FATAL line.
func (b *Bootstrapper) awaitPrimary(ctx context.Context, exited <-chan struct{}, logPath string) (*pgx.Conn, error) {
	p := b.Node.Local(5 * time.Second)
	p.Host = b.Node.RuntimeDir
	resumed := false
	lastLog := time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("recovery: %w", context.Cause(ctx))
		case <-exited:
			cd, err := pg.ReadControlData(context.WithoutCancel(ctx), b.Node.Owner, b.Node.BinDir(), b.Node.DataDir())
			if err == nil && cd.State == "shut down in recovery" {
				return nil, errShutdownAtTarget
			}
			return nil, fmt.Errorf("recovery failed: postgres exited: %s (log: %s)", serverError(logPath), logPath)
		case <-time.After(200 * time.Millisecond):
		}
		conn, err := pg.Connect(ctx, p)
		if err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && (pgErr.Code == "28P01" || pgErr.Code == "28000") {
				return nil, fmt.Errorf("recovery: connect to the restored cluster as %s: %w", p.User, err)
			}
			if time.Since(lastLog) > 10*time.Second {
				b.Log.Info().Str("waiting_for", err.Error()).Msg("still recovering")
				lastLog = time.Now()
			}
			continue
		}
		var inRecovery bool
		var pause string
		err = conn.QueryRow(ctx, "SELECT pg_is_in_recovery(), CASE WHEN pg_is_in_recovery() THEN pg_get_wal_replay_pause_state() ELSE '' END").Scan(&inRecovery, &pause)
		switch {
		case err == nil && !inRecovery:
			return conn, nil
		case err == nil && pause == "paused":
			if !resumed {
				b.Log.Info().Msg("recovery paused at its target: resuming it, which ends recovery")
				resumed = true
			}
			if _, err := conn.Exec(ctx, "SELECT pg_wal_replay_resume()"); err != nil {
				b.Log.Warn().Err(err).Msg("resume recovery")
			}
		}
		_ = conn.Close(ctx)
	}
}

// serverError is the last FATAL or PANIC line of the server's log, or its
// last line.
func serverError(logPath string) string {
	b, _ := os.ReadFile(logPath)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], "FATAL:") || strings.Contains(lines[i], "PANIC:") {
			return strings.TrimSpace(lines[i])
		}
	}
	if len(lines) > 0 && lines[len(lines)-1] != "" {
		return strings.TrimSpace(lines[len(lines)-1])
	}
	return "no output"
}
