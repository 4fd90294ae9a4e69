package health

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pg-ha/pg-ha/lib/dcs"
	"github.com/pg-ha/pg-ha/lib/dcs/etcdtest"
)

// putSync writes the sync key in the form pg-lockd writes it
// (dcs.SyncKey's JSON: leader, quorum, sync_standby).
func putSync(t testing.TB, raw *clientv3.Client, c *dcs.Client, leader string, standbys ...string) {
	t.Helper()
	b, err := json.Marshal(dcs.SyncKey{Leader: leader, Standbys: standbys, Quorum: len(standbys)})
	if err != nil {
		t.Fatal(err)
	}
	put(t, raw, c.Key("sync"), string(b))
}

// expect fails t for every path that does not answer its code now.
func expect(t testing.TB, what, url string, want map[string]int) {
	t.Helper()
	for path, code := range want {
		if r := do(t, "GET", url+path); r.code != code {
			t.Errorf("%s: GET %s: %d, want %d; body %s", what, path, r.code, code, r.body)
		}
	}
}

// statusFlag is field of url's /patroni status (nil when absent).
func statusFlag(t testing.TB, url, field string) any {
	t.Helper()
	var st map[string]any
	if err := json.Unmarshal([]byte(do(t, "GET", url+"/patroni").body), &st); err != nil {
		t.Fatal(err)
	}
	return st[field]
}

// clusterRoles are the roles /cluster gives each member.
func clusterRoles(t testing.TB, url string) map[string]string {
	t.Helper()
	var doc struct {
		Members []struct{ Name, Role string }
	}
	if err := json.Unmarshal([]byte(do(t, "GET", url+"/cluster").body), &doc); err != nil {
		t.Fatal(err)
	}
	roles := map[string]string{}
	for _, m := range doc.Members {
		roles[m.Name] = m.Role
	}
	return roles
}

// TestIntegrationSync runs pg-healthd for a real PostgreSQL 15 primary and
// its streaming replica against a real etcd, with the config and sync keys
// written by hand as pg-lockd writes them: the synchronous checks, the
// status fields and /cluster follow each change of synchronous_mode and of
// the sync key as soon as the watch reports it, and a replica listed as
// synchronous stops answering /sync or /quorum once etcd cannot confirm
// the listing, while every request is still answered at once.
func TestIntegrationSync(t *testing.T) {
	t.Parallel()
	e := etcdtest.Start(t)
	p := startPrimary(t)
	r := p.startReplica(t)
	c, raw := etcdClients(t, e, "sync")
	put(t, raw, c.Key("leader"), "node1")
	put(t, raw, c.Key("members/node1"), `{"conn_url":"postgres://127.0.0.1:5432/postgres","api_url":"http://127.0.0.1:8008/patroni","state":"running","role":"master"}`)
	put(t, raw, c.Key("members/node2"), `{"conn_url":"postgres://127.0.0.2:5432/postgres","api_url":"http://127.0.0.2:8008/patroni","state":"running","role":"replica"}`)
	put(t, raw, c.Key("config"), `{"ttl":8,"loop_wait":1,"synchronous_mode":true}`)
	putSync(t, raw, c, "node1", "node2")
	rsvc := newNodeService(t, "node2", "sync", r, c, t.TempDir())
	rurl := serve(t, rsvc)
	purl := serve(t, newNodeService(t, "node1", "sync", p, c, t.TempDir()))

	// synchronous_mode on, node2 listed.
	poll(t, rurl+"/sync", 200, 5*time.Second)
	poll(t, purl+"/primary", 200, 5*time.Second)
	expect(t, "on, node2 listed, replica", rurl, map[string]int{"/synchronous": 200, "/read-only-sync": 200,
		"/read-only-synchronous": 200, "/quorum": 503, "/read-only-quorum": 503, "/async": 503, "/asynchronous": 503,
		"/replica": 200, "/read-only": 200, "/sync?lag=1MB": 200, "/sync?tag_zone=a": 503})
	expect(t, "on, node2 listed, primary", purl, map[string]int{"/sync": 503, "/read-only-sync": 200,
		"/read-only-quorum": 200, "/quorum": 503, "/async": 503})
	for _, m := range []string{"HEAD", "OPTIONS"} {
		if got := do(t, m, rurl+"/sync"); got.code != 200 || got.body != "" {
			t.Errorf("%s /sync: %d %q, want 200 and no body", m, got.code, got.body)
		}
	}
	if v := statusFlag(t, rurl, "sync_standby"); v != true {
		t.Errorf("replica status sync_standby %v, want true", v)
	}
	if v := statusFlag(t, purl, "sync_standby"); v != nil {
		t.Errorf("primary status sync_standby %v, want none", v)
	}
	if roles := clusterRoles(t, rurl); roles["node1"] != "leader" || roles["node2"] != "sync_standby" {
		t.Errorf("/cluster roles %v, want node1 leader, node2 sync_standby", roles)
	}

	// quorum mode: the same listing makes node2 a quorum standby.
	put(t, raw, c.Key("config"), `{"ttl":8,"loop_wait":1,"synchronous_mode":"quorum"}`)
	if took := poll(t, rurl+"/quorum", 200, 2*time.Second); took > time.Second {
		t.Errorf("quorum mode seen after %v", took)
	}
	expect(t, "quorum, node2 listed, replica", rurl, map[string]int{"/read-only-quorum": 200, "/sync": 503,
		"/read-only-sync": 503, "/async": 503})
	expect(t, "quorum, primary", purl, map[string]int{"/read-only-quorum": 200, "/quorum": 503})
	if v, w := statusFlag(t, rurl, "quorum_standby"), statusFlag(t, rurl, "sync_standby"); v != true || w != nil {
		t.Errorf("replica status quorum_standby %v sync_standby %v, want true and none", v, w)
	}
	if roles := clusterRoles(t, rurl); roles["node2"] != "quorum_standby" {
		t.Errorf("/cluster roles %v, want node2 quorum_standby", roles)
	}

	// The leader drops node2 from the key: asynchronous.
	putSync(t, raw, c, "node1", "node3")
	poll(t, rurl+"/async", 200, 2*time.Second)
	expect(t, "quorum, node3 listed", rurl, map[string]int{"/quorum": 503, "/read-only-quorum": 503, "/asynchronous": 200})
	if roles := clusterRoles(t, rurl); roles["node2"] != "replica" {
		t.Errorf("/cluster roles %v, want node2 replica", roles)
	}

	// synchronous_mode off with node2 still listed: asynchronous as well.
	putSync(t, raw, c, "node1", "node2")
	poll(t, rurl+"/quorum", 200, 2*time.Second)
	put(t, raw, c.Key("config"), `{"ttl":8,"loop_wait":1,"synchronous_mode":false}`)
	poll(t, rurl+"/async", 200, 2*time.Second)
	expect(t, "off, node2 listed", rurl, map[string]int{"/quorum": 503, "/sync": 503})

	// etcd dies while node2 is a synchronous standby: /sync turns 503
	// within the staleness bound, /async does not take it, and every
	// request is still answered at once (poll checks the latencies).
	put(t, raw, c.Key("config"), `{"ttl":8,"loop_wait":1,"synchronous_mode":"on"}`)
	poll(t, rurl+"/sync", 200, 2*time.Second)
	bound := rsvc.Bounds().DCS
	e.Stop()
	if took := poll(t, rurl+"/sync", 503, bound+time.Second); took > bound+100*time.Millisecond {
		t.Errorf("/sync 503 only %v after etcd stopped, bound %v", took, bound)
	}
	expect(t, "etcd down, node2 listed", rurl, map[string]int{"/async": 503, "/read-only-sync": 503,
		"/replica": 200, "/read-only": 200})
	e.Start()
	poll(t, rurl+"/sync", 200, 10*time.Second)

	// The key deleted (synchronous replication off as far as etcd says).
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := raw.Delete(ctx, c.Key("sync")); err != nil {
		t.Fatal(err)
	}
	poll(t, rurl+"/async", 200, 2*time.Second)
	expect(t, "on, no sync key", rurl, map[string]int{"/sync": 503, "/read-only-sync": 503})
	expect(t, "on, no sync key, primary", purl, map[string]int{"/read-only-sync": 200})
}
