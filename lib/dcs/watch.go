package dcs

import (
	"context"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pg-ha/pg-ha/lib/clock"
)

// Event is a change under the prefix, or a request to re-read everything.
type Event struct {
	// Resync means events may have been missed (the watch broke and was
	// re-established, the etcd member or its raft term changed, the start
	// revision was compacted, or the consumer fell behind): call Get and
	// rebuild. Key, Deleted and Revision are then zero.
	Resync bool
	// Key is the full key that changed.
	Key string
	// Deleted is true when the key was deleted (or its lease expired).
	Deleted bool
	// Revision is the revision of the change; events at or below the
	// revision of a later Get are already reflected in it.
	Revision int64

	// For a View: the changed key and value, and progress notifications
	// (the server's revision as of a moment after sent). Watch's consumers
	// never see progress events.
	kv       *mvccpb.KeyValue
	progress bool
	sent     clock.Time
}

const (
	watchBuffer     = 64
	watchMaxPending = 1024
	watchMinBackoff = 100 * time.Millisecond
	watchMaxBackoff = 2 * time.Second
)

// Watch watches every key under the prefix from rev+1, where rev is the
// Cluster.Revision last read (rev <= 0: from now), and sends the changes on
// the returned channel until ctx is cancelled or the Client is closed; then
// it closes the channel after its goroutines have stopped. It does not
// block: establishing the watch happens in the background.
//
// The watch never stops silently. When it breaks for any reason (etcd
// restarted or unreachable, the member lost its leader, the start revision
// was compacted, the server cancelled it, the stream closed) or when neither
// an event nor a progress notification has arrived for twice
// Options.WatchProgressInterval (progress is requested at that interval), it
// is re-established from the current revision with backoff (100ms doubling
// to 2s) and, once it is, an Event{Resync: true} is sent; the caller re-reads
// with Get. A Resync is also sent when responses start coming from another
// member or raft term (a client-side transparent reconnect, a leader
// change), since leases may have been extended meanwhile. A first attempt
// that is merely slow (etcd still starting) needs no Resync: it delivers
// everything from rev+1.
//
// The channel is buffered, and events wait in an internal queue, so a slow
// consumer never stalls the etcd stream; if more than 1024 events are
// pending they are replaced by a single Resync.
func (c *Client) Watch(ctx context.Context, rev int64) <-chan Event {
	return c.watch(ctx, rev, false)
}

// watch is Watch; with progress, answers to progress requests are delivered
// too (as events with progress set).
func (c *Client) watch(ctx context.Context, rev int64, progress bool) <-chan Event {
	out := make(chan Event, watchBuffer)
	q := &eventQueue{notify: make(chan struct{}, 1), progress: progress}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.watchLoop(ctx, rev, q)
	}()
	go q.deliver(ctx, out, done)
	return out
}

func (c *Client) watchLoop(ctx context.Context, rev int64, q *eventQueue) {
	start, resync := rev+1, false
	if rev <= 0 {
		start = 0
	}
	backoff := watchMinBackoff
	for {
		created, reason := c.watchOnce(ctx, start, resync, q)
		if ctx.Err() != nil || c.cli.Ctx().Err() != nil { // cancelled, or Client closed
			return
		}
		if created {
			backoff = watchMinBackoff
		}
		c.log.Warn().Str("prefix", c.prefix).Str("reason", reason).Dur("backoff", backoff).Msg("watch broken, re-establishing")
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-c.cli.Ctx().Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, watchMaxBackoff)
		// Re-read, not replay: the consumer's Get after the Resync covers
		// whatever happened before the new watch started.
		start, resync = 0, true
	}
}

// watchOnce runs one etcd watch until it breaks or ctx ends. created tells
// whether the watch was established; reason says why it ended.
func (c *Client) watchOnce(ctx context.Context, start int64, resync bool, q *eventQueue) (created bool, reason string) {
	stall := 2 * c.progressInterval
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	// No WithProgressNotify: the only progress notifications on the stream
	// answer requestProgress, one at a time, so each is matched with the
	// moment its request was sent.
	opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithCreatedNotify()}
	if start > 0 {
		opts = append(opts, clientv3.WithRev(start))
	}
	// clientv3's Watch blocks until the server has created the watch; give
	// up (and retry) if that takes longer than a stalled watch may last.
	giveUp := time.AfterFunc(stall, cancel)
	defer giveUp.Stop()
	wch := c.cli.Watch(wctx, c.prefix, opts...)

	stalled := time.NewTimer(stall)
	defer stalled.Stop()
	var base *pb.ResponseHeader
	pending := &progressRequests{}
	for {
		select {
		case <-ctx.Done():
			return created, "cancelled"
		case <-stalled.C:
			return created, "no event or progress notification"
		case resp, ok := <-wch:
			if !ok {
				if !created && wctx.Err() != nil {
					return false, "not established in time"
				}
				return created, "watch channel closed"
			}
			if err := resp.Err(); err != nil {
				if resp.CompactRevision != 0 {
					c.log.Info().Int64("revision", start).Int64("compact_revision", resp.CompactRevision).Msg("watch start revision compacted")
				}
				return created, err.Error()
			}
			if resp.Canceled {
				return created, "cancelled by server: " + resp.CancelReason
			}
			stalled.Reset(stall)
			if !created {
				giveUp.Stop()
				created, base = true, resp.Header
				wg.Add(1)
				go c.requestProgress(wctx, &wg, pending)
				if resync {
					q.push(Event{Resync: true})
				}
				if resp.Created {
					continue
				}
			}
			if h := resp.Header; h != nil && base == nil {
				base = h
			} else if h != nil && (h.MemberId != base.MemberId || h.RaftTerm != base.RaftTerm) {
				c.log.Info().Uint64("member_id", h.MemberId).Uint64("raft_term", h.RaftTerm).
					Uint64("previous_member_id", base.MemberId).Uint64("previous_raft_term", base.RaftTerm).
					Msg("watch now served by another member or raft term, resyncing")
				base = h
				q.push(Event{Resync: true})
			}
			if resp.IsProgressNotify() {
				if sent, ok := pending.answered(); ok && q.progress {
					q.push(Event{progress: true, Revision: resp.Header.Revision, sent: sent})
				}
				continue
			}
			for _, ev := range resp.Events {
				q.push(Event{Key: string(ev.Kv.Key), Deleted: ev.Type == mvccpb.DELETE, Revision: ev.Kv.ModRevision, kv: ev.Kv})
			}
		}
	}
}

// requestProgress asks etcd for a progress notification on the watch stream
// every WatchProgressInterval, so that a healthy but idle watch hears from
// the server and a dead one is noticed. Requests are not pipelined: while
// one is unanswered no other is sent (a lost answer ends in the stall
// timeout), so an answer proves the stream current as of its request.
func (c *Client) requestProgress(wctx context.Context, wg *sync.WaitGroup, pending *progressRequests) {
	defer wg.Done()
	t := time.NewTicker(c.progressInterval)
	defer t.Stop()
	for {
		select {
		case <-wctx.Done():
			return
		case <-t.C:
			if !pending.send(c.clock.Now()) {
				continue
			}
			// Same outgoing metadata as the watch, so the same gRPC stream.
			pctx, cancel := context.WithTimeout(wctx, c.progressInterval)
			if err := c.cli.RequestProgress(pctx); err != nil && wctx.Err() == nil {
				c.log.Debug().Err(err).Msg("watch progress request failed")
				pending.failed()
			}
			cancel()
		}
	}
}

// progressRequests is the progress request awaiting its answer, if any.
type progressRequests struct {
	mu   sync.Mutex
	sent clock.Time
	out  bool
}

// send records a request sent at now, unless one is still unanswered.
func (p *progressRequests) send(now clock.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.out {
		return false
	}
	p.sent, p.out = now, true
	return true
}

// failed forgets a request that could not be sent. Should it have gone out
// after all, its answer is then attributed to nothing, or to a later
// request: never to an earlier moment than its own.
func (p *progressRequests) failed() {
	p.mu.Lock()
	p.out = false
	p.mu.Unlock()
}

// answered takes the unanswered request's send time.
func (p *progressRequests) answered() (clock.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.out {
		return 0, false
	}
	p.out = false
	return p.sent, true
}

// eventQueue decouples the etcd stream from the consumer.
type eventQueue struct {
	mu       sync.Mutex
	events   []Event
	notify   chan struct{}
	progress bool // deliver progress events
}

// push queues e without blocking. A Resync supersedes everything queued
// before it; an overflowing queue collapses into one Resync.
func (q *eventQueue) push(e Event) {
	q.mu.Lock()
	switch {
	case e.Resync:
		q.events = append(q.events[:0], e)
	case len(q.events) >= watchMaxPending:
		q.events = append(q.events[:0], Event{Resync: true})
	default:
		q.events = append(q.events, e)
	}
	q.mu.Unlock()
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

func (q *eventQueue) pop() (Event, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.events) == 0 {
		return Event{}, false
	}
	e := q.events[0]
	q.events = q.events[1:]
	return e, true
}

// deliver moves queued events to out until ctx ends or the producer stops
// (the Client was closed), then closes out once the producer has stopped.
func (q *eventQueue) deliver(ctx context.Context, out chan<- Event, producerDone <-chan struct{}) {
	defer close(out)
	for {
		e, ok := q.pop()
		if !ok {
			select {
			case <-q.notify:
				continue
			case <-ctx.Done():
				<-producerDone
				return
			case <-producerDone:
				return
			}
		}
		select {
		case out <- e:
		case <-ctx.Done():
			<-producerDone
			return
		case <-producerDone:
			return
		}
	}
}
