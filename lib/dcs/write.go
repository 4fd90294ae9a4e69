package dcs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// PutMember writes members/<name> as compact JSON on lease (0 for no lease),
// like Patroni's touch_member. It blocks for one request (ctx,
// RequestTimeout). Errors: ErrLeaseNotFound (lease gone: grant a new one),
// ErrNoQuorum, context or transport errors, wrapped.
func (c *Client) PutMember(ctx context.Context, name string, d MemberData, lease int64) error {
	key := c.Key("members/" + name)
	if name == "" || strings.Contains(name, "/") {
		return fmt.Errorf("put member %s: invalid member name %q", key, name)
	}
	b, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("put member %s: %w", key, err)
	}
	rctx, cancel := c.reqCtx(ctx)
	defer cancel()
	if _, err := c.cli.Put(rctx, key, string(b), clientv3.WithLease(clientv3.LeaseID(lease))); err != nil {
		return fmt.Errorf("put member %s: %w", key, translate(err))
	}
	return nil
}

// DeleteMember deletes members/<name>; deleting an absent key is not an
// error. It blocks for one request (ctx, RequestTimeout). Errors:
// ErrNoQuorum, context or transport errors, wrapped.
func (c *Client) DeleteMember(ctx context.Context, name string) error {
	key := c.Key("members/" + name)
	if name == "" || strings.Contains(name, "/") {
		return fmt.Errorf("delete member %s: invalid member name %q", key, name)
	}
	return c.del(ctx, "delete member", key)
}

// Initialize races for the initialize key: it creates it with sysid ("" while
// the bootstrap is still running) only if it does not exist. It blocks for
// one request (ctx, RequestTimeout). Outcomes: won=true (this node bootstraps
// the cluster), won=false (the key already existed), or an error
// (ErrNoQuorum, context, transport; unknown whether created).
func (c *Client) Initialize(ctx context.Context, sysid string) (won bool, err error) {
	key := c.Key("initialize")
	rctx, cancel := c.reqCtx(ctx)
	defer cancel()
	resp, err := c.cli.Txn(rctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, sysid)).
		Commit()
	if err != nil {
		return false, fmt.Errorf("initialize %s: %w", key, translate(err))
	}
	return resp.Succeeded, nil
}

// SetInitialize overwrites the initialize key with the system identifier once
// the bootstrap that won Initialize has produced one (Patroni's
// initialize(create_new=False)). It blocks for one request (ctx,
// RequestTimeout). Errors: ErrNoQuorum, context or transport errors.
func (c *Client) SetInitialize(ctx context.Context, sysid string) error {
	return c.put(ctx, "set initialize", c.Key("initialize"), sysid)
}

// CancelInitialize deletes the initialize key only if it still holds sysid,
// so a failed bootstrap lets another node try; a key that is already gone is
// not an error. It blocks for one request (ctx, RequestTimeout). Errors:
// ErrConflict (the key holds another value: left alone), ErrNoQuorum,
// context or transport errors.
func (c *Client) CancelInitialize(ctx context.Context, sysid string) error {
	key := c.Key("initialize")
	rctx, cancel := c.reqCtx(ctx)
	defer cancel()
	resp, err := c.cli.Txn(rctx).
		If(clientv3.Compare(clientv3.Value(key), "=", sysid)).
		Then(clientv3.OpDelete(key)).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return fmt.Errorf("cancel initialize %s: %w", key, translate(err))
	}
	if resp.Succeeded {
		return nil
	}
	if rr := resp.Responses[0].GetResponseRange(); rr != nil && len(rr.Kvs) > 0 {
		return fmt.Errorf("cancel initialize %s: %w: it holds %q, not %q", key, ErrConflict, rr.Kvs[0].Value, sysid)
	}
	return nil
}

// PutConfigIfAbsent writes the dynamic configuration (a JSON object) only if
// the config key does not exist, as a bootstrap does with bootstrap.dcs; an
// existing key is left alone and is not an error. It blocks for one request
// (ctx, RequestTimeout). Errors: invalid JSON, ErrNoQuorum, context or
// transport errors.
func (c *Client) PutConfigIfAbsent(ctx context.Context, raw []byte) error {
	err := c.PutConfig(ctx, raw, 0)
	if errors.Is(err, ErrConflict) {
		return nil
	}
	return err
}

// PutConfig writes the dynamic configuration (a JSON object, stored compact)
// if the config key's mod revision is still modRev (Cluster.ConfigRev); 0
// means the key must not exist, -1 writes unconditionally. It blocks for one
// request (ctx, RequestTimeout). Errors: invalid JSON, ErrConflict (someone
// changed it first: re-read), ErrNoQuorum, context or transport errors.
func (c *Client) PutConfig(ctx context.Context, raw []byte, modRev int64) error {
	key := c.Key("config")
	if err := checkObject(raw); err != nil {
		return fmt.Errorf("put config %s: %w", key, err)
	}
	v, err := compactJSON(raw)
	if err != nil {
		return fmt.Errorf("put config %s: %w", key, err)
	}
	return c.casPut(ctx, "put config", key, v, modRev)
}

// SetFailover writes the failover key if its mod revision is still modRev
// (Cluster.FailoverRev); 0 means it must not exist, -1 writes
// unconditionally. It blocks for one request (ctx, RequestTimeout). Errors:
// ErrConflict, ErrNoQuorum, context or transport errors.
func (c *Client) SetFailover(ctx context.Context, f Failover, modRev int64) error {
	key := c.Key("failover")
	b, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("set failover %s: %w", key, err)
	}
	return c.casPut(ctx, "set failover", key, string(b), modRev)
}

// DeleteFailover deletes the failover key; an absent key is not an error. It
// blocks for one request (ctx, RequestTimeout). Errors: ErrNoQuorum, context
// or transport errors.
func (c *Client) DeleteFailover(ctx context.Context) error {
	return c.del(ctx, "delete failover", c.Key("failover"))
}

// DeleteFailoverAt deletes the failover key only if its mod revision is
// still modRev (Cluster.FailoverRev), so that a request written meanwhile is
// not lost; an absent key is not an error. It blocks for one request (ctx,
// RequestTimeout). Errors: ErrConflict (the key changed: re-read),
// ErrNoQuorum, context or transport errors.
func (c *Client) DeleteFailoverAt(ctx context.Context, modRev int64) error {
	key := c.Key("failover")
	rctx, cancel := c.reqCtx(ctx)
	defer cancel()
	resp, err := c.cli.Txn(rctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", modRev)).
		Then(clientv3.OpDelete(key)).
		Else(clientv3.OpGet(key, clientv3.WithCountOnly())).
		Commit()
	if err != nil {
		return fmt.Errorf("delete failover %s: %w", key, translate(err))
	}
	if !resp.Succeeded {
		if rr := resp.Responses[0].GetResponseRange(); rr != nil && rr.Count > 0 {
			return fmt.Errorf("delete failover %s at mod revision %d: %w", key, modRev, ErrConflict)
		}
	}
	return nil
}

// OpPutStatus returns the put of the status key, for LeaderTxn or
// ReleaseLeader. It never blocks.
func OpPutStatus(c *Client, s Status) clientv3.Op {
	return clientv3.OpPut(c.Key("status"), mustJSON(s))
}

// OpPutHistory returns the put of the history key (an array of arrays), for
// LeaderTxn. It never blocks.
func OpPutHistory(c *Client, h []HistoryEntry) clientv3.Op {
	if h == nil {
		h = []HistoryEntry{}
	}
	return clientv3.OpPut(c.Key("history"), mustJSON(h))
}

// OpDeleteFailover returns the delete of the failover key, for LeaderTxn or
// ReleaseLeader. It never blocks.
func OpDeleteFailover(c *Client) clientv3.Op { return clientv3.OpDelete(c.Key("failover")) }

// OpPutSync returns the put of the sync key, for LeaderTxn. It never blocks.
func OpPutSync(c *Client, s SyncKey) clientv3.Op {
	return clientv3.OpPut(c.Key("sync"), mustJSON(s))
}

// OpDeleteSync returns the delete of the sync key, for LeaderTxn. It never
// blocks.
func OpDeleteSync(c *Client) clientv3.Op { return clientv3.OpDelete(c.Key("sync")) }

// OpPutFailsafe returns the put of the failsafe key (member name →
// api_url), for LeaderTxn. It never blocks.
func OpPutFailsafe(c *Client, f map[string]string) clientv3.Op {
	if f == nil {
		f = map[string]string{}
	}
	return clientv3.OpPut(c.Key("failsafe"), mustJSON(f))
}

// OpDeleteFailsafe returns the delete of the failsafe key, for LeaderTxn.
// It never blocks.
func OpDeleteFailsafe(c *Client) clientv3.Op { return clientv3.OpDelete(c.Key("failsafe")) }

// mustJSON encodes values whose types cannot fail to encode.
func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic("dcs: encode " + fmt.Sprintf("%T", v) + ": " + err.Error())
	}
	return string(b)
}

func compactJSON(raw []byte) (string, error) {
	var v json.RawMessage
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", err
	}
	b, err := json.Marshal(v) // RawMessage is compacted when marshalled
	return string(b), err
}

func (c *Client) casPut(ctx context.Context, op, key, val string, modRev int64) error {
	rctx, cancel := c.reqCtx(ctx)
	defer cancel()
	if modRev < 0 {
		if _, err := c.cli.Put(rctx, key, val); err != nil {
			return fmt.Errorf("%s %s: %w", op, key, translate(err))
		}
		return nil
	}
	cmp := clientv3.Compare(clientv3.ModRevision(key), "=", modRev)
	if modRev == 0 {
		cmp = clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
	}
	resp, err := c.cli.Txn(rctx).If(cmp).Then(clientv3.OpPut(key, val)).Commit()
	if err != nil {
		return fmt.Errorf("%s %s: %w", op, key, translate(err))
	}
	if !resp.Succeeded {
		return fmt.Errorf("%s %s at mod revision %d: %w", op, key, modRev, ErrConflict)
	}
	return nil
}

func (c *Client) put(ctx context.Context, op, key, val string) error {
	rctx, cancel := c.reqCtx(ctx)
	defer cancel()
	if _, err := c.cli.Put(rctx, key, val); err != nil {
		return fmt.Errorf("%s %s: %w", op, key, translate(err))
	}
	return nil
}

func (c *Client) del(ctx context.Context, op, key string) error {
	rctx, cancel := c.reqCtx(ctx)
	defer cancel()
	if _, err := c.cli.Delete(rctx, key); err != nil {
		return fmt.Errorf("%s %s: %w", op, key, translate(err))
	}
	return nil
}
