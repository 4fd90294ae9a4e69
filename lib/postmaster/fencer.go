package postmaster

import (
	"context"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/pg-ha/pg-ha/lib/clock"
)

// Fencer kills every server process of a primary when its validity runs
// out. It runs on its own goroutine and does nothing else, so no slow
// query, stuck disk or busy loop elsewhere in the program can delay a
// fence.
type Fencer struct {
	clock   clock.Clock
	log     zerolog.Logger
	dataDir string

	mu       sync.Mutex
	armed    bool
	pgid     int
	token    int64
	deadline clock.Time
	fired    int // pgid of the last fence, 0 if none since the last Arm
	wake     chan struct{}
}

// NewFencer returns a disarmed fencer of the server running on dataDir; Run
// must be started.
func NewFencer(dataDir string, c clock.Clock, log zerolog.Logger) *Fencer {
	return &Fencer{dataDir: dataDir, clock: c, log: log, wake: make(chan struct{}, 1)}
}

// Arm watches the server whose postmaster is pgid, primary under token,
// until deadline.
func (f *Fencer) Arm(pgid int, token int64, deadline clock.Time) {
	f.mu.Lock()
	f.armed, f.pgid, f.token, f.deadline, f.fired = true, pgid, token, deadline, 0
	f.mu.Unlock()
	f.poke()
}

// Extend moves the deadline of an armed fencer to deadline if token is the
// one it was armed with. A line for another token extends nothing.
func (f *Fencer) Extend(token int64, deadline clock.Time) {
	f.mu.Lock()
	if f.armed && f.token == token {
		f.deadline = deadline
	}
	f.mu.Unlock()
	f.poke()
}

// Adopt re-keys an armed fencer to a new token and deadline (the primary
// kept its validity without a gap while the leader key was re-acquired).
func (f *Fencer) Adopt(token int64, deadline clock.Time) {
	f.mu.Lock()
	if f.armed {
		f.token, f.deadline = token, deadline
	}
	f.mu.Unlock()
	f.poke()
}

// Disarm stops watching: PostgreSQL cannot accept writes any more (it is
// stopped, or runs as a standby).
func (f *Fencer) Disarm() {
	f.mu.Lock()
	f.armed = false
	f.mu.Unlock()
	f.poke()
}

// FiredFor reports whether the fencer killed the server of postmaster pgid.
func (f *Fencer) FiredFor(pgid int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return pgid != 0 && f.fired == pgid
}

// Deadline returns the deadline in force and whether the fencer is armed.
func (f *Fencer) Deadline() (clock.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.deadline, f.armed
}

func (f *Fencer) poke() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Run fences until ctx is done. It wakes at the deadline (and at least
// every 100 ms, so a host suspend that stopped the monotonic timer but not
// CLOCK_BOOTTIME is noticed).
func (f *Fencer) Run(ctx context.Context) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		f.mu.Lock()
		wait := 100 * time.Millisecond
		if f.armed {
			now := f.clock.Now()
			if !now.Before(f.deadline) {
				n, err := KillServer(f.dataDir, f.pgid, killWithin)
				f.armed, f.fired = false, f.pgid
				ev := f.log.Warn()
				if err != nil {
					ev = f.log.Error().Err(err)
				}
				ev.Int("pid", f.pgid).Int64("token", f.token).Int("killed", n).
					Dur("late_by", now.Sub(f.deadline)).Dur("took", f.clock.Now().Sub(now)).
					Msg("validity ran out: fenced the primary (killed every server process)")
			} else if r := f.deadline.Sub(now); r < wait {
				wait = r
			}
		}
		f.mu.Unlock()
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-f.wake:
			if !t.Stop() {
				select {
				case <-t.C:
				default:
				}
			}
		case <-t.C:
		}
	}
}
