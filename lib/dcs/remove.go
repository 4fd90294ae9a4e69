package dcs

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// DeleteCluster deletes every key under the cluster's prefix, like
// patronictl remove: the leader, members, config, initialize, history and
// the rest. With noLeader it deletes only if no leader key exists at that
// moment (ErrConflict otherwise), so a leader elected between the
// operator's read and the delete is never wiped. It returns how many keys
// were deleted. It blocks for one request (ctx, RequestTimeout).
func (c *Client) DeleteCluster(ctx context.Context, noLeader bool) (int64, error) {
	rctx, cancel := c.reqCtx(ctx)
	defer cancel()
	del := clientv3.OpDelete(c.prefix, clientv3.WithPrefix())
	txn := c.cli.Txn(rctx)
	if noLeader {
		txn = txn.If(clientv3.Compare(clientv3.CreateRevision(c.Key("leader")), "=", 0))
	}
	resp, err := txn.Then(del).Commit()
	if err != nil {
		return 0, fmt.Errorf("delete cluster %s: %w", c.prefix, translate(err))
	}
	if !resp.Succeeded {
		return 0, fmt.Errorf("delete cluster %s: a leader key appeared: %w", c.prefix, ErrConflict)
	}
	return resp.Responses[0].GetResponseDeleteRange().Deleted, nil
}
