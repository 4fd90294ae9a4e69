package dcs

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pg-ha/pg-ha/lib/clock"
)

// View is the cluster as one watch keeps it: every key under the prefix is
// read once, then followed by a watch from that read's revision; whenever
// the watch breaks (see Watch) the keys are read again and followed anew.
// Progress notifications, requested every WatchProgressInterval, confirm
// that nothing was missed: Cluster says as of when the view is known to be
// current. A steady cluster thus costs etcd no read at all.
type View struct {
	c      *Client
	events chan Event

	mu        sync.Mutex
	kvs       map[string]*mvccpb.KeyValue
	rev       int64         // the revision the keys reflect
	confirmed clock.Time    // the view was current at this moment (0: never)
	parsed    *Cluster      // kvs parsed; nil after a change
	ok        bool          // a read succeeded since the last break
	moved     chan struct{} // closed when rev or confirmed advances
	err       string        // why the view is not being followed, "" while it is
}

// Err says why the view is not confirmed now (a failed read, a broken
// watch), "" while it is followed. It never blocks.
func (v *View) Err() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.err
}

// Follow starts a View; it follows the cluster until ctx ends. Changes
// arrive on Events.
func (c *Client) Follow(ctx context.Context) *View {
	v := &View{c: c, events: make(chan Event, watchBuffer), moved: make(chan struct{})}
	go v.run(ctx)
	return v
}

// Events delivers, after the view applied them, every change of a key
// (Key, Deleted, Revision) and an Event{Resync: true} after each new read
// of the whole prefix. It never blocks the view: when the consumer falls
// behind, changes are dropped in favour of one Resync. The channel closes
// when the View stops.
func (v *View) Events() <-chan Event { return v.events }

// Cluster returns the cluster as the view holds it and the latest moment at
// which the view is known to have been current: the send time of the last
// answered progress request or of the last read. It returns nil before the
// first read succeeded. The Cluster is shared: callers must not modify it.
// It never blocks on etcd.
func (v *View) Cluster() (*Cluster, clock.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.kvs == nil {
		return nil, 0
	}
	if v.parsed == nil {
		kvs := make([]*mvccpb.KeyValue, 0, len(v.kvs))
		for _, kv := range v.kvs {
			kvs = append(kvs, kv)
		}
		v.parsed = parseCluster(v.c.log, v.c.prefix, v.rev, kvs)
	}
	cl := *v.parsed
	cl.Revision = v.rev
	if !v.ok {
		return &cl, 0
	}
	return &cl, v.confirmed
}

// Current returns the cluster if the view was confirmed current within
// twice WatchProgressInterval (normally the last progress answer, a second
// old) and reflects every write this Client made; it waits for the latter
// until ctx ends. Otherwise it returns nil: read with Get instead.
func (v *View) Current(ctx context.Context) *Cluster {
	maxAge := 2 * v.c.progressInterval
	for {
		v.mu.Lock()
		rev, moved := v.rev, v.moved
		v.mu.Unlock()
		if rev >= v.c.Wrote() {
			break
		}
		select {
		case <-ctx.Done():
			return nil
		case <-moved:
		}
	}
	cl, confirmed := v.Cluster()
	if cl == nil || confirmed == 0 || v.c.clock.Now().Sub(confirmed) > maxAge {
		return nil
	}
	return cl
}

// advanced wakes Current's waiters; the caller holds v.mu.
func (v *View) advanced() {
	close(v.moved)
	v.moved = make(chan struct{})
}

func (v *View) run(ctx context.Context) {
	defer close(v.events)
	backoff := watchMinBackoff
	for ctx.Err() == nil {
		rev, err := v.read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			v.c.log.Debug().Err(err).Dur("backoff", backoff).Msg("view: reading the cluster failed")
			sleep(ctx, backoff)
			backoff = min(2*backoff, watchMaxBackoff)
			continue
		}
		backoff = watchMinBackoff
		v.send(Event{Resync: true})
		v.follow(ctx, rev)
	}
}

// read replaces the view's keys by one linearizable read.
func (v *View) read(ctx context.Context) (int64, error) {
	sent := v.c.clock.Now()
	rctx, cancel := v.c.reqCtx(ctx)
	defer cancel()
	resp, err := v.c.cli.Get(rctx, v.c.prefix, clientv3.WithPrefix())
	if err != nil {
		err = fmt.Errorf("read cluster %s: %w", v.c.prefix, translate(err))
		v.mu.Lock()
		v.err = err.Error()
		v.mu.Unlock()
		return 0, err
	}
	kvs := make(map[string]*mvccpb.KeyValue, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		kvs[string(kv.Key)] = kv
	}
	v.mu.Lock()
	v.kvs, v.rev, v.parsed, v.ok, v.err = kvs, resp.Header.Revision, nil, true, ""
	v.confirmed = sent
	v.advanced()
	v.mu.Unlock()
	return resp.Header.Revision, nil
}

// follow applies the watch from rev+1 until it breaks or ctx ends.
func (v *View) follow(ctx context.Context, rev int64) {
	wctx, cancel := context.WithCancel(ctx)
	events := v.c.watch(wctx, rev, true)
	defer func() {
		cancel()
		for range events {
		}
	}()
	for ev := range events {
		switch {
		case ev.Resync:
			// Events may have been missed: read everything again.
			v.mu.Lock()
			v.ok, v.err = false, "etcd watch broken: reading the cluster again"
			v.mu.Unlock()
			return
		case ev.progress:
			v.mu.Lock()
			if ev.Revision >= v.rev {
				v.rev = ev.Revision
				v.confirmed = max(v.confirmed, ev.sent)
				v.advanced()
			}
			v.mu.Unlock()
		default:
			v.mu.Lock()
			if ev.Deleted {
				delete(v.kvs, ev.Key)
			} else {
				v.kvs[ev.Key] = ev.kv
			}
			v.rev, v.parsed = max(v.rev, ev.Revision), nil
			v.advanced()
			v.mu.Unlock()
			ev.kv = nil
			v.send(ev)
		}
	}
}

// send delivers e without blocking: if the consumer is behind, whatever it
// has not taken yet is replaced by one Resync.
func (v *View) send(e Event) {
	select {
	case v.events <- e:
		return
	default:
	}
	for {
		select {
		case <-v.events:
			continue
		default:
		}
		select {
		case v.events <- Event{Resync: true}:
			return
		default:
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
