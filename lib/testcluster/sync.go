package testcluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pg-ha/pg-ha/lib/dcs"
	"github.com/pg-ha/pg-ha/lib/syncrep"
)

// The values of Options.SyncMode.
const (
	SyncOff    = "off"
	SyncOn     = "on"
	SyncQuorum = "quorum"
)

// putSync adds o's synchronous replication settings to bootstrap.dcs, in
// the form Patroni writes them: synchronous_mode as a boolean or "quorum".
func putSync(d map[string]any, o Options) error {
	switch o.SyncMode {
	case "":
	case SyncOn:
		d["synchronous_mode"] = true
	case SyncQuorum:
		d["synchronous_mode"] = "quorum"
	case SyncOff:
		d["synchronous_mode"] = false
	default:
		return fmt.Errorf("Options.SyncMode %q: want %q, %q, %q or empty", o.SyncMode, SyncOn, SyncQuorum, SyncOff)
	}
	if o.SyncStrict {
		d["synchronous_mode_strict"] = true
	}
	if o.SyncNodeCount > 0 {
		d["synchronous_node_count"] = o.SyncNodeCount
	}
	return nil
}

// SyncKey reads /service/<scope>/sync with lib/dcs's parser. An absent
// key, or one naming no leader, is the empty key. It blocks for at most
// 2s; an unreadable value is an error.
func (c *Cluster) SyncKey(ctx context.Context) (dcs.SyncKey, error) {
	raw, err := c.Get(ctx, c.Key("sync"))
	if err != nil || raw == "" {
		return dcs.SyncKey{}, err
	}
	return dcs.ParseSyncKey([]byte(raw))
}

// SyncStandbyNames returns SHOW synchronous_standby_names on the node, as
// text and parsed. It blocks for one connection and query (at most the
// 2s connect timeout plus the query) or until ctx ends.
func (n *Node) SyncStandbyNames(ctx context.Context) (string, syncrep.StandbyNames, error) {
	var raw string
	if err := n.QueryRow(ctx, "SHOW synchronous_standby_names", nil, &raw); err != nil {
		return "", syncrep.StandbyNames{}, err
	}
	parsed, err := syncrep.ParseStandbyNames(raw)
	if err != nil {
		return raw, parsed, fmt.Errorf("%s: synchronous_standby_names %q: %w", n.Name, raw, err)
	}
	return raw, parsed, nil
}

// SyncState is what a test sees of synchronous replication at one moment:
// the sync key and the leader's synchronous_standby_names.
type SyncState struct {
	// Leader is the node the leader key names.
	Leader *Node
	// Key is the sync key (empty when absent).
	Key dcs.SyncKey
	// Names is the leader's synchronous_standby_names as text, Parsed the
	// same parsed.
	Names  string
	Parsed syncrep.StandbyNames
}

func (s SyncState) String() string {
	leader := "(none)"
	if s.Leader != nil {
		leader = s.Leader.Name
	}
	key := "(empty)"
	if !s.Key.Empty() {
		b, _ := json.Marshal(s.Key)
		key = string(b)
	}
	return fmt.Sprintf("leader %s, sync key %s, synchronous_standby_names %q", leader, key, s.Names)
}

// Lists reports whether name is listed as synchronous, in the sync key or
// in the leader's synchronous_standby_names (case-insensitively, as
// PostgreSQL compares names).
func (s SyncState) Lists(name string) bool {
	for _, x := range s.Key.Standbys {
		if strings.EqualFold(x, name) {
			return true
		}
	}
	return s.Parsed.Has(name)
}

// Agrees reports whether the sync key names the leader and exactly the
// standbys its synchronous_standby_names lists, with commits waiting for
// at least one of them.
func (s SyncState) Agrees() bool {
	if s.Leader == nil || s.Key.Leader != s.Leader.Name || len(s.Key.Standbys) == 0 || s.Parsed.Num < 1 ||
		s.Parsed.Star || s.Parsed.Placeholder || len(s.Parsed.Names) != len(s.Key.Standbys) {
		return false
	}
	for _, n := range s.Key.Standbys {
		if !s.Parsed.Has(n) {
			return false
		}
	}
	return true
}

// Sync reads the leader key, the sync key and the leader's
// synchronous_standby_names. It blocks for at most about 6s or until ctx
// ends; it fails when there is no leader or one of them cannot be read.
func (c *Cluster) Sync(ctx context.Context) (SyncState, error) {
	var s SyncState
	name, err := c.Leader(ctx)
	if err != nil {
		return s, err
	}
	if s.Leader = c.Node(name); s.Leader == nil {
		return s, fmt.Errorf("leader key names %q, no node of the cluster", name)
	}
	if s.Key, err = c.SyncKey(ctx); err != nil {
		return s, err
	}
	qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	s.Names, s.Parsed, err = s.Leader.SyncStandbyNames(qctx)
	return s, err
}

// WaitSync polls Sync every 100ms for up to timeout until cond holds and
// returns that state; it fails t with the last state seen (and the last
// error) on timeout.
func (c *Cluster) WaitSync(t testing.TB, timeout time.Duration, what string, cond func(SyncState) bool) SyncState {
	t.Helper()
	s, err := c.SyncWithin(timeout, cond)
	if err != nil {
		t.Fatalf("no %s within %s: %v", what, timeout, err)
	}
	return s
}

// SyncWithin is WaitSync returning an error that describes the last state
// seen instead of failing a test.
func (c *Cluster) SyncWithin(timeout time.Duration, cond func(SyncState) bool) (SyncState, error) {
	deadline := time.Now().Add(timeout)
	for {
		s, err := c.Sync(context.Background())
		if err == nil && cond(s) {
			return s, nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return s, fmt.Errorf("%s (last error: %w)", s, err)
			}
			return s, errors.New(s.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// UpdateConfig changes the config key (the dynamic configuration, a JSON
// object) with edit, as `patronictl edit-config` does: read, edit, write
// back only if nobody wrote it meanwhile, retried a few times on a
// conflict. It blocks for a few etcd requests (2s each at most).
func (c *Cluster) UpdateConfig(ctx context.Context, edit func(cfg map[string]any)) error {
	cli, err := c.etcd()
	if err != nil {
		return err
	}
	key := c.Key("config")
	for range 5 {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		resp, err := cli.Get(clientv3.WithRequireLeader(rctx), key)
		cancel()
		if err != nil {
			c.dropEtcd(cli)
			return fmt.Errorf("etcd get %s: %w", key, err)
		}
		cfg := map[string]any{}
		var rev int64
		if len(resp.Kvs) > 0 {
			rev = resp.Kvs[0].ModRevision
			if err := json.Unmarshal(resp.Kvs[0].Value, &cfg); err != nil {
				return fmt.Errorf("config key %s: %w", key, err)
			}
		}
		edit(cfg)
		b, err := json.Marshal(cfg)
		if err != nil {
			return fmt.Errorf("config key %s: %w", key, err)
		}
		rctx, cancel = context.WithTimeout(ctx, 2*time.Second)
		tr, err := cli.Txn(clientv3.WithRequireLeader(rctx)).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
			Then(clientv3.OpPut(key, string(b))).Commit()
		cancel()
		if err != nil {
			c.dropEtcd(cli)
			return fmt.Errorf("etcd put %s: %w", key, err)
		}
		if tr.Succeeded {
			return nil
		}
	}
	return fmt.Errorf("config key %s: changed by someone else at every one of 5 attempts", key)
}

// WaitPromoted waits up to timeout for the leader key to name a node, not
// one of exclude, whose PostgreSQL answers and is out of recovery, and
// returns it. Unlike WaitPrimary it commits nothing: in strict synchronous
// mode a primary without a standby holds every commit back, yet it is the
// primary. It fails t with the cluster's state on timeout.
func (c *Cluster) WaitPromoted(t testing.TB, timeout time.Duration, exclude ...*Node) *Node {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		n, err := c.promoted(exclude)
		if err == nil {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("no promoted leader within %s: %v", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *Cluster) promoted(exclude []*Node) (*Node, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	name, err := c.Leader(ctx)
	if err != nil {
		return nil, err
	}
	n := c.Node(name)
	if n == nil {
		return nil, fmt.Errorf("leader key %q names no node", name)
	}
	for _, x := range exclude {
		if x == n {
			return nil, fmt.Errorf("leader is still %s (excluded)", name)
		}
	}
	primary, err := n.IsPrimary(ctx)
	if err != nil {
		return nil, fmt.Errorf("leader %s: %w", name, err)
	}
	if !primary {
		return nil, fmt.Errorf("leader %s is still in recovery", name)
	}
	return n, nil
}
