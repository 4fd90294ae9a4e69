package dcs

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/pg-ha/pg-ha/lib/clock"
)

// Defaults applied by New to zero Options fields.
const (
	DefaultDialTimeout           = 2 * time.Second
	DefaultRequestTimeout        = 2 * time.Second
	DefaultWatchProgressInterval = time.Second
)

// Options configures a Client.
type Options struct {
	// Endpoints are the etcd client URLs ("http://10.0.0.1:2379").
	Endpoints []string
	// Username and Password enable etcd authentication when both are set.
	Username, Password string
	// TLS, when not nil, is used for every endpoint.
	TLS *tls.Config
	// Prefix is "/<namespace>/<scope>/"; it must start and end with "/".
	Prefix string
	// DialTimeout bounds connection attempts and authentication (default 2s).
	DialTimeout time.Duration
	// RequestTimeout bounds every request unless the caller's context has an
	// earlier deadline (default 2s).
	RequestTimeout time.Duration
	// WatchProgressInterval is how often Watch asks etcd for a progress
	// notification; a watch that hears nothing for twice this long is treated
	// as broken and re-established (default 1s).
	WatchProgressInterval time.Duration
	// Log receives this package's logs and the etcd client's own, the latter
	// at debug level (warn for its errors). The zero Logger discards them.
	Log zerolog.Logger
	// Clock is the validity clock for leases (default clock.System{}).
	Clock clock.Clock
}

// Client talks to etcd for one cluster scope. It is safe for concurrent use.
type Client struct {
	cli              *clientv3.Client
	prefix           string
	reqTimeout       time.Duration
	progressInterval time.Duration
	log              zerolog.Logger
	clock            clock.Clock
	ka               keepAliveStream
	wrote            atomic.Int64 // highest revision a write returned
}

// New validates o, applies defaults and creates a client. It does not wait for
// a connection: if etcd is unreachable, New succeeds and the first request
// fails after its timeout. With Username and Password set, the etcd client
// authenticates inside New, which then blocks for at most DialTimeout and
// fails if authentication fails. ctx is checked once; it does not bound the
// Client's lifetime (Close does).
func New(ctx context.Context, o Options) (*Client, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("create etcd client: %w", err)
	}
	if len(o.Endpoints) == 0 {
		return nil, errors.New("create etcd client: no endpoints (set etcd3.hosts)")
	}
	if !strings.HasPrefix(o.Prefix, "/") || !strings.HasSuffix(o.Prefix, "/") || len(o.Prefix) < 2 {
		return nil, fmt.Errorf("create etcd client: prefix %q must start and end with \"/\" (\"/service/<scope>/\")", o.Prefix)
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	if o.WatchProgressInterval <= 0 {
		o.WatchProgressInterval = DefaultWatchProgressInterval
	}
	if o.Clock == nil {
		o.Clock = clock.System{}
	}
	cfg := clientv3.Config{
		Endpoints:   o.Endpoints,
		DialTimeout: o.DialTimeout,
		// Ping an idle connection so a silently dead peer (partition, no
		// RST) is noticed; 10s is gRPC's client minimum and above etcd's
		// default --grpc-keepalive-min-time (5s).
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: o.DialTimeout,
		TLS:                  o.TLS,
		Username:             o.Username,
		Password:             o.Password,
		// A read answered "no leader" is retried once per endpoint (round
		// robin), so a partitioned member does not hide a healthy quorum, and
		// the caller still hears ErrNoQuorum instead of a timeout when every
		// member is cut off.
		MaxUnaryRetries: uint(len(o.Endpoints)),
		Logger:          zap.New(zapCore{log: o.Log.With().Str("source", "etcd-client").Logger()}),
		DialOptions: []grpc.DialOption{
			// gRPC's default reconnect backoff grows to 120s, far longer than
			// any lease: cap it so a restarted etcd is found within 2s.
			grpc.WithConnectParams(grpc.ConnectParams{
				Backoff: backoff.Config{
					BaseDelay:  100 * time.Millisecond,
					Multiplier: 1.6,
					Jitter:     0.2,
					MaxDelay:   2 * time.Second,
				},
				MinConnectTimeout: o.DialTimeout,
			}),
		},
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("create etcd client for %s: %w", strings.Join(o.Endpoints, ","), translate(err))
	}
	c := &Client{
		cli:              cli,
		prefix:           o.Prefix,
		reqTimeout:       o.RequestTimeout,
		progressInterval: o.WatchProgressInterval,
		log:              o.Log,
		clock:            o.Clock,
	}
	cli.KV = recordingKV{cli.KV, c}
	return c, nil
}

// Close closes the connections and ends every Watch (their channels close).
// Requests still running fail. It does not revoke leases: keys on them live
// until the TTL runs out. It blocks until the etcd client's goroutines stop.
func (c *Client) Close() error {
	if err := c.cli.Close(); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("close etcd client: %w", err)
	}
	return nil
}

// Key returns Prefix+name, for example Key("leader") or Key("members/node1").
// It never blocks.
func (c *Client) Key(name string) string { return c.prefix + name }

// Prefix returns the cluster prefix, "/<namespace>/<scope>/". It never
// blocks.
func (c *Client) Prefix() string { return c.prefix }

// Clock returns the validity clock the client uses. It never blocks.
func (c *Client) Clock() clock.Clock { return c.clock }

// reqCtx bounds one request by RequestTimeout (or the caller's earlier
// deadline) and asks the etcd member to refuse it when it has no leader.
func (c *Client) reqCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, c.reqTimeout)
	return clientv3.WithRequireLeader(ctx), cancel
}

// Wrote returns the highest etcd revision any write of this Client has
// returned (0 if none): a View that reached it reflects them all. It never
// blocks.
func (c *Client) Wrote() int64 { return c.wrote.Load() }

func (c *Client) recordWrite(h *pb.ResponseHeader) {
	if h == nil {
		return
	}
	for {
		cur := c.wrote.Load()
		if h.Revision <= cur || c.wrote.CompareAndSwap(cur, h.Revision) {
			return
		}
	}
}

// recordingKV notes the revision of every write (Wrote).
type recordingKV struct {
	clientv3.KV
	c *Client
}

func (k recordingKV) Put(ctx context.Context, key, val string, opts ...clientv3.OpOption) (*clientv3.PutResponse, error) {
	r, err := k.KV.Put(ctx, key, val, opts...)
	if err == nil {
		k.c.recordWrite(r.Header)
	}
	return r, err
}

func (k recordingKV) Delete(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.DeleteResponse, error) {
	r, err := k.KV.Delete(ctx, key, opts...)
	if err == nil {
		k.c.recordWrite(r.Header)
	}
	return r, err
}

func (k recordingKV) Txn(ctx context.Context) clientv3.Txn { return recordingTxn{k.KV.Txn(ctx), k.c} }

type recordingTxn struct {
	clientv3.Txn
	c *Client
}

func (t recordingTxn) If(cs ...clientv3.Cmp) clientv3.Txn { return recordingTxn{t.Txn.If(cs...), t.c} }
func (t recordingTxn) Then(ops ...clientv3.Op) clientv3.Txn {
	return recordingTxn{t.Txn.Then(ops...), t.c}
}
func (t recordingTxn) Else(ops ...clientv3.Op) clientv3.Txn {
	return recordingTxn{t.Txn.Else(ops...), t.c}
}

func (t recordingTxn) Commit() (*clientv3.TxnResponse, error) {
	r, err := t.Txn.Commit()
	if err == nil {
		t.c.recordWrite(r.Header)
	}
	return r, err
}
