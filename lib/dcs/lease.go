package dcs

import (
	"context"
	"fmt"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pg-ha/pg-ha/lib/clock"
)

// Lease is an etcd lease as this process may rely on it.
type Lease struct {
	// ID is etcd's lease ID.
	ID int64
	// TTL is the TTL the server granted or renewed (whole seconds; at least
	// etcd's minimum, about 1.5 election timeouts rounded up).
	TTL time.Duration
	// ValidUntil is when this process must stop relying on the lease: the
	// time the request was sent plus TTL. etcd's expiry is no earlier.
	ValidUntil clock.Time
}

// Remaining returns how long the lease is still valid at now (negative once
// it is not). It never blocks.
func (l Lease) Remaining(now clock.Time) time.Duration { return l.ValidUntil.Sub(now) }

// Grant creates a lease of ttl, rounded up to whole seconds (etcd raises it
// to its minimum if smaller). It blocks for one request, cancelled with ctx or
// after RequestTimeout. It reads the clock before sending, so ValidUntil
// never outlasts the server's lease. Errors: ErrNoQuorum, context errors,
// transport errors, all wrapped.
func (c *Client) Grant(ctx context.Context, ttl time.Duration) (Lease, error) {
	if ttl <= 0 {
		return Lease{}, fmt.Errorf("grant lease: ttl %v must be positive", ttl)
	}
	secs := int64((ttl + time.Second - 1) / time.Second)
	rctx, cancel := c.reqCtx(ctx)
	defer cancel()
	sent := c.clock.Now()
	resp, err := c.cli.Grant(rctx, secs)
	if err != nil {
		return Lease{}, fmt.Errorf("grant lease of %ds: %w", secs, translate(err))
	}
	if resp.TTL <= 0 {
		return Lease{}, fmt.Errorf("grant lease of %ds: server granted ttl %d: %s", secs, resp.TTL, resp.Error)
	}
	l := Lease{ID: int64(resp.ID), TTL: time.Duration(resp.TTL) * time.Second}
	l.ValidUntil = sent.Add(l.TTL)
	c.log.Debug().Int64("lease_id", l.ID).Dur("ttl", l.TTL).Msg("lease granted")
	return l, nil
}

// KeepAlive renews the lease once and returns its new validity: the clock
// reading taken before sending plus the TTL in the server's answer. The
// request goes over one keepalive stream the Client keeps open (never the
// etcd client's background keepalive), so renewals cost etcd no new RPC;
// renewals are sent one at a time. It blocks until the answer arrives, ctx
// is cancelled or RequestTimeout passes; a stream that failed or did not
// answer in time is dropped, and the next call opens a new one (to whichever
// member the connection then reaches). A lease the server no longer knows
// yields ErrLeaseNotFound; no quorum yields ErrNoQuorum; other failures are
// wrapped transport or context errors. After any error the previous
// ValidUntil still stands and nothing was extended.
func (c *Client) KeepAlive(ctx context.Context, id int64) (Lease, error) {
	rctx, cancel := c.reqCtx(ctx)
	defer cancel()
	c.ka.mu.Lock()
	defer c.ka.mu.Unlock()
	sent := c.clock.Now()
	resp, err := c.keepAliveLocked(rctx, id)
	if err != nil {
		c.ka.drop()
		return Lease{}, fmt.Errorf("keep lease %x alive: %w", id, translate(err))
	}
	if resp.TTL <= 0 {
		return Lease{}, fmt.Errorf("keep lease %x alive: %w", id, ErrLeaseNotFound)
	}
	l := Lease{ID: id, TTL: time.Duration(resp.TTL) * time.Second}
	l.ValidUntil = sent.Add(l.TTL)
	c.log.Trace().Int64("lease_id", id).Dur("ttl", l.TTL).Msg("lease renewed")
	return l, nil
}

// keepAliveStream is the Client's open keepalive stream, nil if none.
type keepAliveStream struct {
	mu     sync.Mutex
	stream pb.Lease_LeaseKeepAliveClient
	cancel context.CancelFunc
}

func (k *keepAliveStream) drop() {
	if k.stream != nil {
		k.cancel()
		k.stream, k.cancel = nil, nil
	}
}

// keepAliveLocked sends one renewal on the stream (opening it if needed)
// and waits for its answer until ctx ends. The caller holds c.ka.mu.
func (c *Client) keepAliveLocked(ctx context.Context, id int64) (*pb.LeaseKeepAliveResponse, error) {
	if c.ka.stream == nil {
		// The stream lives as long as the Client; it refuses to be served
		// by a member without a raft leader, as every request does.
		sctx, cancel := context.WithCancel(clientv3.WithRequireLeader(c.cli.Ctx()))
		st, err := pb.NewLeaseClient(c.cli.ActiveConnection()).LeaseKeepAlive(sctx)
		if err != nil {
			cancel()
			return nil, err
		}
		c.ka.stream, c.ka.cancel = st, cancel
	}
	st := c.ka.stream
	type answer struct {
		resp *pb.LeaseKeepAliveResponse
		err  error
	}
	done := make(chan answer, 1)
	go func() {
		if err := st.Send(&pb.LeaseKeepAliveRequest{ID: id}); err != nil {
			done <- answer{err: err}
			return
		}
		resp, err := st.Recv()
		done <- answer{resp, err}
	}()
	select {
	case a := <-done:
		if a.err == nil && a.resp.ID != id {
			a.err = fmt.Errorf("answer for lease %x", a.resp.ID)
		}
		return a.resp, a.err
	case <-ctx.Done():
		// Dropping the stream ends the goroutine's Send or Recv.
		return nil, ctx.Err()
	}
}

// Revoke deletes the lease and every key attached to it (the member key, the
// leader key if held). It blocks for one request (ctx, RequestTimeout).
// Errors: ErrLeaseNotFound if it was already gone, ErrNoQuorum, transport or
// context errors, all wrapped.
func (c *Client) Revoke(ctx context.Context, id int64) error {
	rctx, cancel := c.reqCtx(ctx)
	defer cancel()
	if _, err := c.cli.Revoke(rctx, clientv3.LeaseID(id)); err != nil {
		return fmt.Errorf("revoke lease %x: %w", id, translate(err))
	}
	c.log.Debug().Int64("lease_id", id).Msg("lease revoked")
	return nil
}

// LeaseTimeToLive asks the server how long the lease has left (whole
// seconds, rounded down by etcd). It is for diagnostics and tests: the
// validity clock is Lease.ValidUntil. It blocks for one request (ctx,
// RequestTimeout). Errors: ErrLeaseNotFound if the lease is gone,
// ErrNoQuorum, transport or context errors, all wrapped.
func (c *Client) LeaseTimeToLive(ctx context.Context, id int64) (time.Duration, error) {
	rctx, cancel := c.reqCtx(ctx)
	defer cancel()
	resp, err := c.cli.TimeToLive(rctx, clientv3.LeaseID(id))
	if err != nil {
		return 0, fmt.Errorf("lease %x time to live: %w", id, translate(err))
	}
	if resp.TTL < 0 {
		return 0, fmt.Errorf("lease %x time to live: %w", id, ErrLeaseNotFound)
	}
	return time.Duration(resp.TTL) * time.Second, nil
}
