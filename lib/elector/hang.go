package elector

import (
	"context"
	"time"

	"github.com/pg-ha/pg-ha/lib/clock"
	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/decide"
	"github.com/pg-ha/pg-ha/lib/rolepipe"
	"github.com/pg-ha/pg-ha/lib/state"
)

// hangWatch follows a leader whose PostgreSQL pg-supervise runs but which
// answers no query (every server process stopped, as with a stuck disk).
type hangWatch struct {
	silentSince clock.Time // first unanswered status query while running; 0: answering
	killToken   int64      // the leader token under which the kill was asked; 0: none
	warned      time.Duration
}

// hangTimeout is primary_hang_timeout, raised to the minimum (with a
// warning) when the config key sets it too short.
func (e *Elector) hangTimeout() time.Duration {
	t := e.dyn.PrimaryHangTimeout
	if err := e.dyn.CheckHangTimeout(); err != nil {
		if e.hang.warned != t {
			e.log.Warn().Err(err).Dur("using", config.MinPrimaryHangTimeout).Msg("config key")
			e.hang.warned = t
		}
		return config.MinPrimaryHangTimeout
	}
	return t
}

// fenceHung, called while leading, kills a primary that has answered no
// query for primary_hang_timeout although pg-supervise reports it running,
// and hands the key on once there is evidence that it no longer accepts
// writes. It reports whether it took this loop over: from the kill request
// on, no lead line is sent (pg-supervise would restart the server as the
// primary), only stop lines, until the key is released.
func (e *Elector) fenceHung(ctx context.Context, loc local) bool {
	h := &e.hang
	if h.killToken != 0 && h.killToken != e.token {
		h.killToken = 0
	}
	if h.killToken == 0 {
		timeout := e.hangTimeout()
		running := loc.supOK && loc.sup.State == state.Running
		now := e.clock.Now()
		if loc.pgOK || !running {
			h.silentSince = 0
		} else if h.silentSince == 0 {
			h.silentSince = now
		}
		s := decide.Silence{Answering: loc.pgOK, SupervisedRunning: running, Paused: e.dyn.Pause, Timeout: timeout}
		if h.silentSince != 0 {
			s.For = now.Sub(h.silentSince)
		}
		if !decide.Unresponsive(s) {
			return false
		}
		e.log.Error().Dur("silent_for", now.Sub(h.silentSince)).Dur("primary_hang_timeout", timeout).
			Msg("PostgreSQL answers no query: killing it and handing the leader key on")
		h.killToken = e.token
	}
	e.emit(rolepipe.Line{Verb: rolepipe.Stop, Reason: rolepipe.ReasonUnresponsive})
	if ok, why := e.notWritable(ctx); ok {
		e.log.Warn().Str("evidence", why).Msg("releasing the leader key: PostgreSQL was unresponsive and is gone")
		if err := e.release(ctx, "primary_unresponsive"); err == nil {
			h.killToken, h.silentSince = 0, 0
		}
	}
	return true
}
