package postmaster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/pg-ha/pg-ha/lib/callback"
	"github.com/pg-ha/pg-ha/lib/clock"
	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/decide"
	"github.com/pg-ha/pg-ha/lib/pg"
	"github.com/pg-ha/pg-ha/lib/pgdata"
	"github.com/pg-ha/pg-ha/lib/rolepipe"
	"github.com/pg-ha/pg-ha/lib/sdnotify"
	"github.com/pg-ha/pg-ha/lib/state"
	"github.com/pg-ha/pg-ha/lib/syncrep"
)

// Notifier receives the supervisor's readiness, status and watchdog pings.
type Notifier = sdnotify.Daemon

// Supervisor runs PostgreSQL in the role the role lines ask for.
type Supervisor struct {
	node   *pgdata.Node
	dyn    config.Dynamic
	log    zerolog.Logger
	clock  clock.Clock
	reader *rolepipe.Reader
	fencer *Fencer
	notify Notifier

	proc     *Proc
	primary  bool   // the running server may accept writes
	term     int64  // token the data was last primary under
	upstream string // leader followed
	crashed  bool
	st       state.Supervise
	stateMsg string

	mu        sync.Mutex // guards published and the writes of the state file
	published state.Supervise
	progress  cloneReport // the clone in course (progress.go)
	requests  chan request

	promoteSent       time.Time
	conn              *pgx.Conn
	notStreamingSince time.Time
	divergeChecked    time.Time // when divergedFrom last ran
	lastStart         time.Time // when the postmaster was last started
	nextStart         time.Time // no start before then (crash backoff)
	quickExits        int       // unexpected exits within a minute of their start

	syncWritten   string    // synchronous_standby_names last written
	syncWrittenAt time.Time // and when

	rewindFailures int        // pg_rewind runs failed in a row while the leader was up
	unrewound      *unrewound // set while waiting for an operator (rewindpolicy.go)
	slotsAbsent    map[string]time.Time
	lastStatus     pg.Status
	statusOK       bool

	live liveConfig // configuration followed while running (liveconfig.go)

	hooks   hooks         // callbacks, pre_promote and before_stop (callbacks.go)
	logical logicalKeeper // logical permanent slots (logical.go)
}

// NewSupervisor returns a supervisor of node reading lines from r.
func NewSupervisor(node *pgdata.Node, r *rolepipe.Reader, c clock.Clock, n Notifier, log zerolog.Logger) *Supervisor {
	if n == nil {
		n = &sdnotify.Notifier{}
	}
	s := &Supervisor{
		node: node, dyn: node.Cfg.Dynamic(), log: log, clock: c, reader: r,
		fencer: NewFencer(node.DataDir(), c, log), notify: n, slotsAbsent: map[string]time.Time{},
		requests: make(chan request),
	}
	s.hooks.timeout = DefaultCallbackTimeout
	s.initLive()
	return s
}

// OnLine must be called by the reader for every valid line, before the line
// is published: it extends the fencer's deadline without waiting for the
// main loop, so a busy loop never causes a spurious fence.
func (s *Supervisor) OnLine(l rolepipe.Line) {
	if l.Verb == rolepipe.Lead {
		s.fencer.Extend(l.Token, l.Until)
	}
}

// Run supervises until ctx is done, then stops PostgreSQL (fast shutdown)
// and returns. It blocks; the fencer runs on its own goroutine meanwhile.
func (s *Supervisor) Run(ctx context.Context) error {
	fctx, stopFencer := context.WithCancel(context.WithoutCancel(ctx))
	fencerDone := make(chan struct{})
	go func() { s.fencer.Run(fctx); close(fencerDone) }()
	defer func() { stopFencer(); <-fencerDone }()
	s.hooks.runner = callback.NewRunner(s.node.Owner, s.hooks.timeout, s.log.With().Str("part", "callbacks").Logger())
	defer s.hooks.runner.Close(shutdownCallbackWait)
	defer s.stopPrePromote()

	if err := s.clearOrphan(); err != nil {
		return err
	}
	if err := s.node.WritePgpass(); err != nil {
		return err
	}
	s.term = s.readTerm()
	stopControl, err := s.serveControl(ctx)
	if err != nil {
		return err
	}
	defer stopControl()
	s.setState(state.Stopped, "")
	_ = s.notify.Ready()

	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		line, seq, _ := s.reader.Latest()
		s.followConfig(ctx, line)
		now := s.clock.Now()
		s.followPrePromote(line, now)
		local := decide.Local{
			Running: s.proc != nil, Primary: s.primary, Term: s.term, Upstream: s.upstream,
			MayHaveDiverged: s.mayHaveDiverged(), Crashed: s.crashed,
		}
		s.prePromoteLocal(&local)
		act := decide.Supervise(local, line, seq > 0, now)
		if s.startBackoff(act) {
			act = decide.Nothing
		}
		act = s.holdUnrewound(ctx, act, line)
		if act != decide.Nothing {
			s.log.Info().Str("action", act.String()).Str("line", line.String()).Msg("acting")
			if err := s.do(ctx, act, line); err != nil {
				s.log.Error().Err(err).Str("action", act.String()).Msg("action failed")
				s.stateMsg = err.Error()
			}
		}
		s.observe(ctx, line)
		s.keepLogical(ctx, line)
		_ = s.notify.Watchdog()

		var exited <-chan struct{}
		if s.proc != nil {
			exited = s.proc.Done()
		}
		var promoting <-chan time.Time
		if s.st.State == state.Promoting {
			promoting = time.After(promoteRecheck)
		}
		select {
		case <-promoting:
		case <-ctx.Done():
			return s.shutdown()
		case <-s.reader.Notify():
		case <-exited:
			s.reap()
		case r := <-s.requests:
			r.reply <- s.reinit(ctx, r.opts)
		case <-s.prePromoteDone():
		case <-tick.C:
		}
	}
}

// clearOrphan kills every server process left on the data directory by a
// previous supervisor — the postmaster if it still runs, and backends that
// outlived it, which can still commit a statement they were running — before
// anything else happens.
func (s *Supervisor) clearOrphan() error {
	pids, err := ServerProcesses(s.node.DataDir(), 0)
	if err != nil {
		return fmt.Errorf("look for server processes left on %s: %w", s.node.DataDir(), err)
	}
	if len(pids) == 0 {
		return nil
	}
	s.log.Warn().Ints("pids", pids).Msg("killing server processes left over from a previous supervisor")
	if _, err := KillServer(s.node.DataDir(), 0, killWithin); err != nil {
		return fmt.Errorf("server processes left by a previous supervisor do not die: %w", err)
	}
	return nil
}

func (s *Supervisor) do(ctx context.Context, act decide.Action, line rolepipe.Line) error {
	switch act {
	case decide.Fence:
		if s.proc != nil {
			s.hooks.stopKind = callback.StopKilled
			if err := s.proc.Kill(); err != nil {
				s.log.Error().Err(err).Msg("fencing")
			}
			<-s.proc.Done()
			s.reap()
		}
		s.setState(state.Fenced, "validity ran out")
	case decide.StartPrimary:
		return s.start(line, true, nil)
	case decide.StartStandby:
		sb, err := s.standbyConf(line)
		if err != nil {
			return err
		}
		return s.start(line, false, sb)
	case decide.RewindAndStart:
		return s.rewindAndStart(ctx, line)
	case decide.Promote:
		return s.promote(ctx, line)
	case decide.RunPrePromote:
		return s.startPrePromote(line)
	case decide.AdoptTerm:
		s.term = line.Token
		s.markDiverge()
		s.fencer.Adopt(line.Token, line.Until)
		s.log.Info().Int64("token", line.Token).Msg("primary continues under a new leader token")
	case decide.Retarget:
		sb, err := s.standbyConf(line)
		if err != nil {
			return err
		}
		if err := pgdata.WriteConf(s.node.DataDir(), s.node.Owner, s.params(line), sb); err != nil {
			return err
		}
		s.upstream = line.Leader
		s.log.Info().Str("leader", line.Leader).Msg("following a new leader")
		return s.reload()
	case decide.Demote:
		s.setState(state.Demoting, "")
		s.hooks.stopKind = callback.StopDemote
		s.beforeStop()
		return s.stop(ctx, Fast, state.Stopped)
	case decide.StopServer:
		s.setState(state.Stopping, "")
		if line.Reason == rolepipe.ReasonUnresponsive && s.proc != nil {
			s.hooks.stopKind = callback.StopKilled
			// Its processes do not run (stopped, or stuck on a disk):
			// a shutdown request would wait for them. Kill them all.
			s.log.Warn().Int("pid", s.proc.PID()).Msg("killing the unresponsive server")
			if err := s.proc.Kill(); err != nil {
				s.log.Error().Err(err).Msg("killing the unresponsive server")
			}
			<-s.proc.Done()
			s.reapExpected()
			s.setState(state.Stopped, "killed: it answered no query")
			return nil
		}
		switch line.Reason {
		case "restart":
			s.hooks.stopKind = callback.StopRestart
		case "switchover":
			s.hooks.stopKind = callback.StopDemote
		default:
			s.hooks.stopKind = callback.StopPlanned
		}
		s.beforeStop()
		return s.stop(ctx, Fast, state.Stopped)
	}
	return nil
}

func (s *Supervisor) standbyConf(line rolepipe.Line) (*pgdata.Standby, error) {
	// postgresql.recovery_conf: the config key's (bootstrap.dcs's until
	// one is seen), overridden key by key by the node's YAML, as Patroni
	// merges them. A standby with or without a leader may fetch WAL from
	// an archive with it.
	rc := map[string]any{}
	add := func(m map[string]any) {
		for k, v := range m {
			rc[k] = v
		}
	}
	if s.live.raw != nil {
		if d, _, err := config.ParseDCSJSON(s.live.raw); err == nil && d.Postgres != nil {
			add(d.Postgres.RecoveryConf)
		}
	} else if p := s.node.Cfg.Bootstrap.DCS.Postgres; p != nil {
		add(p.RecoveryConf)
	}
	local := s.node.Cfg
	if s.live.local != nil {
		local = s.live.local
	}
	add(local.Postgres.RecoveryConf)
	if sc := s.dyn.StandbyCluster; line.Remote && sc != nil {
		// A standby leader recovers as standby_cluster says.
		for k, v := range map[string]string{"restore_command": sc.RestoreCommand,
			"archive_cleanup_command": sc.ArchiveCleanupCommand, "recovery_min_apply_delay": sc.RecoveryMinApplyDelay} {
			if v != "" {
				rc[k] = v
			}
		}
	}
	recovery := pgdata.StandbyRecovery(rc)
	if line.Verb != rolepipe.Follow || (line.Remote && line.ConnURL == "") {
		return &pgdata.Standby{Recovery: recovery}, nil
	}
	src, err := s.node.Remote(line.ConnURL, s.node.Cfg.Postgres.Authentication.Replication, false)
	if err != nil {
		return nil, err
	}
	if line.Remote {
		// The remote's slot is named by standby_cluster, whatever use_slots says.
		src.Database = ""
		return &pgdata.Standby{PrimaryConnInfo: src.ConnString(), SlotName: line.Slot, Recovery: recovery}, nil
	}
	if local.Tags.NoStream() {
		// Fed by restore_command alone: no connection, no slot.
		return &pgdata.Standby{Recovery: recovery}, nil
	}
	src.Database = ""
	sb := &pgdata.Standby{PrimaryConnInfo: src.ConnString(), Recovery: recovery}
	if s.dyn.UseSlots {
		sb.SlotName = line.Slot
	}
	return sb, nil
}

// start writes the configuration and starts the postmaster. A primary is
// armed in the fencer before it can accept a connection.
func (s *Supervisor) start(line rolepipe.Line, primary bool, sb *pgdata.Standby) error {
	dir := s.node.DataDir()
	if err := s.node.WritePgpass(); err != nil {
		return err
	}
	if hba := s.dyn.PgHBA; len(hba) > 0 {
		if err := pgdata.WriteHBA(dir, s.node.Owner, hba, s.node.Cfg.Postgres.Authentication.Superuser.Username); err != nil {
			return err
		}
	}
	if err := pgdata.WriteConf(dir, s.node.Owner, s.params(line), sb); err != nil {
		return err
	}
	_ = os.Remove(filepath.Join(dir, "promote"))
	if primary {
		s.term = line.Token
		s.markDiverge()
	}
	s.st.StopLSN = ""
	s.setState(state.Starting, "")
	p, err := Start(s.node.Owner, s.node.BinDir(), dir)
	if err != nil {
		s.setState(state.Crashed, err.Error())
		return err
	}
	if primary {
		s.fencer.Arm(p.PID(), line.Token, line.Until)
	}
	s.proc, s.primary, s.crashed = p, primary, false
	s.hooks.tracker.Started()
	s.lastStart = time.Now()
	s.upstream = ""
	if !primary && line.Verb == rolepipe.Follow {
		s.upstream = line.Leader
	}
	s.log.Info().Int("pid", p.PID()).Bool("primary", primary).Str("leader", s.upstream).Msg("postmaster started")
	return nil
}

// While promoting, the server is looked at every promoteRecheck and asked
// again to promote every promoteAgain until it left recovery.
const (
	promoteRecheck = 50 * time.Millisecond
	promoteAgain   = 150 * time.Millisecond
)

func (s *Supervisor) promote(ctx context.Context, line rolepipe.Line) error {
	s.setState(state.Promoting, "")
	if line.Sync != nil {
		// The first commit after promotion must already wait for the
		// standbys the line names: the setting is in force before the
		// server leaves recovery.
		if err := s.applyStandbyNames(ctx, line, 3*time.Second); err != nil {
			s.setState(state.Running, err.Error())
			return fmt.Errorf("promote: %w", err)
		}
	}
	s.fencer.Arm(s.proc.PID(), line.Token, line.Until)
	s.primary, s.term, s.upstream = true, line.Token, ""
	s.markDiverge()
	if err := s.proc.Promote(s.node.Owner); err != nil {
		return fmt.Errorf("promote: %w", err)
	}
	s.fire(s.hooks.tracker.Promoted())
	s.promoteSent = time.Now()
	s.log.Info().Int64("token", line.Token).Msg("promoting")
	return nil
}

func (s *Supervisor) rewindAndStart(ctx context.Context, line rolepipe.Line) error {
	s.setState(state.Rewinding, "")
	src, err := s.node.Remote(line.ConnURL, s.node.RewindCredentials(), false)
	if err != nil {
		return err
	}
	// pg_rewind trusts the source's control file for its timeline: make
	// sure the new leader has checkpointed since its promotion.
	su, err := s.node.Remote(line.ConnURL, s.node.Cfg.Postgres.Authentication.Superuser, false)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	err = s.node.EnsureSourceCheckpoint(cctx, su, s.standbySource(cctx, line))
	cancel()
	if err != nil {
		s.log.Info().Err(err).Msg("waiting for the leader to be ready for pg_rewind")
		time.Sleep(500 * time.Millisecond)
		return nil
	}
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Minute)
	var (
		res pgdata.RewindResult
		out string
	)
	err = s.keepalive(func() error {
		if e := s.node.RecoverCleanly(rctx); e != nil {
			return e
		}
		var e error
		// An interrupted pg_rewind can leave the data directory unusable:
		// let it finish even if we are asked to exit.
		res, out, e = s.node.Rewind(rctx, src, !s.dyn.UsePgRewind)
		return e
	})
	rcancel()
	if err != nil {
		if !s.leaderIsPrimary(line) {
			// The leader went away or is being promoted: not a failure
			// of pg_rewind on this data.
			s.log.Warn().Err(err).Str("leader", line.Leader).Msg("pg_rewind failed while the leader did not answer as a primary: trying again")
			time.Sleep(time.Second)
			return nil
		}
		s.rewindFailures++
		s.log.Warn().Err(err).Str("output", lastLine(out)).Int("failures", s.rewindFailures).Msg("pg_rewind failed")
		return s.applyRewindPolicy(ctx, line, s.rewindFailures)
	}
	s.rewindFailures = 0
	switch {
	case res == pgdata.NotNeeded:
		s.log.Info().Msg("no rewind required: the data had not diverged")
	case s.dyn.UsePgRewind:
		s.log.Info().Str("output", lastLine(out)).Msg("rewound with pg_rewind")
	default:
		return s.applyRewindPolicy(ctx, line, 0)
	}
	s.unrewound = nil
	s.clearDiverge()
	sb, err := s.standbyConf(line)
	if err != nil {
		return err
	}
	return s.start(line, false, sb)
}

// applyRewindPolicy carries out afterRewind's decision for a replica pg_rewind
// has not brought back (failures as afterRewind takes it).
func (s *Supervisor) applyRewindPolicy(ctx context.Context, line rolepipe.Line, failures int) error {
	out, why := afterRewind(failures, policyOf(s.dyn))
	switch out {
	case rewindReclone:
		return s.reclone(ctx, line, why)
	case rewindWait:
		s.waitForOperator(line, failures, why)
	default:
		time.Sleep(time.Second)
	}
	return nil
}

// reinit rebuilds this replica from the leader it is told to follow (or
// from o.Sources): a new copy is made beside the data directory, which it
// replaces once complete and proven to start.
func (s *Supervisor) reinit(ctx context.Context, o ReinitOptions) error {
	line, seq, _ := s.reader.Latest()
	if seq == 0 || line.Verb != rolepipe.Follow {
		return fmt.Errorf("only a replica following a leader can be reinitialized (the desired role is %q)", line.Verb)
	}
	if o.Reserve > 0 || len(o.Sources) > 0 {
		if err := s.node.CheckSpace(s.copySize(ctx, line), o.Reserve); err != nil {
			return err
		}
	}
	if s.proc != nil {
		s.setState(state.Stopping, "reinit")
		s.hooks.stopKind = callback.StopPlanned
		s.beforeStop()
		if err := s.stop(ctx, Fast, state.Stopped); err != nil {
			return err
		}
	}
	s.unrewound = nil
	return s.recloneWith(ctx, line, "reinit requested", o)
}

// copySize estimates the bytes of a new copy: the larger of the current data
// directory and the leader's databases.
func (s *Supervisor) copySize(ctx context.Context, line rolepipe.Line) int64 {
	need := pgdata.DirSize(s.node.DataDir())
	if src, err := s.node.Remote(line.ConnURL, s.node.Cfg.Postgres.Authentication.Replication, false); err == nil {
		if n, err := pgdata.SourceSize(ctx, src); err == nil {
			need = max(need, n)
		}
	}
	return need
}

// reclone is the last resort: a new copy of the leader is made beside the
// data directory and replaces it, which is kept aside (never deleted).
func (s *Supervisor) reclone(ctx context.Context, line rolepipe.Line, why string) error {
	return s.recloneWith(ctx, line, why, ReinitOptions{})
}

func (s *Supervisor) recloneWith(ctx context.Context, line rolepipe.Line, why string, o ReinitOptions) error {
	s.setState(state.Cloning, why)
	s.log.Warn().Str("reason", why).Msg("re-cloning from the leader")
	sources := o.Sources
	if len(sources) == 0 {
		sources = []pgdata.Source{{Name: line.Leader, ConnURL: line.ConnURL}}
	}
	keep := 1
	if o.Keep != nil {
		keep = *o.Keep
	}
	sb, err := s.standbyConf(line)
	if err != nil {
		return err
	}
	trial := *sb
	trial.SlotName = ""
	sysid := ""
	if st, cd, _ := s.node.Inspect(ctx); st == pgdata.Valid {
		sysid = strconv.FormatUint(cd.SystemIdentifier, 10)
	}
	var res pgdata.Created
	err = s.keepalive(func() error {
		var e error
		res, e = s.node.CreateReplica(ctx, pgdata.CreateOptions{
			Sources:  sources,
			SystemID: sysid,
			Keep:     keep,
			Check: func(ctx context.Context, dir string) error {
				return s.node.TrialStart(ctx, dir, s.params(line), &trial, time.Minute)
			},
			Progress: s.cloneProgress,
			Log:      s.log,
		})
		return e
	})
	if err != nil {
		return err
	}
	s.log.Info().Str("method", res.Method).Str("source", res.Source).Str("old_data", res.Kept).Msg("re-cloned; the previous data directory was kept")
	s.clearDiverge()
	s.rewindFailures = 0
	return s.start(line, false, sb)
}

func (s *Supervisor) stop(ctx context.Context, mode syscall.Signal, final string) error {
	if s.proc == nil {
		return nil
	}
	// A stop, once begun, is finished even if we are asked to exit
	// meanwhile: a clean shutdown is what hands the last WAL to the
	// replicas.
	escalate := 30 * time.Second
	if t := s.node.Cfg.Postgres.PgCtlTimeout; t != nil && t.D() > 0 {
		escalate = t.D() // pg_ctl_timeout
	}
	if d := s.dyn.PrimaryStopTimeout; d > 0 && s.primary {
		escalate = d // primary_stop_timeout
	}
	err := s.proc.Stop(context.WithoutCancel(ctx), mode, escalate)
	if !s.proc.Exited() {
		return fmt.Errorf("postmaster %d did not stop: %w", s.proc.PID(), err)
	}
	s.reapExpected()
	cd, cerr := pg.ReadControlData(ctx, s.node.Owner, s.node.BinDir(), s.node.DataDir())
	if cerr == nil {
		s.st.StopLSN = cd.CheckpointLSN.String()
	}
	s.setState(final, "")
	return err
}

// startBackoff reports whether a start must wait: after a postmaster that
// exited unexpectedly within a minute of its start, starts are spaced
// 100 ms, 200 ms, … up to 5 s apart, so a server that cannot start (bad
// configuration, port in use) is not restarted twenty times a second. The
// first restart after a crash is immediate.
func (s *Supervisor) startBackoff(act decide.Action) bool {
	switch act {
	case decide.StartPrimary, decide.StartStandby, decide.RewindAndStart:
	default:
		return false
	}
	return time.Now().Before(s.nextStart)
}

// noteExit schedules the next start after an unexpected exit.
func (s *Supervisor) noteExit() {
	if time.Since(s.lastStart) > time.Minute {
		s.quickExits = 0
	}
	if s.quickExits > 0 {
		d := min(100*time.Millisecond<<min(s.quickExits-1, 6), 5*time.Second)
		s.nextStart = time.Now().Add(d)
	}
	s.quickExits++
}

// reap handles the postmaster's exit.
func (s *Supervisor) reap() {
	if s.proc == nil {
		return
	}
	p := s.proc
	// Backends that outlived their postmaster keep running their statement
	// and can commit it: none may survive, whatever the reason of the exit.
	if n, err := KillServer(s.node.DataDir(), 0, killWithin); err != nil || n > 0 {
		ev := s.log.Warn()
		if err != nil {
			ev = s.log.Error().Err(err)
		}
		ev.Int("killed", n).Msg("killed server processes that outlived the postmaster")
	}
	expected := p.Expected()
	role, kind := s.role(), s.hooks.stopKind
	s.hooks.stopKind = callback.StopPlanned
	if s.fencer.FiredFor(p.PID()) {
		expected, kind = true, callback.StopKilled
		s.setState(state.Fenced, "validity ran out")
	}
	if expected {
		s.fire(s.hooks.tracker.Stopped(kind, role))
	} else {
		s.hooks.tracker.Crashed(role)
	}
	s.fencer.Disarm()
	s.proc, s.primary, s.upstream = nil, false, ""
	s.statusOK = false
	if s.conn != nil {
		_ = s.conn.Close(context.Background())
		s.conn = nil
	}
	if !expected {
		s.noteExit()
		s.crashed = true
		s.log.Error().Int("pid", p.PID()).AnErr("exit", p.Err()).Msg("postmaster exited unexpectedly")
		s.setState(state.Crashed, fmt.Sprint(p.Err()))
	}
}

func (s *Supervisor) reapExpected() {
	if s.proc != nil && s.proc.Exited() {
		s.proc.stopping.Store(true)
		s.reap()
	}
}

func (s *Supervisor) shutdown() error {
	_ = s.notify.Stopping()
	s.setState(state.Stopping, "")
	s.stopPrePromote()
	if s.proc != nil {
		s.hooks.stopKind = callback.StopPlanned
		s.beforeStop()
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		if err := s.proc.Stop(ctx, Fast, 60*time.Second); err != nil {
			s.log.Error().Err(err).Msg("stopping postgres")
		}
		s.reapExpected()
		if cd, err := pg.ReadControlData(ctx, s.node.Owner, s.node.BinDir(), s.node.DataDir()); err == nil {
			s.st.StopLSN = cd.CheckpointLSN.String()
		}
	}
	s.setState(state.Stopped, "")
	return nil
}

// keepalive runs a long operation (pg_rewind, a clone) while pinging the
// watchdog, so systemd does not take a working supervisor for a hung one.
// The pings stop when op returns.
func (s *Supervisor) keepalive(op func() error) error {
	every := s.notify.WatchdogInterval()
	if every <= 0 {
		return op()
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = s.notify.Watchdog()
			}
		}
	}()
	err := op()
	close(done)
	wg.Wait()
	return err
}

// observe queries the running server, finishes a promotion, keeps the
// leader's replication slots, and publishes the state file.
func (s *Supervisor) observe(ctx context.Context, line rolepipe.Line) {
	if s.proc == nil {
		s.publish()
		return
	}
	qctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if s.conn == nil || s.conn.IsClosed() {
		// A slow query is cancelled, not disconnected: with every
		// connection slot taken by an application, a dropped connection
		// could not be opened again.
		p := s.node.Local(time.Second)
		p.CancelGrace = time.Second
		conn, err := pg.Connect(qctx, p)
		if err != nil {
			s.statusOK = false
			s.publish()
			return
		}
		s.conn = conn
	}
	conn := s.conn
	st, err := pg.QueryStatus(qctx, conn)
	if err != nil {
		if conn.IsClosed() {
			s.conn = nil
		}
		s.statusOK = false
		s.publish()
		return
	}
	s.lastStatus, s.statusOK = st, true
	switch {
	case s.primary && !st.InRecovery:
		if s.st.State == state.Promoting {
			s.checkpointAfterPromote(ctx)
		}
		if s.st.State != state.Running {
			s.setState(state.Running, "")
		}
		if line.Verb == rolepipe.Lead && s.dyn.UseSlots {
			s.keepSlots(qctx, conn, line)
		}
		if line.Verb == rolepipe.Lead {
			s.keepStandbyNames(qctx, conn, line)
		}
	case s.primary && st.InRecovery:
		// Promotion in progress. A request sent before the startup
		// process ran is not forwarded to it, and one that arrives while
		// the startup process restarts its WAL receiver is noticed only
		// after wal_retrieve_retry_interval: ask again (the signal wakes
		// that wait; PostgreSQL removes a leftover promote file at start).
		if time.Since(s.promoteSent) > promoteAgain {
			s.log.Info().Msg("still in recovery: asking again to promote")
			if err := s.proc.Promote(s.node.Owner); err != nil {
				s.log.Warn().Err(err).Msg("promote")
			}
			s.promoteSent = time.Now()
		}
	case !s.primary && st.InRecovery:
		if s.st.State != state.Running {
			s.setState(state.Running, "")
		}
		if line.Verb == rolepipe.Follow && s.dyn.UseSlots {
			s.keepSlots(qctx, conn, line)
		}
		s.watchStreaming(line, st)
	case !s.primary && !st.InRecovery:
		// A standby that is not in recovery was promoted behind our back:
		// it can accept writes. Fence it unless we hold validity.
		if !line.Valid(s.clock.Now()) {
			s.log.Error().Msg("server left recovery without a lead: fencing")
			s.hooks.stopKind = callback.StopKilled
			if err := s.proc.Kill(); err != nil {
				s.log.Error().Err(err).Msg("fencing")
			}
		} else {
			s.fencer.Arm(s.proc.PID(), line.Token, line.Until)
			s.primary, s.term = true, line.Token
			s.markDiverge()
			s.fire(s.hooks.tracker.Promoted())
		}
	}
	s.answered(line)
	s.publish()
}

// params are the server parameters for line: the configuration's, with
// synchronous_standby_names as a lead line in synchronous mode sets it.
func (s *Supervisor) params(line rolepipe.Line) map[string]string {
	p := s.node.Parameters(s.dyn)
	if line.Verb == rolepipe.Lead && line.Sync != nil {
		p[standbyNamesParam] = syncrep.NewStandbyNames(line.Sync.Quorum, line.Sync.Num, line.Sync.Names).String()
	}
	return p
}

const standbyNamesParam = "synchronous_standby_names"

// keepStandbyNames makes the primary's synchronous_standby_names what the
// lead line asks for (or the configuration's when the line carries none):
// postgresql.conf is rewritten and reloaded when the running value
// differs. pg-lockd sees the new value in its own session and publishes the
// sync key only after that.
func (s *Supervisor) keepStandbyNames(ctx context.Context, conn *pgx.Conn, line rolepipe.Line) {
	want := s.params(line)[standbyNamesParam]
	var cur string
	if err := conn.QueryRow(ctx, "SELECT current_setting('synchronous_standby_names')").Scan(&cur); err != nil || cur == want {
		return
	}
	if want == s.syncWritten && time.Since(s.syncWrittenAt) < 2*time.Second {
		return // reloaded just now; the session sees it at its next query
	}
	if err := s.writeStandbyNames(want); err != nil {
		s.log.Warn().Err(err).Msg("setting synchronous_standby_names")
	}
}

func (s *Supervisor) writeStandbyNames(want string) error {
	// Only this line changes: a server about to be promoted keeps its
	// recovery settings and standby.signal, which the promotion removes.
	if err := pgdata.SetParameter(s.node.DataDir(), s.node.Owner, standbyNamesParam, want); err != nil {
		return err
	}
	if err := s.reload(); err != nil {
		return err
	}
	s.syncWritten, s.syncWrittenAt = want, time.Now()
	s.log.Info().Str(standbyNamesParam, want).Msg("synchronous_standby_names set")
	return nil
}

// applyStandbyNames writes the lead line's synchronous_standby_names and
// waits, up to within, until a session of the server uses it: the server
// reloads its configuration before it signals its sessions.
func (s *Supervisor) applyStandbyNames(ctx context.Context, line rolepipe.Line, within time.Duration) error {
	want := s.params(line)[standbyNamesParam]
	if err := s.writeStandbyNames(want); err != nil {
		return err
	}
	deadline := time.Now().Add(within)
	for {
		if s.conn == nil || s.conn.IsClosed() {
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			c, err := pg.Connect(cctx, s.node.Local(time.Second))
			cancel()
			if err == nil {
				s.conn = c
			}
		}
		if s.conn != nil {
			qctx, cancel := context.WithTimeout(ctx, time.Second)
			var cur string
			err := s.conn.QueryRow(qctx, "SELECT current_setting('synchronous_standby_names')").Scan(&cur)
			cancel()
			if err == nil && cur == want {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("synchronous_standby_names %q not in force after %s; not promoting", want, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkpointAfterPromote starts a checkpoint on the new primary in the
// background, as Patroni does: until one completes, the control file still
// names the old timeline and pg_rewind against this server would be fooled.
func (s *Supervisor) checkpointAfterPromote(ctx context.Context) {
	p := s.node.Local(5 * time.Second)
	log := s.log
	go func() {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		conn, err := pg.Connect(cctx, p)
		if err != nil {
			log.Warn().Err(err).Msg("checkpoint after promotion")
			return
		}
		defer conn.Close(context.WithoutCancel(cctx))
		if err := pg.Checkpoint(cctx, conn); err != nil {
			log.Warn().Err(err).Msg("checkpoint after promotion")
			return
		}
		log.Info().Msg("checkpoint after promotion done")
	}()
}

// notStreamingFor is how long a replica may fail to stream from the leader
// it follows before it is suspected of having diverged (it received WAL the
// new leader never had) and is checked with pg_rewind. divergeCheckAfter is
// how long it may fail to stream before its timeline and position are
// compared with the leader's history, which proves a divergence at once.
const (
	notStreamingFor   = 30 * time.Second
	divergeCheckAfter = 2 * time.Second
)

func (s *Supervisor) watchStreaming(line rolepipe.Line, st pg.Status) {
	if line.Verb != rolepipe.Follow || s.upstream != line.Leader || st.ReceiverStatus == "streaming" || s.noStream() {
		s.notStreamingSince, s.divergeChecked = time.Time{}, time.Time{}
		return
	}
	if s.notStreamingSince.IsZero() {
		s.notStreamingSince = time.Now()
		return
	}
	if s.mayHaveDiverged() {
		return
	}
	if time.Since(s.notStreamingSince) > divergeCheckAfter && time.Since(s.divergeChecked) > divergeCheckAfter {
		s.divergeChecked = time.Now()
		if why := s.divergedFrom(line, st); why != "" {
			s.log.Warn().Str("leader", line.Leader).Str("why", why).
				Msg("this replica's WAL diverged from the leader's timeline: rewinding")
			s.markDiverge()
			s.notStreamingSince = time.Time{}
			return
		}
	}
	if time.Since(s.notStreamingSince) > notStreamingFor && s.reachable(line.ConnURL) {
		s.log.Warn().Str("leader", line.Leader).Str("receiver", st.ReceiverStatus).
			Msg("not streaming from the leader for a while: checking for divergence with pg_rewind")
		s.markDiverge()
		s.notStreamingSince = time.Time{}
	}
}

// divergedFrom compares this standby's timeline and position (st) with the
// history of its upstream's timeline, as Patroni does before following: the
// standby diverged when it is on a timeline the upstream's history does not
// contain, or went past the point where that history left it. The upstream
// is the leader, or a standby it cascades from (a standby leader, the member
// replicatefrom names), whose timeline is the one it replays: a cascading
// replica that received WAL a promotion discarded is rewound like the
// others, not left until the 30 s fallback. It returns why, or "" when it
// did not diverge or the upstream could not be asked. The standby's timeline is the one it replays (IDENTIFY_SYSTEM over
// a local replication connection); when that is refused, the one it
// receives or its last checkpoint's (st): an older timeline than the one it
// replays can only make the answer "diverged", which pg_rewind then checks
// exactly.
func (s *Supervisor) divergedFrom(line rolepipe.Line, st pg.Status) string {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	tli, pos := st.Timeline, st.Position()
	if sys, err := pg.IdentifySystem(ctx, s.node.Local(time.Second)); err == nil {
		tli, pos = sys.Timeline, max(pos, sys.XLogPos)
	} else {
		s.log.Debug().Err(err).Msg("IDENTIFY_SYSTEM on the local standby")
	}
	if tli == 0 {
		return ""
	}
	// The upstream's timeline over a replication connection: a primary's,
	// or the one a cascading upstream (a standby: a standby leader, a
	// member replicatefrom names) replays, which the SQL functions do not
	// tell.
	rp, err := s.node.Remote(line.ConnURL, s.node.Cfg.Postgres.Authentication.Replication, true)
	if err != nil {
		return ""
	}
	up, err := pg.IdentifySystem(ctx, rp)
	if err != nil {
		s.log.Debug().Err(err).Msg("IDENTIFY_SYSTEM on the upstream")
		return ""
	}
	switch {
	case up.Timeline == tli:
		return ""
	case up.Timeline < tli:
		if !s.upstreamPrimary(ctx, line) {
			return "" // a standby upstream not yet on our timeline: it catches up
		}
		return fmt.Sprintf("on timeline %d, the leader on %d", tli, up.Timeline)
	}
	hist, err := pg.TimelineHistory(ctx, rp, up.Timeline)
	if err != nil {
		s.log.Debug().Err(err).Msg("reading the leader's timeline history")
		return ""
	}
	for _, h := range hist {
		if h.Timeline == tli {
			if pos > h.SwitchLSN {
				return fmt.Sprintf("at %s on timeline %d, which the upstream's history ends at %s", pos, tli, h.SwitchLSN)
			}
			return ""
		}
	}
	return fmt.Sprintf("timeline %d is not in the history of the upstream's timeline %d", tli, up.Timeline)
}

// standbySource says whether the line's upstream is a standby that already
// replays a later timeline than this stopped data directory's — a cascading
// upstream (a standby leader, the member replicatefrom names) that followed
// a promotion, which pg_rewind (PostgreSQL 14 and later) takes as its
// source. An upstream still on this timeline may be a leader being
// promoted: that one is waited for.
func (s *Supervisor) standbySource(ctx context.Context, line rolepipe.Line) bool {
	rp, err := s.node.Remote(line.ConnURL, s.node.Cfg.Postgres.Authentication.Replication, true)
	if err != nil {
		return false
	}
	up, err := pg.IdentifySystem(ctx, rp)
	if err != nil {
		return false
	}
	cd, err := pg.ReadControlData(ctx, s.node.Owner, s.node.BinDir(), s.node.DataDir())
	if err != nil {
		return false
	}
	return up.Timeline > max(cd.TimelineID, cd.MinRecoveryEndTimeline)
}

// upstreamPrimary says whether the line's upstream answers as a primary.
func (s *Supervisor) upstreamPrimary(ctx context.Context, line rolepipe.Line) bool {
	p, err := s.node.Remote(line.ConnURL, s.node.Cfg.Postgres.Authentication.Superuser, false)
	if err != nil {
		return false
	}
	conn, err := pg.Connect(ctx, p)
	if err != nil {
		return false
	}
	st, err := pg.QueryStatus(ctx, conn)
	_ = conn.Close(ctx)
	return err == nil && !st.InRecovery
}

// noStream reports the nostream tag in force: this replica never streams,
// so not streaming says nothing about a divergence.
func (s *Supervisor) noStream() bool {
	if s.live.local != nil {
		return s.live.local.Tags.NoStream()
	}
	return s.node.Cfg.Tags.NoStream()
}

// reachable reports whether the leader at connURL answers: a replica that
// cannot reach its leader is not stopped for a divergence check it could
// not run anyway.
func (s *Supervisor) reachable(connURL string) bool {
	p, err := s.node.Remote(connURL, s.node.Cfg.Postgres.Authentication.Superuser, false)
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, err := pg.Connect(ctx, p)
	if err != nil {
		return false
	}
	_ = conn.Close(ctx)
	return true
}

// keepSlots creates the physical slots the line names (on a leader, those
// its followers stream from; on a replica, those of members cascading from
// it and copies for the others), advances the inactive ones to the
// positions the line gives, and drops those it names in drop= (the slots of
// members gone for member_slots_ttl, or that need none here), if physical
// and inactive. No other slot is ever dropped or moved: not an operator's,
// not a logical one, not one still in use.
func (s *Supervisor) keepSlots(ctx context.Context, conn *pgx.Conn, line rolepipe.Line) {
	if len(line.Slots) > 0 {
		if err := pg.EnsurePhysicalSlots(ctx, conn, line.Slots); err != nil {
			s.log.Warn().Err(err).Msg("creating replication slots")
		}
	}
	if len(line.Advance) > 0 {
		if _, err := pg.AdvancePhysicalSlots(ctx, conn, line.Advance); err != nil {
			s.log.Warn().Err(err).Msg("advancing replication slots")
		}
	}
	if drop := slices.DeleteFunc(slices.Clone(line.Drop), func(n string) bool { return slices.Contains(line.Slots, n) }); len(drop) > 0 {
		dropped, err := pg.DropPhysicalSlots(ctx, conn, drop)
		for _, name := range dropped {
			s.log.Info().Str("slot", name).Msg("dropped a member's replication slot: the member is gone for member_slots_ttl or uses none here")
		}
		if err != nil {
			s.log.Warn().Err(err).Msg("dropping replication slots")
		}
	}
}

func (s *Supervisor) setState(st, msg string) {
	if s.st.State != st {
		s.st.Since = time.Now()
		s.log.Info().Str("state", st).Str("detail", msg).Msg("state")
		role := "replica"
		if s.primary {
			role = "primary"
		}
		if s.proc == nil {
			role = "stopped"
		}
		_ = s.notify.Status(fmt.Sprintf("%s, %s", st, role))
	}
	s.st.State = st
	s.st.Message = msg
	s.publish()
}

func (s *Supervisor) publish() {
	line, _, _ := s.reader.Latest()
	s.st.Role = ""
	s.st.PID = 0
	if s.proc != nil {
		s.st.PID = s.proc.PID()
		s.st.Role = "replica"
		if s.primary {
			s.st.Role = "primary"
		}
	}
	s.st.Desired = string(line.Verb)
	s.st.Leader = s.upstream
	s.st.Token = s.term
	s.st.Paused = line.Paused
	s.st.PrePromoteRefused = s.hooks.refused
	s.st.Deadline = 0
	if d, armed := s.fencer.Deadline(); armed {
		s.st.Deadline = d
	}
	s.st.Progress = s.progress.current(s.st.State)
	s.st.Accepts = rolepipe.NewerKeys
	s.st.Updated = s.clock.Now()
	// Under mu, so that a progress report (cloneProgress) never overwrites
	// a newer state.
	s.mu.Lock()
	defer s.mu.Unlock()
	s.published = s.st
	if err := state.Write(s.node.RuntimeDir, state.SuperviseFile, s.st); err != nil {
		s.log.Warn().Err(err).Msg("writing state file")
	}
}

func (s *Supervisor) mayHaveDiverged() bool {
	_, err := os.Stat(filepath.Join(s.node.DataDir(), pgdata.WasPrimaryFile))
	return err == nil
}

// markDiverge records, in the data directory, that PostgreSQL runs as a
// primary under token s.term.
func (s *Supervisor) markDiverge() {
	p := filepath.Join(s.node.DataDir(), pgdata.WasPrimaryFile)
	if err := os.WriteFile(p, []byte(strconv.FormatInt(s.term, 10)+"\n"), 0o600); err != nil {
		s.log.Warn().Err(err).Msg("writing the was-primary marker")
	}
}

func (s *Supervisor) clearDiverge() {
	if err := os.Remove(filepath.Join(s.node.DataDir(), pgdata.WasPrimaryFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Warn().Err(err).Msg("removing the was-primary marker")
	}
	s.term = 0
}

// readTerm returns the token the data directory was last primary under (0:
// it has followed a leader since, or never led), so that a restarted
// supervisor restarts a crashed primary in place only under that token.
func (s *Supervisor) readTerm() int64 {
	data, err := os.ReadFile(filepath.Join(s.node.DataDir(), pgdata.WasPrimaryFile))
	if err != nil {
		return 0
	}
	t, _ := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	return t
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
