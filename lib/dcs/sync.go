package dcs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// SyncKey is the sync key with every field Patroni 4 writes: the primary
// that manages synchronous replication, its synchronous standbys (in
// quorum mode, the voters) and, in quorum mode, how many of leader and
// voters a candidate must see before it may promote. A key with no leader
// is empty: synchronous replication is not active.
type SyncKey struct {
	Leader   string
	Standbys []string
	Quorum   int
	// ModRevision is the key's mod revision when read (0: absent), for
	// PutSync and DeleteSync.
	ModRevision int64
}

// Empty reports whether the key names no leader.
func (k SyncKey) Empty() bool { return k.Leader == "" }

// MarshalJSON writes Patroni's form: {"leader":…,"quorum":…,"sync_standby":…}
// with the standbys sorted and comma-separated, null when there are none.
func (k SyncKey) MarshalJSON() ([]byte, error) {
	aux := struct {
		Leader      string  `json:"leader"`
		Quorum      int     `json:"quorum"`
		SyncStandby *string `json:"sync_standby"`
	}{Leader: k.Leader, Quorum: k.Quorum}
	if len(k.Standbys) > 0 {
		s := slices.Clone(k.Standbys)
		slices.Sort(s)
		joined := strings.Join(s, ",")
		aux.SyncStandby = &joined
	}
	return json.Marshal(aux)
}

// ParseSyncKey reads a sync key value as Patroni does, tolerating the
// field types its versions and other tools write: sync_standby as a
// comma-separated string (spaces and empty items ignored), a JSON array of
// names, or null; quorum as a number, a numeric string, a boolean or null;
// leader as a string or null. A quorum counts only with a leader. On a
// value that is not such a JSON object it returns the empty key and an
// error naming what is wrong; Patroni treats such a key as empty too. It
// never blocks.
func ParseSyncKey(raw []byte) (SyncKey, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return SyncKey{}, fmt.Errorf("sync key %.80q: not a JSON object", raw)
	}
	var k SyncKey
	if v, ok := m["leader"]; ok && !isNull(v) {
		if err := json.Unmarshal(v, &k.Leader); err != nil {
			return SyncKey{}, fmt.Errorf("sync key: leader %s: want a member name", v)
		}
	}
	if v, ok := m["sync_standby"]; ok && !isNull(v) {
		var s string
		var list []string
		switch {
		case json.Unmarshal(v, &s) == nil:
			list = strings.Split(s, ",")
		case json.Unmarshal(v, &list) == nil:
		default:
			return SyncKey{}, fmt.Errorf("sync key: sync_standby %s: want comma-separated member names", v)
		}
		for _, n := range list {
			if n = strings.TrimSpace(n); n != "" {
				k.Standbys = append(k.Standbys, n)
			}
		}
	}
	if v, ok := m["quorum"]; ok && !isNull(v) {
		q, err := jsonQuorum(v)
		if err != nil {
			return SyncKey{}, fmt.Errorf("sync key: quorum %s: %w", v, err)
		}
		k.Quorum = q
	}
	if k.Leader == "" {
		return SyncKey{}, nil
	}
	return k, nil
}

func isNull(v json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(v), []byte("null")) }

// jsonQuorum reads quorum as Python's int() would: an integer, a float
// (truncated), a boolean, or a string holding an integer.
func jsonQuorum(v json.RawMessage) (int, error) {
	var b bool
	if json.Unmarshal(v, &b) == nil {
		if b {
			return 1, nil
		}
		return 0, nil
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return 0, errors.New("want an integer")
		}
		if n < 0 {
			return 0, errors.New("want 0 or more")
		}
		return n, nil
	}
	var f float64
	if err := json.Unmarshal(v, &f); err != nil || math.IsNaN(f) || f < 0 || f > math.MaxInt32 {
		return 0, errors.New("want an integer, 0 or more")
	}
	return int(f), nil
}

// GetSync reads the sync key. An absent key gives the empty SyncKey with
// ModRevision 0. It blocks for one linearizable request (ctx,
// RequestTimeout). Errors: an unreadable value (the returned key is then
// empty but carries the ModRevision, so a leader can overwrite it),
// ErrNoQuorum, context or transport errors, wrapped.
func (c *Client) GetSync(ctx context.Context) (SyncKey, error) {
	key := c.Key("sync")
	rctx, cancel := c.reqCtx(ctx)
	defer cancel()
	resp, err := c.cli.Get(rctx, key)
	if err != nil {
		return SyncKey{}, fmt.Errorf("read sync key %s: %w", key, translate(err))
	}
	if len(resp.Kvs) == 0 {
		return SyncKey{}, nil
	}
	kv := resp.Kvs[0]
	k, err := ParseSyncKey(kv.Value)
	k.ModRevision = kv.ModRevision
	if err != nil {
		return k, fmt.Errorf("read sync key %s: %w", key, err)
	}
	return k, nil
}

// PutSync writes the sync key (ModRevision ignored) only while the leader
// key still carries the fencing token and the sync key's mod revision is
// still modRev: 0 means the key must be absent, -1 skips that check. It
// blocks for one request (ctx, RequestTimeout). Outcomes: nil (written),
// ErrNotLeader (the token is stale; nothing written), ErrConflict (someone
// changed the sync key since it was read; nothing written, re-read),
// ErrNoQuorum, context or transport errors (unknown whether written).
func (c *Client) PutSync(ctx context.Context, token int64, k SyncKey, modRev int64) error {
	if k.Leader == "" {
		return fmt.Errorf("put sync key %s: no leader named (use DeleteSync to disable synchronous replication)", c.Key("sync"))
	}
	b, err := json.Marshal(k)
	if err != nil {
		return fmt.Errorf("put sync key %s: %w", c.Key("sync"), err)
	}
	return c.syncTxn(ctx, "put sync key", token, modRev, clientv3.OpPut(c.Key("sync"), string(b)))
}

// DeleteSync deletes the sync key, as a primary does when synchronous_mode
// is turned off, under the same guards as PutSync; deleting an absent key
// with modRev -1 is not an error. It blocks for one request (ctx,
// RequestTimeout). Outcomes as for PutSync.
func (c *Client) DeleteSync(ctx context.Context, token int64, modRev int64) error {
	return c.syncTxn(ctx, "delete sync key", token, modRev, clientv3.OpDelete(c.Key("sync")))
}

func (c *Client) syncTxn(ctx context.Context, op string, token, modRev int64, write clientv3.Op) error {
	key, leaderKey := c.Key("sync"), c.Key("leader")
	if token <= 0 {
		return fmt.Errorf("%s %s: %w: no token", op, key, ErrNotLeader)
	}
	cmps := c.leaderIs(token)
	switch {
	case modRev == 0:
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(key), "=", 0))
	case modRev > 0:
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(key), "=", modRev))
	}
	rctx, cancel := c.reqCtx(ctx)
	defer cancel()
	resp, err := c.cli.Txn(rctx).If(cmps...).Then(write).Else(clientv3.OpGet(leaderKey)).Commit()
	if err != nil {
		return fmt.Errorf("%s %s with token %d: %w", op, key, token, translate(err))
	}
	if resp.Succeeded {
		return nil
	}
	// Tell a stale token from a changed sync key.
	if rr := resp.Responses[0].GetResponseRange(); rr != nil && len(rr.Kvs) > 0 {
		if kv := rr.Kvs[0]; kv.CreateRevision == token && kv.ModRevision == token {
			return fmt.Errorf("%s %s at mod revision %d: %w", op, key, modRev, ErrConflict)
		}
	}
	return fmt.Errorf("%s %s with token %d: %w", op, key, token, ErrNotLeader)
}
