package dcs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/rs/zerolog"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Cluster is everything under the prefix, read at one revision.
type Cluster struct {
	// Revision is the etcd revision of the read; watch from it.
	Revision int64
	// Initialize is the initialize key (the system identifier, or "" while
	// a bootstrap is in progress); InitializeSet tells "" from absent.
	Initialize    string
	InitializeSet bool
	// Config is the raw dynamic configuration JSON, nil if absent or not a
	// JSON object; ConfigRev is the key's mod revision (0 if absent), for
	// PutConfig.
	Config    []byte
	ConfigRev int64
	// Leader is the leader key, nil if nobody holds it.
	Leader *Leader
	// Members are the members/<name> keys, sorted by name.
	Members []Member
	// Failover is the failover key, nil if absent or unreadable;
	// FailoverRev is its mod revision (0 if absent), for SetFailover.
	Failover    *Failover
	FailoverRev int64
	// Sync is the sync key, nil if absent or unreadable; SyncRev is its mod
	// revision (0 if absent).
	Sync    *SyncKey
	SyncRev int64
	// History is the history key's lines, nil if absent or unreadable.
	History []HistoryEntry
	// Status is the status key, or the legacy optime/leader when status is
	// absent; zero if neither is readable.
	Status Status
	// Failsafe is the failsafe key (member name → api_url), nil if absent.
	Failsafe map[string]string
	// Requests are the pending requests/<member> keys (a pg-ha extension
	// Patroni ignores), by member name.
	Requests map[string]NodeRequest
}

// Leader is the leader key.
type Leader struct {
	// Name is the holder's member name (the key's value).
	Name string
	// Lease is the holder's lease ID.
	Lease int64
	// CreateRevision is when the key was created: the holder's fencing
	// token. ModRevision is when it was last written; it equals
	// CreateRevision unless someone rewrote the key in place, which voids
	// the token.
	CreateRevision, ModRevision int64
}

// Member is one members/<name> key.
type Member struct {
	Name        string
	Lease       int64
	ModRevision int64
	// Data is the parsed value; zero if it could not be parsed (the member is
	// still listed: its key exists and is alive).
	Data MemberData
	// Raw is the value as stored.
	Raw []byte
}

// Member returns the member called name, or nil. It never blocks.
func (cl *Cluster) Member(name string) *Member {
	i := sort.Search(len(cl.Members), func(i int) bool { return cl.Members[i].Name >= name })
	if i < len(cl.Members) && cl.Members[i].Name == name {
		return &cl.Members[i]
	}
	return nil
}

// Get reads every key under the prefix in one linearizable range request
// and parses it. It blocks for that request (ctx, RequestTimeout). A key
// whose value cannot be parsed is logged and its field left empty; it never
// fails the read. Errors: ErrNoQuorum, context or transport errors, wrapped.
func (c *Client) Get(ctx context.Context) (*Cluster, error) {
	rctx, cancel := c.reqCtx(ctx)
	defer cancel()
	resp, err := c.cli.Get(rctx, c.prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("read cluster %s: %w", c.prefix, translate(err))
	}
	return parseCluster(c.log, c.prefix, resp.Header.Revision, resp.Kvs), nil
}

// parseCluster builds a Cluster from the keys under prefix.
func parseCluster(log zerolog.Logger, prefix string, rev int64, kvs []*mvccpb.KeyValue) *Cluster {
	cl := &Cluster{Revision: rev}
	var legacyOptime []byte
	statusSet := false
	bad := func(kv *mvccpb.KeyValue, err error) {
		log.Warn().Str("key", string(kv.Key)).Int64("mod_revision", kv.ModRevision).Err(err).Msg("ignoring unreadable value")
	}
	for _, kv := range kvs {
		name, ok := strings.CutPrefix(string(kv.Key), prefix)
		if !ok {
			continue
		}
		switch name {
		case "initialize":
			cl.Initialize, cl.InitializeSet = string(kv.Value), true
		case "config":
			cl.ConfigRev = kv.ModRevision
			if err := checkObject(kv.Value); err != nil {
				bad(kv, err)
				continue
			}
			cl.Config = bytes.Clone(kv.Value)
		case "leader":
			cl.Leader = &Leader{Name: string(kv.Value), Lease: kv.Lease, CreateRevision: kv.CreateRevision, ModRevision: kv.ModRevision}
		case "failover":
			cl.FailoverRev = kv.ModRevision
			f, err := parseFailoverValue(kv.Value)
			if err != nil {
				bad(kv, err)
				continue
			}
			cl.Failover = &f
		case "sync":
			cl.SyncRev = kv.ModRevision
			s, err := ParseSyncKey(kv.Value)
			if err != nil {
				bad(kv, err)
				continue
			}
			s.ModRevision = kv.ModRevision
			cl.Sync = &s
		case "history":
			var h []HistoryEntry
			if err := json.Unmarshal(kv.Value, &h); err != nil {
				bad(kv, err)
				continue
			}
			if h == nil {
				h = []HistoryEntry{}
			}
			cl.History = h
		case "status":
			statusSet = true
			var s Status
			if err := json.Unmarshal(kv.Value, &s); err != nil {
				bad(kv, err)
				continue
			}
			cl.Status = s
		case "optime/leader":
			legacyOptime = kv.Value
		case "failsafe":
			var f map[string]string
			if err := json.Unmarshal(kv.Value, &f); err != nil {
				bad(kv, err)
				continue
			}
			cl.Failsafe = f
		default:
			if rname, ok := strings.CutPrefix(name, "requests/"); ok && rname != "" && !strings.Contains(rname, "/") {
				var r NodeRequest
				if err := json.Unmarshal(kv.Value, &r); err != nil {
					bad(kv, err)
					continue
				}
				r.ModRevision = kv.ModRevision
				if cl.Requests == nil {
					cl.Requests = map[string]NodeRequest{}
				}
				cl.Requests[rname] = r
				continue
			}
			mname, ok := strings.CutPrefix(name, "members/")
			if !ok || mname == "" || strings.Contains(mname, "/") {
				continue
			}
			m := Member{Name: mname, Lease: kv.Lease, ModRevision: kv.ModRevision, Raw: bytes.Clone(kv.Value)}
			d, err := parseMemberValue(kv.Value)
			if err != nil {
				bad(kv, err)
			} else {
				m.Data = d
			}
			cl.Members = append(cl.Members, m)
		}
	}
	if !statusSet && legacyOptime != nil {
		if o, err := parseLegacyOptime(legacyOptime); err != nil {
			log.Warn().Str("key", prefix+"optime/leader").Err(err).Msg("ignoring unreadable value")
		} else {
			cl.Status.Optime = o
		}
	}
	sort.Slice(cl.Members, func(i, j int) bool { return cl.Members[i].Name < cl.Members[j].Name })
	return cl
}

// checkObject reports whether v is a JSON object.
func checkObject(v []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(v, &m); err != nil {
		return err
	}
	if m == nil {
		return fmt.Errorf("not a JSON object: %.40q", v)
	}
	return nil
}
