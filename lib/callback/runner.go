package callback

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/pg-ha/pg-ha/lib/pg"
)

// Runner runs callbacks in the background, as Patroni's callback executor
// does: one at a time; a callback fired while an older one still runs
// kills the older one (its whole process group) and runs once it is gone;
// a callback fired while another waits to start replaces it. on_reload has
// a slot of its own, so a reload never kills a role change. Every callback
// is killed after the timeout. Fire never blocks.
type Runner struct {
	owner   pg.Owner
	log     zerolog.Logger
	mu      sync.Mutex
	timeout time.Duration
	closing bool
	main    *slot
	reload  *slot
	wg      sync.WaitGroup
}

// slot runs one callback at a time.
type slot struct {
	r       *Runner
	mu      sync.Mutex
	pending []string           // argv waiting to start, nil: none
	cancel  context.CancelFunc // of the running callback, nil: none
	running []string
	wake    chan struct{}
	stop    chan struct{} // closed by Close: exit once idle
	kill    chan struct{} // closed by Close when the wait is over
}

// NewRunner starts a runner whose callbacks run as o and are killed after
// timeout. Close must be called to stop its goroutines.
func NewRunner(o pg.Owner, timeout time.Duration, log zerolog.Logger) *Runner {
	r := &Runner{owner: o, timeout: timeout, log: log}
	stop, kill := make(chan struct{}), make(chan struct{})
	r.main = &slot{r: r, wake: make(chan struct{}, 1), stop: stop, kill: kill}
	r.reload = &slot{r: r, wake: make(chan struct{}, 1), stop: stop, kill: kill}
	r.wg.Add(2)
	go r.main.run()
	go r.reload.run()
	return r
}

// SetTimeout changes the timeout of the callbacks started from now on.
func (r *Runner) SetTimeout(d time.Duration) {
	r.mu.Lock()
	r.timeout = d
	r.mu.Unlock()
}

func (r *Runner) getTimeout() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.timeout
}

// Fire queues argv, a callback of action a, and returns at once. A
// still-running callback of the same slot is killed first. After Close it
// does nothing.
func (r *Runner) Fire(a Action, argv []string) {
	r.mu.Lock()
	closing := r.closing
	r.mu.Unlock()
	if closing || len(argv) == 0 {
		return
	}
	s := r.main
	if a == OnReload {
		s = r.reload
	}
	s.mu.Lock()
	if s.pending != nil {
		r.log.Info().Strs("callback", s.pending).Msg("callback replaced by a newer one before it started")
	}
	s.pending = argv
	if s.cancel != nil {
		r.log.Warn().Strs("callback", s.running).Strs("newer", argv).Msg("killing a callback still running: a newer one is due")
		s.cancel()
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Close stops taking callbacks, lets those queued or running finish for up
// to wait, then kills what still runs. It returns once every callback it
// started has exited.
func (r *Runner) Close(wait time.Duration) {
	r.mu.Lock()
	if r.closing {
		r.mu.Unlock()
		return
	}
	r.closing = true
	r.mu.Unlock()
	close(r.main.stop)
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-done:
		return
	case <-t.C:
	}
	close(r.main.kill)
	for _, s := range []*slot{r.main, r.reload} {
		s.mu.Lock()
		if s.cancel != nil {
			r.log.Warn().Strs("callback", s.running).Msg("killing a callback still running at exit")
			s.cancel()
		}
		s.pending = nil
		s.mu.Unlock()
	}
	<-done
}

func (s *slot) run() {
	defer s.r.wg.Done()
	for {
		s.mu.Lock()
		argv := s.pending
		s.pending = nil
		s.mu.Unlock()
		if argv == nil {
			select {
			case <-s.wake:
				continue
			case <-s.stop:
				s.mu.Lock()
				idle := s.pending == nil
				s.mu.Unlock()
				if idle {
					return
				}
				continue
			}
		}
		select {
		case <-s.kill:
			return
		default:
		}
		s.exec(argv)
	}
}

// exec runs one callback to its end, its timeout, or its cancellation.
func (s *slot) exec(argv []string) {
	timeout := s.r.getTimeout()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	s.mu.Lock()
	s.cancel, s.running = cancel, argv
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.cancel, s.running = nil, nil
		s.mu.Unlock()
	}()
	start := time.Now()
	log := s.r.log.With().Strs("callback", argv).Logger()
	log.Info().Msg("running callback")
	err := Run(ctx, s.r.owner, argv)
	took := time.Since(start)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		log.Warn().Dur("timeout", timeout).Msg("callback killed: it ran longer than its timeout")
	case errors.Is(err, context.Canceled):
		log.Info().Dur("took", took).Msg("callback killed")
	case err != nil:
		log.Warn().Err(err).Dur("took", took).Msg("callback failed")
	default:
		log.Info().Dur("took", took).Msg("callback done")
	}
}
