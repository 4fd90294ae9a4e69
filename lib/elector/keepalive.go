package elector

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/pg-ha/pg-ha/lib/clock"
	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/dcs"
	"github.com/pg-ha/pg-ha/lib/rolepipe"
)

// keeper is the state the lease keepalive shares with the main loop. The
// keepalive runs on its own goroutine (timer → keepalive → re-arm), so no
// slow etcd request of the main loop delays a renewal; every field is
// guarded by mu, and every role line is written to the pipe under mu, so the
// keepalive's refresh of a lead line never overtakes a newer line.
type keeper struct {
	mu sync.Mutex
	// lease is the lease this node relies on (ID 0: none).
	lease dcs.Lease
	// lost: the server answered that it no longer knows the lease.
	lost bool
	// lastOK is when the last successful renewal (or grant) was sent.
	lastOK clock.Time
	// failing: the last keepalive attempt failed.
	failing bool
	// line is the role line in force (the newest one handed to the pipe).
	line rolepipe.Line
	// held is the leader token the main loop last led under; a lead line is
	// refreshed only while it carries this token.
	held int64
	// fencedAt, when not 0, caps every lead deadline: the primary was
	// fenced early because it was cut off (guardWrites). A successful
	// renewal lifts it.
	fencedAt clock.Time
	// fs is failsafe mode's state (failsafe.go).
	fs failsafeState
	// timing, from the main loop's dynamic configuration.
	ttl, loopWait, retryTimeout, reqTimeout time.Duration
}

// setTiming copies the timing the keepalive and the guard use.
func (e *Elector) setTiming() {
	e.ka.mu.Lock()
	e.ka.ttl, e.ka.loopWait, e.ka.retryTimeout, e.ka.reqTimeout = e.dyn.TTL, e.dyn.LoopWait, e.dyn.RetryTimeout, e.requestTimeout()
	e.ka.mu.Unlock()
}

// setLease makes l (granted or adopted, the request sent at sent) the lease
// to keep, or drops the lease when l.ID is 0.
func (e *Elector) setLease(l dcs.Lease, sent clock.Time) {
	e.ka.mu.Lock()
	defer e.ka.mu.Unlock()
	e.ka.lease, e.ka.lost, e.ka.failing = l, false, false
	e.ka.lastOK = sent
	if l.ID == 0 {
		e.ka.lastOK = 0
	}
}

// leaseState returns the lease as the keepalive last renewed it, and whether
// the server has forgotten it.
func (e *Elector) leaseState() (dcs.Lease, bool) {
	e.ka.mu.Lock()
	defer e.ka.mu.Unlock()
	return e.ka.lease, e.ka.lost
}

// untilLocked is the deadline a lead line may carry now: the lease validity,
// never longer than the configured ttl from the renewal's send time whatever
// TTL etcd granted, minus the fence margin, or what failsafe rounds won if
// later; no later than an early fence. Callers hold ka.mu.
func (k *keeper) untilLocked() clock.Time {
	until := k.leaseUntilLocked()
	if fu := k.failsafeUntil(); fu > until {
		until = fu
	}
	if until == 0 {
		return 0
	}
	if k.fencedAt != 0 && k.fencedAt.Before(until) {
		until = k.fencedAt
	}
	return until
}

// leaseUntilLocked is the lead deadline the lease alone allows: its
// validity, never longer than the configured ttl from the renewal's send
// time whatever TTL etcd granted, minus the fence margin; 0 without a lease.
// Callers hold ka.mu.
func (k *keeper) leaseUntilLocked() clock.Time {
	l := k.lease
	if l.ID == 0 {
		return 0
	}
	until := l.ValidUntil.Add(-config.FenceMargin)
	if k.ttl > 0 && l.TTL > k.ttl {
		until = until.Add(-(l.TTL - k.ttl))
	}
	return until
}

// failsafeDeadline says whether failsafe rounds would run if etcd became
// unreachable (failsafe_mode on, a failsafe key seen), and the lead deadline
// in force when those rounds, not the lease, make it (etcd unreachable,
// every member promised), 0 otherwise.
func (e *Elector) failsafeDeadline() (armed bool, until clock.Time) {
	e.ka.mu.Lock()
	defer e.ka.mu.Unlock()
	armed = e.ka.fs.ask != nil
	if u := e.ka.untilLocked(); u > e.ka.leaseUntilLocked() && u == e.ka.failsafeUntil() {
		until = u
	}
	return armed, until
}

// keepLease renews the lease until ctx is done: one keepalive every
// loop_wait after the last successful one, and right after a failed one, so
// that an etcd stall costs no more than one request timeout once it ends.
// Attempts never overlap. A successful renewal refreshes the deadline of the
// lead line in force (never turning another line into a lead line).
func (e *Elector) keepLease(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		e.ka.mu.Lock()
		id, lastOK, loopWait, reqTimeout, failing := e.ka.lease.ID, e.ka.lastOK, e.ka.loopWait, e.ka.reqTimeout, e.ka.failing
		e.ka.mu.Unlock()
		now := e.clock.Now()
		if id == 0 {
			t.Reset(50 * time.Millisecond)
			continue
		}
		if due := lastOK.Add(loopWait - 50*time.Millisecond); !failing && now.Before(due) {
			t.Reset(due.Sub(now))
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, reqTimeout)
		l, err := e.dcs.KeepAlive(rctx, id)
		cancel()
		e.renewed(id, l, err)
		next := 50 * time.Millisecond
		if err == nil {
			next = loopWait - 50*time.Millisecond
		}
		t.Reset(next)
	}
}

// renewed records the outcome of a keepalive of lease id.
func (e *Elector) renewed(id int64, l dcs.Lease, err error) {
	e.ka.mu.Lock()
	defer e.ka.mu.Unlock()
	if e.ka.lease.ID != id {
		return // the main loop replaced the lease meanwhile
	}
	switch {
	case err == nil:
		e.ka.lease, e.ka.failing, e.ka.fencedAt = l, false, 0
		e.ka.lastOK = l.ValidUntil.Add(-l.TTL)
		if ln := e.ka.line; ln.Verb == rolepipe.Lead && ln.Token != 0 && ln.Token == e.ka.held {
			if until := e.ka.untilLocked(); ln.Until.Before(until) {
				ln.Until = until
				e.ka.line = ln
				e.out.Set(ln)
			}
		}
	case errors.Is(err, dcs.ErrLeaseNotFound):
		e.ka.lost, e.ka.failing = true, true
	default:
		if !e.ka.failing {
			e.log.Warn().Err(err).Dur("valid_for", e.ka.lease.ValidUntil.Sub(e.clock.Now())).Msg("lease keepalive failed")
		}
		e.ka.failing = true
	}
}
