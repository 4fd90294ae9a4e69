package elector

import (
	"context"
	"fmt"
	"time"

	"github.com/pg-ha/pg-ha/lib/decide"
	"github.com/pg-ha/pg-ha/lib/pg"
	"github.com/pg-ha/pg-ha/lib/rolepipe"
)

// guardPeriod is how often guardWrites looks at the lease while leading.
const guardPeriod = 200 * time.Millisecond

// guardWrites fences a cut-off primary early, until ctx is done: while this
// node leads, once the lease has not been renewed for retry_timeout and no
// replica is receiving this primary's WAL (or the local server does not
// answer), every write it still acknowledges would be lost in a failover, so
// it hands pg-supervise a lead line that ends now and pg-supervise fences at
// once. With a replica still receiving, the primary goes on to the deadline.
// A successful renewal lifts the early fence (keepLease).
func (e *Elector) guardWrites(ctx context.Context) {
	t := time.NewTimer(guardPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		e.guardOnce(ctx)
		t.Reset(guardPeriod)
	}
}

func (e *Elector) guardOnce(ctx context.Context) {
	e.ka.mu.Lock()
	ln, held, lastOK, fenced, retry := e.ka.line, e.ka.held, e.ka.lastOK, e.ka.fencedAt, e.ka.retryTimeout
	e.ka.mu.Unlock()
	now := e.clock.Now()
	leading := ln.Verb == rolepipe.Lead && ln.Token != 0 && ln.Token == held && fenced == 0 && now.Before(ln.Until)
	if !leading || lastOK == 0 || now.Sub(lastOK) < retry {
		return
	}
	receiving, err := e.replicasReceiving(ctx, max(retry/2, time.Second))
	g := decide.Guard{Unrenewed: now.Sub(lastOK), RetryTimeout: retry, StatusKnown: err == nil, Receiving: receiving}
	if !decide.FenceEarly(g) {
		return
	}
	e.ka.mu.Lock()
	defer e.ka.mu.Unlock()
	if e.ka.lastOK != lastOK || e.ka.line.Verb != rolepipe.Lead || e.ka.line.Token != held {
		return // renewed, or the line changed meanwhile
	}
	now = e.clock.Now()
	e.ka.fencedAt = now
	l := e.ka.line
	l.Until = now
	e.ka.line = l
	e.out.Set(l)
	ev := e.log.Warn().Dur("unrenewed_for", g.Unrenewed).Int("replicas_receiving", receiving)
	if err != nil {
		ev = ev.Err(err)
	}
	ev.Msg("cut off from etcd and no replica receives WAL: fencing the primary now")
}

// replicasReceiving counts the standbys that receive this primary's WAL
// now: streaming, and either caught up with the current WAL position or
// replying within fresh. A partitioned standby stays "streaming" in
// pg_stat_replication until wal_sender_timeout; its replies stop at once.
// It opens its own short connection (the main loop's is not shared across
// goroutines) and blocks at most about a second.
func (e *Elector) replicasReceiving(ctx context.Context, fresh time.Duration) (int, error) {
	qctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	conn, err := pg.Connect(qctx, e.node.Local(500*time.Millisecond))
	if err != nil {
		return 0, fmt.Errorf("connect to the local server: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var n int
	err = conn.QueryRow(qctx, `SELECT count(*) FROM pg_catalog.pg_stat_replication
WHERE state = 'streaming' AND (write_lsn >= pg_catalog.pg_current_wal_lsn()
  OR pg_catalog.clock_timestamp() - reply_time < pg_catalog.make_interval(secs => $1))`, fresh.Seconds()).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("query pg_stat_replication: %w", err)
	}
	return n, nil
}
