package dcs

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// AcquireLeader creates the leader key with value name on lease, if no
// leader key exists, exactly like Patroni (the key dies with the lease). It
// then reads the key back and checks value, lease and revision before
// returning the fencing token: the revision at which the key was created.
//
// It blocks for two requests (the transaction and the read-back), each
// bounded by RequestTimeout and cancelled with ctx. Outcomes:
//   - token > 0, nil: this member holds the key.
//   - ErrLeaderExists (the message names the holder): someone holds it.
//   - ErrLeaseNotFound: lease is gone; grant a new one.
//   - ErrNotLeader: the key was created but had already changed when read
//     back (the lease expired in between).
//   - ErrNoQuorum, context or transport errors: the outcome is unknown. The
//     key may exist on this lease; Get shows it (Leader.Lease == lease) and
//     Leader.ModRevision is then the token.
func (c *Client) AcquireLeader(ctx context.Context, name string, lease int64) (token int64, err error) {
	key := c.Key("leader")
	if name == "" {
		return 0, fmt.Errorf("acquire leader key %s: empty member name", key)
	}
	rctx, cancel := c.reqCtx(ctx)
	defer cancel()
	resp, err := c.cli.Txn(rctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, name, clientv3.WithLease(clientv3.LeaseID(lease)))).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return 0, fmt.Errorf("acquire leader key %s: %w", key, translate(err))
	}
	if !resp.Succeeded {
		holder := "?"
		if rr := resp.Responses[0].GetResponseRange(); rr != nil && len(rr.Kvs) > 0 {
			holder = string(rr.Kvs[0].Value)
		}
		return 0, fmt.Errorf("acquire leader key %s: %w (held by %q)", key, ErrLeaderExists, holder)
	}
	token = resp.Header.Revision

	// Never trust a won race blindly: read the key back.
	vctx, vcancel := c.reqCtx(ctx)
	defer vcancel()
	got, err := c.cli.Get(vctx, key)
	if err != nil {
		return 0, fmt.Errorf("acquire leader key %s: verify at revision %d: %w", key, token, translate(err))
	}
	if len(got.Kvs) == 0 {
		return 0, fmt.Errorf("acquire leader key %s: %w: key gone right after it was created at revision %d", key, ErrNotLeader, token)
	}
	kv := got.Kvs[0]
	if string(kv.Value) != name || kv.Lease != lease || kv.CreateRevision != token || kv.ModRevision != token {
		return 0, fmt.Errorf("acquire leader key %s: %w: created at revision %d but now holds %q on lease %x (create %d, mod %d)",
			key, ErrNotLeader, token, kv.Value, kv.Lease, kv.CreateRevision, kv.ModRevision)
	}
	c.log.Info().Str("member", name).Int64("lease_id", lease).Int64("token", token).Msg("leader key acquired")
	return token, nil
}

// leaderIs is the fencing comparison: the leader key was created with the
// token (its create revision) and has not been rewritten since (its mod
// revision). A token of 0 would match an absent key, so callers refuse it.
func (c *Client) leaderIs(token int64) []clientv3.Cmp {
	key := c.Key("leader")
	return []clientv3.Cmp{
		clientv3.Compare(clientv3.CreateRevision(key), "=", token),
		clientv3.Compare(clientv3.ModRevision(key), "=", token),
	}
}

// LeaderTxn applies ops atomically only while the leader key is still the one
// the fencing token names; with no ops it is a linearizable check that the
// token is still valid. ops must not touch the leader key itself. It blocks
// for one request (ctx, RequestTimeout). Outcomes: nil (applied),
// ErrNotLeader (nothing applied), ErrLeaseNotFound (an op's lease is gone,
// nothing applied), ErrNoQuorum, context or transport errors (unknown
// whether applied).
func (c *Client) LeaderTxn(ctx context.Context, token int64, ops ...clientv3.Op) error {
	key := c.Key("leader")
	if token <= 0 {
		return fmt.Errorf("leader transaction on %s: %w: no token", key, ErrNotLeader)
	}
	rctx, cancel := c.reqCtx(ctx)
	defer cancel()
	resp, err := c.cli.Txn(rctx).If(c.leaderIs(token)...).Then(ops...).Commit()
	if err != nil {
		return fmt.Errorf("leader transaction on %s with token %d: %w", key, token, translate(err))
	}
	if !resp.Succeeded {
		return fmt.Errorf("leader transaction on %s with token %d: %w", key, token, ErrNotLeader)
	}
	return nil
}

// ReleaseLeader deletes the leader key, together with ops in the same
// transaction (for example OpPutStatus with the last LSN), only if the key
// still carries the token; a newer holder's key is never touched. Call it
// only once the local PostgreSQL no longer accepts writes. It blocks for one
// request (ctx, RequestTimeout). Outcomes: nil (released), ErrNotLeader
// (someone else holds it or nobody does; nothing applied), ErrNoQuorum,
// context or transport errors (unknown; the key expires with the lease
// anyway).
func (c *Client) ReleaseLeader(ctx context.Context, token int64, ops ...clientv3.Op) error {
	key := c.Key("leader")
	if token <= 0 {
		return fmt.Errorf("release leader key %s: %w: no token", key, ErrNotLeader)
	}
	rctx, cancel := c.reqCtx(ctx)
	defer cancel()
	then := append([]clientv3.Op{clientv3.OpDelete(key)}, ops...)
	resp, err := c.cli.Txn(rctx).If(c.leaderIs(token)...).Then(then...).Commit()
	if err != nil {
		return fmt.Errorf("release leader key %s with token %d: %w", key, token, translate(err))
	}
	if !resp.Succeeded {
		return fmt.Errorf("release leader key %s with token %d: %w", key, token, ErrNotLeader)
	}
	c.log.Info().Int64("token", token).Msg("leader key released")
	return nil
}
