package pgdata

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/pg-ha/pg-ha/lib/pg"
)

// Source is a member a new replica can be copied from.
type Source struct {
	Name    string `json:"name"`
	ConnURL string `json:"conn_url"`
}

// CreateOptions say how CreateReplica makes this node's data directory.
type CreateOptions struct {
	// Sources are the members to copy from, preferred first; empty when no
	// member runs (only no_leader methods can work then).
	Sources []Source
	// SystemID is the cluster's system identifier: a copy of another
	// cluster is refused. "" skips the check.
	SystemID string
	// Keep is how many replaced data directories are kept aside once the
	// new one is in place (the newest first); 0 keeps none. While the new
	// copy is not in place, the old one is never removed.
	Keep int
	// Check, when set, must accept the complete new copy in dir before it
	// replaces the data directory.
	Check func(ctx context.Context, dir string) error
	// Progress, when set, is told how far a copy has got, about once a
	// second.
	Progress func(Progress)
	Log      zerolog.Logger
	// Methods, when set, replace the configured create_replica_methods
	// (a standby cluster's first node uses standby_cluster's).
	Methods []string
}

// Created says how CreateReplica made the data directory.
type Created struct {
	Method string
	Source string // the member copied from, "" for a method that used none
	// Kept is where the replaced data directory was kept; "" when there was
	// none or it was not kept.
	Kept string
}

// errSkip: a method that cannot run here (it needs a member to copy from).
var errSkip = errors.New("skipped")

// CreateReplica makes this node's data directory a new replica's by the
// replica creation methods in their configured order, each tried with the
// sources in order, until one works. A method with parameters writes into a
// new directory beside the data directory (<data_dir>.new); the data
// directory is replaced only once the copy is complete, belongs to this
// cluster and passes o.Check, and the one it replaces is kept as
// <data_dir>.old-<UTC time>. A method run without parameters writes where
// its own configuration says, the data directory itself: the old one is
// moved aside first and put back if the method fails. A keep_data method
// works on the data directory in place, as it asks. A failed attempt leaves
// nothing half-written behind.
func (n *Node) CreateReplica(ctx context.Context, o CreateOptions) (Created, error) {
	if o.Progress != nil {
		stop := o.repeatProgress()
		defer stop()
	}
	var errs []string
	methods := o.Methods
	if len(methods) == 0 {
		methods = n.Cfg.ReplicaMethods()
	}
	for _, name := range methods {
		var (
			res Created
			err error
		)
		if o.Progress != nil {
			o.Progress(Progress{Method: name})
		}
		if name == "basebackup" {
			res, err = n.createByBasebackup(ctx, o)
		} else {
			res, err = n.createByMethod(ctx, name, o)
		}
		if err == nil {
			return res, nil
		}
		if ctx.Err() != nil {
			return Created{}, err
		}
		if errors.Is(err, errSkip) {
			o.Log.Info().Str("method", name).Err(err).Msg("replica creation method not usable now")
		} else {
			o.Log.Warn().Str("method", name).Err(err).Msg("replica creation method failed")
		}
		errs = append(errs, name+": "+err.Error())
	}
	return Created{}, fmt.Errorf("no replica creation method worked (%s)", strings.Join(errs, "; "))
}

// repeatProgress makes o.Progress pass every report on and repeat the last
// one each second while nothing new comes (pg_basebackup waiting for a
// checkpoint, a method that prints nothing), so that those who show it know
// the copy still runs. The returned function stops the repeating.
func (o *CreateOptions) repeatProgress() func() {
	var (
		mu     sync.Mutex
		last   *Progress
		at     time.Time
		callMu sync.Mutex // one report at a time
	)
	next := o.Progress
	report := func(p Progress) {
		callMu.Lock()
		defer callMu.Unlock()
		next(p)
	}
	o.Progress = func(p Progress) {
		mu.Lock()
		last, at = &p, time.Now()
		mu.Unlock()
		report(p)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			mu.Lock()
			p, stale := last, time.Since(at) >= time.Second
			mu.Unlock()
			if p != nil && stale {
				report(*p)
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// NewDir is where a copy is made beside the data directory.
func (n *Node) NewDir() string { return n.DataDir() + ".new" }

func (n *Node) createByBasebackup(ctx context.Context, o CreateOptions) (Created, error) {
	if err := n.WritePgpass(); err != nil {
		return Created{}, err
	}
	var errs []string
	for _, s := range o.Sources {
		if s.ConnURL == "" {
			continue
		}
		src, err := n.Remote(s.ConnURL, n.Cfg.Postgres.Authentication.Replication, false)
		if err != nil {
			errs = append(errs, s.Name+": "+err.Error())
			continue
		}
		src.Replication = false
		tmp := n.NewDir()
		if err := n.freshDir(tmp); err != nil {
			return Created{}, err
		}
		o.Log.Info().Str("source", s.Name).Str("into", tmp).Msg("copying with pg_basebackup")
		args := []string{"-D", tmp, "-X", "stream", "-c", "fast", "--progress", "--no-password", "-d", src.ConnString()}
		args = append(args, basebackupArgs(n.Cfg.Postgres.Basebackup)...)
		err = n.runLines(ctx, n.BinDir(), "pg_basebackup", args, progressLines("basebackup", o))
		if err == nil {
			var kept string
			kept, err = n.finish(ctx, tmp, o)
			if err == nil {
				return Created{Method: "basebackup", Source: s.Name, Kept: kept}, nil
			}
		}
		_ = os.RemoveAll(tmp)
		errs = append(errs, s.Name+": "+err.Error())
		if ctx.Err() != nil {
			break
		}
	}
	if len(errs) == 0 {
		return Created{}, fmt.Errorf("%w: no running member to copy from", errSkip)
	}
	return Created{}, errors.New(strings.Join(errs, "; "))
}

func (n *Node) createByMethod(ctx context.Context, name string, o CreateOptions) (Created, error) {
	m, ok := n.Cfg.Postgres.Methods[name]
	if !ok {
		return Created{}, fmt.Errorf("postgresql.%s: no such section", name)
	}
	var src Source
	for _, s := range o.Sources {
		if s.ConnURL != "" {
			src = s
			break
		}
	}
	if src.ConnURL == "" && !m.NoLeader {
		return Created{}, fmt.Errorf("%w: no running member to copy from, and the method is not no_leader", errSkip)
	}
	connstr := ""
	if src.ConnURL != "" {
		if err := n.WritePgpass(); err != nil {
			return Created{}, err
		}
		p, err := n.Remote(src.ConnURL, n.Cfg.Postgres.Authentication.Replication, false)
		if err != nil {
			return Created{}, err
		}
		p.Replication = false
		connstr = p.ConnString()
	}
	dir := n.DataDir()
	target := n.NewDir()
	var kept string
	switch {
	case m.KeepData:
		target = dir
	case m.NoParams:
		// The command restores where its own configuration says: the data
		// directory. The old one waits aside, to come back on failure.
		target = dir
		if st, _, _ := n.Inspect(ctx); st != Missing {
			k, err := n.moveOld()
			if err != nil {
				return Created{}, err
			}
			kept = k
		}
		if err := n.makeOwnedDir(dir); err != nil {
			return Created{}, n.restoreOld(kept, err)
		}
	default:
		if err := n.freshDir(target); err != nil {
			return Created{}, err
		}
	}
	var args []string
	if !m.NoParams {
		args = []string{"--scope=" + n.Cfg.Scope, "--datadir=" + target, "--role=replica", "--connstring=" + connstr}
	}
	args = append(args, m.Args()...)
	o.Log.Info().Str("method", name).Str("source", src.Name).Str("into", target).Msg("creating the replica")
	err := n.RunMethod(ctx, m.Command, args, func(line string) {
		o.Log.Info().Str("method", name).Str("output", line).Msg("replica creation method")
		if p, ok := ParseProgress(line); ok && o.Progress != nil {
			p.Method = name
			o.Progress(p)
		}
	})
	if err == nil && target == dir {
		err = n.verify(ctx, dir, o)
	}
	if err == nil && target != dir {
		kept, err = n.finish(ctx, target, o)
	}
	if err != nil {
		switch {
		case target != dir:
			_ = os.RemoveAll(target)
		case m.KeepData:
			// What the method left is neither the old data nor a complete
			// copy: never start it; keep it aside like a replaced one.
			if st, _, _ := n.Inspect(ctx); st != Missing {
				if aside, merr := n.moveOld(); merr == nil {
					o.Log.Warn().Str("method", name).Str("kept", aside).Msg("the data directory the failed method worked on was moved aside")
				}
			}
		default: // no_params: the method wrote into the data directory
			_ = os.RemoveAll(dir)
			err = n.restoreOld(kept, err)
		}
		return Created{}, err
	}
	if target == dir && kept != "" {
		n.pruneOld(o)
	}
	return Created{Method: name, Source: src.Name, Kept: kept}, nil
}

// restoreOld puts the data directory kept at kept back after a failure.
func (n *Node) restoreOld(kept string, cause error) error {
	if kept == "" {
		return cause
	}
	if err := os.Rename(kept, n.DataDir()); err != nil {
		return fmt.Errorf("%w; putting the old data directory back from %s failed too: %w", cause, kept, err)
	}
	return cause
}

// progressLines feeds the progress reports among a command's output lines
// to o.Progress and logs the others.
func progressLines(method string, o CreateOptions) func(string) {
	return func(line string) {
		if p, ok := ParseProgress(line); ok {
			if o.Progress != nil {
				p.Method = method
				o.Progress(p)
			}
			return
		}
		o.Log.Info().Str("method", method).Str("output", line).Msg("replica creation")
	}
}

// verify checks that dir holds a PostgreSQL cluster of this cluster that
// o.Check accepts.
func (n *Node) verify(ctx context.Context, dir string, o CreateOptions) error {
	if _, err := os.Stat(filepath.Join(dir, "global", "pg_control")); err != nil {
		return fmt.Errorf("the copy in %s holds no PostgreSQL cluster (no global/pg_control)", dir)
	}
	cd, err := pg.ReadControlData(ctx, n.Owner, n.BinDir(), dir)
	if err != nil {
		return fmt.Errorf("the copy in %s: %w", dir, err)
	}
	if id := strconv.FormatUint(cd.SystemIdentifier, 10); o.SystemID != "" && id != o.SystemID {
		return fmt.Errorf("the copy in %s has system identifier %s, not this cluster's %s", dir, id, o.SystemID)
	}
	_ = os.Remove(filepath.Join(dir, WasPrimaryFile))
	if o.Check != nil {
		if err := o.Check(ctx, dir); err != nil {
			return fmt.Errorf("the copy in %s: %w", dir, err)
		}
	}
	return nil
}

// finish verifies the complete copy in tmp and puts it in place of the data
// directory, which is kept aside; it returns where.
func (n *Node) finish(ctx context.Context, tmp string, o CreateOptions) (string, error) {
	if err := n.verify(ctx, tmp, o); err != nil {
		return "", err
	}
	kept := ""
	if st, _, _ := n.Inspect(ctx); st != Missing {
		k, err := n.moveOld()
		if err != nil {
			return "", err
		}
		kept = k
	} else if err := os.Remove(n.DataDir()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("replace %s: %w", n.DataDir(), err)
	}
	if err := os.Rename(tmp, n.DataDir()); err != nil {
		return "", n.restoreOld(kept, fmt.Errorf("move the copy into %s: %w", n.DataDir(), err))
	}
	n.pruneOld(o)
	return kept, nil
}

// oldPrefix starts the names of replaced data directories kept aside.
func (n *Node) oldPrefix() string { return n.DataDir() + ".old-" }

// moveOld renames the data directory to <data_dir>.old-<UTC time>.
func (n *Node) moveOld() (string, error) {
	dst := n.oldPrefix() + time.Now().UTC().Format("20060102T150405.000Z")
	if err := os.Rename(n.DataDir(), dst); err != nil {
		return "", fmt.Errorf("move %s aside: %w", n.DataDir(), err)
	}
	return dst, nil
}

// OldCopies lists the replaced data directories kept aside, oldest first.
func (n *Node) OldCopies() []string {
	m, _ := filepath.Glob(n.oldPrefix() + "*")
	slices.Sort(m)
	return m
}

// pruneOld removes the oldest replaced data directories beyond o.Keep.
func (n *Node) pruneOld(o CreateOptions) {
	old := n.OldCopies()
	for len(old) > max(o.Keep, 0) {
		if err := os.RemoveAll(old[0]); err != nil {
			o.Log.Warn().Err(err).Str("dir", old[0]).Msg("removing an old copy of the data directory")
		} else {
			o.Log.Info().Str("dir", old[0]).Msg("removed an old copy of the data directory")
		}
		old = old[1:]
	}
}

// freshDir makes dir an empty directory the owner can write, removing what
// an earlier, interrupted copy left there.
func (n *Node) freshDir(dir string) error {
	if pid, _ := readPostmasterPid(dir); pid > 0 && syscall.Kill(pid, 0) == nil {
		// A trial start whose caller died: stop it before its files go.
		_, _ = pg.Run(context.Background(), n.Owner, n.BinDir(), "pg_ctl", []string{"-D", dir, "-w", "-t", "60", "-m", "immediate", "stop"})
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	return n.makeOwnedDir(dir)
}

// ErrNoSpace: the file system cannot hold a new copy beside the old one.
var ErrNoSpace = errors.New("not enough disk space")

// CheckSpace refuses a copy of about need bytes beside the data directory
// when the file system would keep less than reserve bytes free after it.
func (n *Node) CheckSpace(need, reserve int64) error {
	parent := filepath.Dir(n.DataDir())
	var st syscall.Statfs_t
	if err := syscall.Statfs(parent, &st); err != nil {
		return fmt.Errorf("free space of %s: %w", parent, err)
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	if free-need >= reserve {
		return nil
	}
	hint := ""
	if old := n.OldCopies(); len(old) > 0 {
		hint = "; old copies that could go: " + strings.Join(old, ", ")
	}
	return fmt.Errorf("%w in %s for a new copy beside the data directory: need about %s plus %s kept free, %s available%s; nothing was changed",
		ErrNoSpace, parent, humanBytes(need), humanBytes(reserve), humanBytes(free), hint)
}

// DirSize is the bytes of the regular files under dir (0 if absent).
func DirSize(dir string) int64 {
	var total int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				total += info.Size()
			}
		}
		return nil
	})
	return total
}

func humanBytes(b int64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20))
	}
	return fmt.Sprintf("%d kB", b>>10)
}

// TrialStart starts the PostgreSQL cluster in dir once as a standby with
// params and sb, on a private socket and without a TCP listener, until it
// accepts connections (it reached a consistent state), and stops it. It
// proves a new copy starts before it replaces the data directory. Recovery
// may take as long as it needs while it moves on; when the startup process
// shows the same WAL segment for stall, the copy is judged unable to reach
// consistency (its WAL is nowhere to be had) and refused.
func (n *Node) TrialStart(ctx context.Context, dir string, params map[string]string, sb *Standby, stall time.Duration) error {
	if sb == nil {
		sb = &Standby{}
	}
	if err := WriteConf(dir, n.Owner, params, sb); err != nil {
		return err
	}
	sock := filepath.Join(n.RuntimeDir, "trial")
	if err := n.freshDir(sock); err != nil {
		return err
	}
	defer os.RemoveAll(sock)
	logfile := filepath.Join(n.RuntimeDir, "trial-start.log")
	_ = os.Remove(logfile)
	opts := fmt.Sprintf("-c listen_addresses='' -c unix_socket_directories='%s' -c port=%d -c hot_standby=on", sock, n.Cfg.ListenPort())
	started, err := pg.Run(ctx, n.Owner, n.BinDir(), "pg_ctl", []string{"-D", dir, "-W", "-l", logfile, "-o", opts, "start"})
	if err != nil {
		return fmt.Errorf("trial start: %w", err)
	}
	err = watchTrial(ctx, dir, stall)
	mode := "fast"
	if err != nil {
		mode = "immediate"
	}
	_, serr := pg.Run(context.WithoutCancel(ctx), n.Owner, n.BinDir(), "pg_ctl", []string{"-D", dir, "-w", "-t", "120", "-m", mode, "stop"})
	if err != nil {
		tail, _ := os.ReadFile(logfile)
		if len(strings.TrimSpace(string(tail))) == 0 {
			tail = started // pg_ctl's own complaint, e.g. the log file could not be created
		}
		return fmt.Errorf("it does not start as a standby: %w (server log: %s)", err, lastLine(string(tail)))
	}
	if serr != nil && !strings.Contains(serr.Error(), "is the server running") {
		return fmt.Errorf("stopping it after a trial start: %w", serr)
	}
	return nil
}

// watchTrial waits until the server in dir is ready, dies, or its recovery
// stalls.
func watchTrial(ctx context.Context, dir string, stall time.Duration) error {
	began := time.Now()
	title, moved := "", time.Now()
	for {
		pid, status := readPostmasterPid(dir)
		switch {
		case status == "ready" || status == "standby":
			return nil
		case pid > 0 && syscall.Kill(pid, 0) != nil:
			return errors.New("the server stopped during recovery")
		case pid == 0 && time.Since(began) > 15*time.Second:
			return errors.New("the server did not start")
		case pid == 0:
			moved = time.Now()
		}
		if t := startupTitle(pid); t != title {
			title, moved = t, time.Now()
		} else if time.Since(moved) > stall {
			return fmt.Errorf("recovery made no progress for %s (%s)", stall, title)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// readPostmasterPid returns the postmaster's pid and status ("starting",
// "standby", "ready", …) from dir/postmaster.pid; 0 and "" while absent.
func readPostmasterPid(dir string) (int, string) {
	b, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if err != nil {
		return 0, ""
	}
	lines := strings.Split(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(lines[0]))
	status := ""
	if len(lines) > 7 {
		status = strings.TrimSpace(lines[7])
	}
	return pid, status
}

// startupTitle is the process title of the postmaster's startup process
// ("postgres: startup recovering 000000010000000000000003"), "" if none.
func startupTitle(postmaster int) string {
	if postmaster <= 0 {
		return ""
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		i := strings.LastIndexByte(string(stat), ')')
		if f := strings.Fields(string(stat[i+1:])); i < 0 || len(f) < 2 || f[1] != strconv.Itoa(postmaster) {
			continue
		}
		cmd, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if t := strings.TrimRight(strings.ReplaceAll(string(cmd), "\x00", " "), " "); strings.Contains(t, "startup") {
			return t
		}
	}
	return ""
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// SourceSize is the size of every database of the server at src, about
// what a copy of it takes.
func SourceSize(ctx context.Context, src pg.ConnParams) (int64, error) {
	src.Replication = false
	if src.Database == "" {
		src.Database = "postgres"
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pg.Connect(ctx, src)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var n int64
	err = conn.QueryRow(ctx, "SELECT sum(pg_database_size(oid))::bigint FROM pg_database WHERE datallowconn").Scan(&n)
	return n, err
}
