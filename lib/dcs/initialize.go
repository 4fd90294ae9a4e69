package dcs

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// InitializeOnLease races for the initialize key like Initialize, but puts
// it ("" while the bootstrap runs) on lease, so that a bootstrap that dies
// before it finishes gives the key back when the lease expires. It blocks
// for one request (ctx, RequestTimeout). Outcomes: won=true, won=false (the
// key existed), or an error (ErrLeaseNotFound, ErrNoQuorum, context,
// transport; unknown whether created).
func (c *Client) InitializeOnLease(ctx context.Context, lease int64) (won bool, err error) {
	key := c.Key("initialize")
	rctx, cancel := c.reqCtx(ctx)
	defer cancel()
	resp, err := c.cli.Txn(rctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, "", clientv3.WithLease(clientv3.LeaseID(lease)))).
		Commit()
	if err != nil {
		return false, fmt.Errorf("initialize %s: %w", key, translate(err))
	}
	return resp.Succeeded, nil
}

// CompleteInitialize writes the system identifier into the initialize key,
// detached from any lease (permanent), only if the key is still on lease —
// the bootstrap that won InitializeOnLease still owns it. It blocks for one
// request (ctx, RequestTimeout). Errors: ErrConflict (the lease expired and
// the key is gone or another node's), ErrNoQuorum, context or transport
// errors.
func (c *Client) CompleteInitialize(ctx context.Context, sysid string, lease int64) error {
	key := c.Key("initialize")
	rctx, cancel := c.reqCtx(ctx)
	defer cancel()
	resp, err := c.cli.Txn(rctx).
		If(clientv3.Compare(clientv3.LeaseValue(key), "=", clientv3.LeaseID(lease)),
			clientv3.Compare(clientv3.CreateRevision(key), ">", 0)).
		Then(clientv3.OpPut(key, sysid)).
		Commit()
	if err != nil {
		return fmt.Errorf("complete initialize %s: %w", key, translate(err))
	}
	if !resp.Succeeded {
		return fmt.Errorf("complete initialize %s: %w: the key is no longer on lease %x", key, ErrConflict, lease)
	}
	return nil
}
