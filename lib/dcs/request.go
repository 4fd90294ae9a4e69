package dcs

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Request actions a member carries out for an operator.
const (
	// ActionRestart restarts the member's PostgreSQL in place.
	ActionRestart = "restart"
	// ActionReinit rebuilds a replica from the leader.
	ActionReinit = "reinit"
	// ActionReload makes the member's daemons read their YAML again and
	// reload PostgreSQL's configuration.
	ActionReload = "reload"
)

// NodeRequest is the value of requests/<member>: an operator's request,
// written by pg-failover and carried out by that member's pg-lockd, which
// deletes the key when done. Patroni has no such key and ignores it.
type NodeRequest struct {
	Action      string    `json:"action"`
	ID          string    `json:"id"`
	RequestedAt time.Time `json:"requested_at"`
	// Error is set by the member when the request could not be carried out;
	// the key then stays until the operator's tool reads and deletes it.
	Error string `json:"error,omitempty"`
	// ModRevision of the key when read.
	ModRevision int64 `json:"-"`
}

func (c *Client) requestKey(member string) (string, error) {
	if member == "" || strings.Contains(member, "/") {
		return "", fmt.Errorf("invalid member name %q", member)
	}
	return c.Key("requests/" + member), nil
}

// PutRequest writes a request for member unless one is pending
// (ErrConflict). It blocks for one request (ctx, RequestTimeout).
func (c *Client) PutRequest(ctx context.Context, member string, r NodeRequest) error {
	key, err := c.requestKey(member)
	if err != nil {
		return err
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return c.casPut(ctx, "put request", key, string(b), 0)
}

// FinishRequest deletes member's request if it is still the one read at
// modRev, or, with errText, records why it failed. It blocks for one request
// (ctx, RequestTimeout); ErrConflict if the key changed meanwhile.
func (c *Client) FinishRequest(ctx context.Context, member string, r NodeRequest, errText string) error {
	key, err := c.requestKey(member)
	if err != nil {
		return err
	}
	rctx, cancel := c.reqCtx(ctx)
	defer cancel()
	op := clientv3.OpDelete(key)
	if errText != "" {
		r.Error = errText
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		op = clientv3.OpPut(key, string(b))
	}
	resp, err := c.cli.Txn(rctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", r.ModRevision)).Then(op).Commit()
	if err != nil {
		return fmt.Errorf("finish request %s: %w", key, translate(err))
	}
	if !resp.Succeeded {
		return fmt.Errorf("finish request %s: %w", key, ErrConflict)
	}
	return nil
}

// DeleteRequest removes member's request, whatever it holds.
func (c *Client) DeleteRequest(ctx context.Context, member string) error {
	key, err := c.requestKey(member)
	if err != nil {
		return err
	}
	return c.del(ctx, "delete request", key)
}
