package clusterctl

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/dcs"
)

// Ctl carries out pg-failover's operations on one cluster through etcd.
type Ctl struct {
	// DCS is the cluster's etcd client.
	DCS *dcs.Client
	// Cfg is the node YAML pg-failover was given: scope, and the dynamic
	// settings the config key overrides.
	Cfg *config.Config
	// Log receives progress (to stderr in pg-failover).
	Log zerolog.Logger
	// Now is the wall clock (default time.Now).
	Now func() time.Time
}

func (c *Ctl) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// Read reads the cluster and resolves its settings. It blocks for one etcd
// request.
func (c *Ctl) Read(ctx context.Context) (*dcs.Cluster, Settings, error) {
	cl, err := c.DCS.Get(ctx)
	if err != nil {
		return nil, Settings{}, err
	}
	return cl, SettingsOf(c.Cfg, cl), nil
}

// Plan reads the cluster and checks req against it (MakePlan). It blocks
// for one etcd request. The cluster is returned even when the plan fails.
func (c *Ctl) Plan(ctx context.Context, req Request) (Plan, *dcs.Cluster, error) {
	cl, s, err := c.Read(ctx)
	if err != nil {
		return Plan{}, nil, err
	}
	p, err := MakePlan(cl, s, req)
	return p, cl, err
}

// Start writes p's failover key if no failover key exists (a Pending
// failure otherwise). It blocks for one etcd request.
func (c *Ctl) Start(ctx context.Context, p Plan) error {
	err := c.DCS.SetFailover(ctx, p.FailoverKey(), 0)
	if errors.Is(err, dcs.ErrConflict) {
		return fail(Pending, "another switchover or failover request appeared in etcd meanwhile; nothing was written")
	}
	if err != nil {
		return fmt.Errorf("write the %s request: %w", p.Kind, err)
	}
	c.Log.Info().Str("leader", p.Leader).Str("candidate", p.Candidate).Str("action", string(p.Kind)).
		Msg("request written to etcd")
	return nil
}

// Wait follows p, started by Start after the cluster was read at revision
// rev, until the candidate leads as a running primary and the request is
// gone (nil), or the outcome is another: Refused (the leader dropped the
// request and keeps leading), Diverted (another member leads, or another
// request replaced p's), TimedOut when timeout passes first — counted from
// now, or from p.ScheduledAt if that is later. It blocks until then, or
// until ctx ends (ctx's error, wrapped).
func (c *Ctl) Wait(ctx context.Context, p Plan, rev int64, timeout time.Duration) error {
	deadline := c.now().Add(timeout)
	if p.ScheduledAt != nil && p.ScheduledAt.Add(timeout).After(deadline) {
		deadline = p.ScheduledAt.Add(timeout)
	}
	lastLeader := "?"
	var outcome Outcome
	cl, err := c.watchUntil(ctx, rev, deadline, func(cl *dcs.Cluster) bool {
		ld := ""
		if cl.Leader != nil {
			ld = cl.Leader.Name
		}
		if ld != lastLeader {
			if lastLeader != "?" {
				if ld == "" {
					c.Log.Info().Str("previous", lastLeader).Msg("the leader key was released")
				} else {
					c.Log.Info().Str("leader", ld).Msg("the leader key was taken")
				}
			}
			lastLeader = ld
		}
		outcome = Judge(p, cl)
		return outcome != Waiting
	})
	switch {
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		desc := "etcd did not answer"
		if cl != nil {
			desc = Progress(p, cl)
		}
		return fail(TimedOut, "%s to %s not done within --timeout %s: %s", p.Kind, p.Candidate, timeout, desc)
	case err != nil:
		return fmt.Errorf("waiting for the %s to %s (the request stays in etcd and may still be carried out): %w", p.Kind, p.Candidate, err)
	}
	switch outcome {
	case Done:
		return nil
	case Dropped:
		s := SettingsOf(c.Cfg, cl)
		if a := Find(Assess(cl, s), p.Candidate); a != nil && !a.Eligible {
			return fail(Refused, "the leader %s refused the switchover and keeps leading: %s is not eligible: %s", p.Leader, p.Candidate, a.Why())
		}
		return fail(Refused, "the leader %s refused the switchover to %s and keeps leading; its pg-lockd log says why", p.Leader, p.Candidate)
	case Elsewhere:
		return fail(Diverted, "%s to %s did not happen: %s leads now", p.Kind, p.Candidate, cl.Leader.Name)
	default: // Replaced
		return fail(Diverted, "%s to %s was replaced by another request in etcd: %s", p.Kind, p.Candidate, describeKey(*cl.Failover))
	}
}

// watchUntil reads the cluster, and again after every change under the
// prefix since rev (and every second, as a backstop), until done returns
// true, deadline passes (context.DeadlineExceeded) or ctx ends. It returns
// the last cluster read.
func (c *Ctl) watchUntil(ctx context.Context, rev int64, deadline time.Time, done func(*dcs.Cluster) bool) (*dcs.Cluster, error) {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	events := c.DCS.Watch(ctx, rev)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var last *dcs.Cluster
	for {
		cl, err := c.DCS.Get(ctx)
		switch {
		case err == nil:
			last = cl
			if done(cl) {
				return cl, nil
			}
		case ctx.Err() == nil:
			c.Log.Warn().Err(err).Msg("reading the cluster")
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case _, ok := <-events:
			if !ok {
				events = nil
			}
			drain(events)
		case <-tick.C:
		}
	}
}

// drain discards events already queued: one Get covers them all.
func drain(events <-chan dcs.Event) {
	for {
		select {
		case _, ok := <-events:
			if !ok {
				return
			}
		default:
			return
		}
	}
}

// SetPaused pauses (pause true) or resumes the cluster: it rewrites the
// config key with SetPause, compare-and-set on its mod revision, re-reading
// and retrying when someone else changed it meanwhile. changed is false
// when the cluster already was in that mode. With timeout > 0 it then waits
// until every member key reports the mode (pg-lockd publishes "pause" from
// the config key), else a TimedOut failure names the members that do not.
// It blocks for a few etcd requests, plus the wait.
func (c *Ctl) SetPaused(ctx context.Context, pause bool, timeout time.Duration) (changed bool, err error) {
	var rev int64
	for attempt := 0; ; attempt++ {
		cl, err := c.DCS.Get(ctx)
		if err != nil {
			return false, err
		}
		rev = cl.Revision
		raw, ch, err := SetPause(cl.Config, pause)
		if err != nil {
			return false, err
		}
		if !ch {
			break
		}
		err = c.DCS.PutConfig(ctx, raw, cl.ConfigRev)
		if errors.Is(err, dcs.ErrConflict) && attempt < 5 {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("write the config key: %w", err)
		}
		changed = true
		break
	}
	if timeout <= 0 {
		return changed, nil
	}
	var behind []string
	_, err = c.watchUntil(ctx, rev, c.now().Add(timeout), func(cl *dcs.Cluster) bool {
		behind = behind[:0]
		for _, m := range cl.Members {
			if m.Data.Pause != pause {
				behind = append(behind, m.Name)
			}
		}
		return len(behind) == 0
	})
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		mode := "paused"
		if !pause {
			mode = "resumed"
		}
		return changed, fail(TimedOut, "the config key says %s, but within --timeout %s these members did not report it: %v",
			mode, timeout, behind)
	}
	return changed, err
}
