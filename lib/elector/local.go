package elector

import (
	"context"
	"errors"
	"time"

	"github.com/pg-ha/pg-ha/lib/pg"
	"github.com/pg-ha/pg-ha/lib/postmaster"
	"github.com/pg-ha/pg-ha/lib/state"
)

// local is what pg-lockd observed of its own node in one loop.
type local struct {
	pgOK   bool      // the status query answered
	status pg.Status // valid when pgOK
	sup    state.Supervise
	supOK  bool // supervise.json was read and is fresh
	boot   state.Bootstrap
	bootOK bool // bootstrap.json was read and its pg-bootstrap runs
}

// cloning says whether this node clones (or restores) its data directory:
// pg-supervise re-clones it, or a running pg-bootstrap creates a replica
// or restores a new cluster. It returns Patroni's state for it ("creating
// replica", "running custom bootstrap script") and the last progress
// report, nil before the first.
func (l local) cloning() (string, *state.Progress, bool) {
	switch {
	case l.supOK && l.sup.State == state.Cloning:
		return state.CreatingReplica, l.sup.Progress, true
	case l.bootOK && (l.boot.State == state.CreatingReplica || l.boot.State == state.CustomBootstrap):
		return l.boot.State, l.boot.Progress, true
	}
	return "", nil, false
}

// running reports whether PostgreSQL answers.
func (l local) running() bool { return l.pgOK }

// primary reports whether it answers as a primary.
func (l local) primary() bool { return l.pgOK && !l.status.InRecovery }

// position is the WAL position to publish.
func (l local) position() int64 {
	if !l.pgOK {
		return 0
	}
	return int64(l.status.Position())
}

// observeLocal queries the local PostgreSQL (reusing one connection) and
// reads pg-supervise's state file.
func (e *Elector) observeLocal(ctx context.Context) local {
	var l local
	if s, err := state.ReadSupervise(e.node.RuntimeDir); err == nil {
		l.sup = s
		l.supOK = state.Fresh(s.Updated, e.clock.Now(), 3*time.Second+2*e.dyn.LoopWait)
	}
	if b, err := state.ReadBootstrap(e.node.RuntimeDir); err == nil {
		l.boot, l.bootOK = b, b.Running(e.clock.Now())
	}
	qctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if e.conn == nil || e.conn.IsClosed() {
		// A slow query is cancelled, not disconnected: with every
		// connection slot taken by an application, a dropped connection
		// could not be opened again.
		p := e.node.Local(time.Second)
		p.CancelGrace = 500 * time.Millisecond
		c, err := pg.Connect(qctx, p)
		if err != nil {
			return l
		}
		e.conn = c
	}
	st, err := pg.QueryStatus(qctx, e.conn)
	if err != nil {
		if e.conn.IsClosed() {
			e.conn = nil
		}
		return l
	}
	// A standby that is not streaming (its leader just died) would
	// otherwise publish its last checkpoint's timeline, which can be older
	// than the one it replays, and look behind in the election.
	st.Timeline = pg.ReplayTimeline(qctx, e.node.Local(time.Second), st)
	l.status, l.pgOK = st, true
	return l
}

func (e *Elector) closeConn(ctx context.Context) {
	if e.conn != nil {
		_ = e.conn.Close(context.WithoutCancel(ctx))
		e.conn = nil
	}
}

// checkpoint runs CHECKPOINT on the local server.
func (e *Elector) checkpoint(ctx context.Context) error {
	if e.conn == nil {
		return errors.New("no connection to the local server")
	}
	return pg.Checkpoint(ctx, e.conn)
}

// notWritable reports evidence that the local PostgreSQL no longer accepts
// writes: no server process of the data directory is alive (a backend that
// outlived its postmaster can still commit the statement it runs, so the
// postmaster alone is no evidence), or the server answers from recovery.
// It never guesses from silence.
func (e *Elector) notWritable(ctx context.Context) (bool, string) {
	pids, err := postmaster.ServerProcesses(e.node.DataDir(), 0)
	if err == nil && len(pids) == 0 {
		return true, "no server process of the data directory is alive"
	}
	qctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	conn, err := pg.Connect(qctx, e.node.Local(500*time.Millisecond))
	if err != nil {
		return false, ""
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var inRecovery bool
	if err := conn.QueryRow(qctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err == nil && inRecovery {
		return true, "the server is in recovery"
	}
	return false, ""
}
