package postmaster

import (
	"context"
	"errors"
	"time"

	"github.com/pg-ha/pg-ha/lib/callback"
	"github.com/pg-ha/pg-ha/lib/clock"
	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/decide"
	"github.com/pg-ha/pg-ha/lib/rolepipe"
)

// DefaultCallbackTimeout bounds a callback and before_stop (Patroni bounds
// neither): a hung script must not keep running until the next transition.
const DefaultCallbackTimeout = 60 * time.Second

// shutdownCallbackWait is how long pg-supervise, told to exit, lets the
// last callbacks (on_stop) finish before it kills them.
const shutdownCallbackWait = 5 * time.Second

// stopReserve is the part of a primary's validity before_stop leaves for
// the stop itself: a stop that ends after the fence deadline is a fence,
// and the replicas miss the shutdown checkpoint.
const stopReserve = 2 * time.Second

// hooks is the supervisor's part of callbacks and hooks.
type hooks struct {
	tracker  callback.Tracker
	runner   *callback.Runner
	timeout  time.Duration
	stopKind callback.StopKind // why the server being stopped stops

	// pre_promote: the run under way, and the tokens it allowed and
	// refused (decide.Local).
	pre            *preRun
	preOK, refused int64
}

// preRun is one run of pre_promote in the background.
type preRun struct {
	token  int64
	cancel context.CancelFunc
	done   chan struct{}
	err    error
	killed bool // cancelled because the line no longer asks for it
}

// SetCallbackTimeout sets how long a callback or before_stop may run before
// it is killed (DefaultCallbackTimeout if never set). Call it before Run.
func (s *Supervisor) SetCallbackTimeout(d time.Duration) {
	s.hooks.timeout = d
}

func (s *Supervisor) scripts() *config.Postgres { return &s.live.local.Postgres }

// fire runs the callback f names, if postgresql.callbacks has one, in the
// background: "<script> <action> <role> <scope>".
func (s *Supervisor) fire(f callback.Fire) {
	if f.Action == "" || s.hooks.runner == nil {
		return
	}
	cmd := s.scripts().Callbacks[string(f.Action)]
	if cmd == "" {
		return
	}
	argv, err := config.SplitCommand(cmd)
	if err != nil {
		s.log.Error().Err(err).Str("callback", string(f.Action)).Msg("callback not run")
		return
	}
	s.hooks.runner.Fire(f.Action, append(argv, string(f.Action), string(f.Role), s.node.Cfg.Scope))
}

// role is what the running server is, for callbacks.
func (s *Supervisor) role() callback.Role { return callback.RoleOf(s.primary) }

// reload has PostgreSQL reread its configuration and fires on_reload.
func (s *Supervisor) reload() error {
	if err := s.proc.Reload(); err != nil {
		return err
	}
	s.fire(s.hooks.tracker.Reloaded(s.role()))
	return nil
}

// answered fires the start's callback once the server answers (see
// callback.Tracker.Answered): held while a standby waits to be promoted
// under line.
func (s *Supervisor) answered(line rolepipe.Line) {
	hold := !s.primary && line.Verb == rolepipe.Lead && line.Token != s.hooks.refused
	s.fire(s.hooks.tracker.Answered(s.role(), hold))
}

// beforeStop runs before_stop before a planned stop of a running server,
// synchronously as Patroni does, but bounded: by the callback timeout and,
// for a primary, by its fence deadline less stopReserve. The fencer runs
// on its own meanwhile, so before_stop never delays a fence; a primary
// whose deadline is too close is stopped without it.
func (s *Supervisor) beforeStop() {
	cmd := s.scripts().BeforeStop
	if cmd == "" || s.proc == nil || s.proc.Exited() {
		return
	}
	argv, err := config.SplitCommand(cmd)
	if err != nil {
		s.log.Error().Err(err).Msg("before_stop not run")
		return
	}
	within := s.hooks.timeout
	if d, armed := s.fencer.Deadline(); armed {
		within = min(within, d.Sub(s.clock.Now())-stopReserve)
	}
	log := s.log.With().Strs("before_stop", argv).Logger()
	if within <= 0 {
		log.Warn().Msg("before_stop not run: the fence deadline is too close")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	start := time.Now()
	log.Info().Dur("within", within).Msg("running before_stop")
	err = s.keepalive(func() error { return callback.Run(ctx, s.node.Owner, argv) })
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		log.Warn().Dur("within", within).Msg("before_stop killed: it ran too long; stopping PostgreSQL anyway")
	case err != nil:
		log.Warn().Err(err).Msg("before_stop failed; stopping PostgreSQL anyway")
	default:
		log.Info().Dur("took", time.Since(start)).Msg("before_stop done")
	}
}

// prePromoteLocal fills the pre_promote part of what decide.Supervise
// needs.
func (s *Supervisor) prePromoteLocal(l *decide.Local) {
	l.PrePromote = s.scripts().PrePromote != ""
	l.PrePromoteOK, l.PrePromoteRefused = s.hooks.preOK, s.hooks.refused
	if r := s.hooks.pre; r != nil {
		l.PrePromoteRunning = r.token
	}
}

// startPrePromote runs pre_promote in the background for line's token,
// bounded by that line's validity: a script still running when the lease
// it started under would have run out is killed, and that refuses the
// promotion, so a hung script costs one lease, not the cluster's primary.
func (s *Supervisor) startPrePromote(line rolepipe.Line) error {
	argv, err := config.SplitCommand(s.scripts().PrePromote)
	if err != nil {
		s.hooks.refused = line.Token
		s.publish()
		return err
	}
	within := line.Until.Sub(s.clock.Now())
	ctx, cancel := context.WithTimeout(context.Background(), within)
	r := &preRun{token: line.Token, cancel: cancel, done: make(chan struct{})}
	s.hooks.pre = r
	s.log.Info().Strs("pre_promote", argv).Int64("token", line.Token).Dur("within", within).Msg("running pre_promote before promoting")
	go func() {
		r.err = callback.Run(ctx, s.node.Owner, argv)
		close(r.done)
	}()
	return nil
}

// prePromoteDone returns a channel closed when the running pre_promote
// ends, nil if none runs.
func (s *Supervisor) prePromoteDone() <-chan struct{} {
	if s.hooks.pre == nil {
		return nil
	}
	return s.hooks.pre.done
}

// followPrePromote kills a pre_promote the newest line no longer asks for
// and takes the result of one that ended: allowed, the next decision
// promotes; refused (non-zero exit, timeout, not runnable), this node never
// promotes under that token and publishes the refusal, on which pg-lockd
// gives the leader key up.
func (s *Supervisor) followPrePromote(line rolepipe.Line, now clock.Time) {
	r := s.hooks.pre
	if r == nil {
		return
	}
	select {
	case <-r.done:
	default:
		if decide.KeepPrePromote(r.token, line, now) {
			return
		}
		s.log.Info().Int64("token", r.token).Str("line", line.String()).Msg("killing pre_promote: this node is no longer to lead under its token")
		r.killed = true
		r.cancel()
		<-r.done
	}
	r.cancel()
	s.hooks.pre = nil
	switch {
	case r.killed:
	case r.err == nil:
		s.log.Info().Int64("token", r.token).Msg("pre_promote allowed the promotion")
		s.hooks.preOK = r.token
	default:
		s.log.Warn().Err(r.err).Int64("token", r.token).Msg("pre_promote refused the promotion: not promoting; the leader key is given up")
		s.hooks.refused = r.token
		s.publish()
	}
}

// stopPrePromote kills a running pre_promote (pg-supervise is exiting).
func (s *Supervisor) stopPrePromote() {
	if r := s.hooks.pre; r != nil {
		r.cancel()
		<-r.done
		s.hooks.pre = nil
	}
}
