package health

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/dcs/etcdtest"
	"github.com/pg-ha/pg-ha/lib/logx/logxtest"
)

// doBody sends body with method to url and returns the answer.
func doBody(t testing.TB, method, url, body string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, string(b)}
}

func getKey(t testing.TB, raw *clientv3.Client, key string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := raw.Get(ctx, key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	if len(r.Kvs) == 0 {
		return ""
	}
	return string(r.Kvs[0].Value)
}

// TestIntegrationWriteAPI runs the write endpoints against a real etcd
// holding a two-member cluster whose pg-lockd is not running, so nothing
// carries the requests out: PATCH and PUT /config change the config key as
// Patroni does; a switchover's refusals get 412; an accepted one is
// followed for the configured bound and then answered 503 while health
// checks on other connections keep answering at once; a scheduled one is
// 202 and DELETE /switchover removes it; restart and reinitialize refuse
// what they must; with etcd gone a write is 503 at once, with one line.
func TestIntegrationWriteAPI(t *testing.T) {
	t.Parallel()
	e := etcdtest.Start(t)
	c, raw := etcdClients(t, e, "writes")
	prefix := "/service/writes/"
	put(t, raw, prefix+"config", `{"ttl":30,"loop_wait":10,"postgresql":{"parameters":{"work_mem":"4MB"}}}`)
	put(t, raw, prefix+"leader", "n1")
	put(t, raw, prefix+"members/n1", `{"conn_url":"postgres://127.0.0.1:1/postgres","api_url":"http://127.0.0.1:1/patroni",`+
		`"state":"running","role":"primary","xlog_location":1000,"timeline":1}`)
	put(t, raw, prefix+"members/n2", `{"conn_url":"postgres://127.0.0.1:2/postgres","api_url":"http://127.0.0.1:2/patroni",`+
		`"state":"running","role":"replica","xlog_location":1000,"timeline":1,"replication_state":"streaming"}`)

	cfg, _, err := config.Parse([]byte("scope: writes\nname: n1\npostgresql: {listen: 127.0.0.1:1, data_dir: /nonexistent}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	const bound = 3 * time.Second
	w, err := NewWriter(WriterOptions{Cfg: cfg, DCS: c, Log: logxtest.Logger(t), FailoverTimeout: bound})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(Options{Name: "n1", Scope: "writes", DCS: c, RuntimeDir: t.TempDir(), Writer: w, Log: logxtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	url := serve(t, svc)

	expect := func(what string, r response, code int, body string) {
		t.Helper()
		if r.code != code || !strings.Contains(r.body, body) {
			t.Errorf("%s: %d %q, want %d containing %q", what, r.code, r.body, code, body)
		}
	}

	// PATCH merges, null deletes; the answer is the configuration written.
	r := doBody(t, "PATCH", url+"/config", `{"pause": true, "postgresql": {"parameters": {"work_mem": "8MB"}}}`)
	expect("PATCH /config pause", r, 200, `"pause":true`)
	var doc map[string]any
	if err := json.Unmarshal([]byte(getKey(t, raw, prefix+"config")), &doc); err != nil || doc["pause"] != true || doc["ttl"] != 30.0 ||
		doc["postgresql"].(map[string]any)["parameters"].(map[string]any)["work_mem"] != "8MB" {
		t.Errorf("config key after PATCH: %v (%v)", doc, err)
	}
	expect("PATCH /config resume", doBody(t, "PATCH", url+"/config", `{"pause": null}`), 200, `"ttl":30`)
	if v := getKey(t, raw, prefix+"config"); strings.Contains(v, "pause") {
		t.Errorf("config key after resume: %s", v)
	}
	expect("PATCH /config {}", doBody(t, "PATCH", url+"/config", `{}`), 400, "empty")
	expect("PATCH /config garbage", doBody(t, "PATCH", url+"/config", `[1]`), 400, "not a JSON object")

	// Refusals in Patroni's terms.
	expect("no leader named", doBody(t, "POST", url+"/switchover", `{"candidate": "n2"}`), 400, "only from a specific leader")
	expect("no such candidate", doBody(t, "POST", url+"/switchover", `{"leader": "n1", "candidate": "n9"}`), 412, "n9")
	expect("not the leader", doBody(t, "POST", url+"/switchover", `{"leader": "n2", "candidate": "n1"}`), 412, "not possible")
	expect("candidate leads", doBody(t, "POST", url+"/switchover", `{"leader": "n1", "candidate": "n1"}`), 412, "not possible")
	expect("DELETE /switchover, none", doBody(t, "DELETE", url+"/switchover", ""), 404, "no switchover is scheduled")

	// An accepted switchover that nobody carries out: followed for the
	// bound, then 503; health checks on other connections are not held.
	type result struct {
		r    response
		took time.Duration
	}
	done := make(chan result, 1)
	go func() {
		start := time.Now()
		r := doBody(t, "POST", url+"/switchover", `{"leader": "n1", "candidate": "n2", "scheduled_at": null}`)
		done <- result{r, time.Since(start)}
	}()
	var lat latencies
	var pending response
	deadline := time.Now().Add(bound + 5*time.Second)
	var sw result
wait:
	for {
		select {
		case sw = <-done:
			break wait
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("POST /switchover did not answer within its bound + 5 s")
		}
		t0 := time.Now()
		if g := do(t, "GET", url+"/patroni"); g.code != 200 {
			t.Errorf("GET /patroni during a switchover: %d", g.code)
		}
		lat.add(time.Since(t0))
		if pending.code == 0 && getKey(t, raw, prefix+"failover") != "" {
			pending = doBody(t, "POST", url+"/switchover", `{"leader": "n1", "candidate": "n2"}`)
		}
		time.Sleep(10 * time.Millisecond)
	}
	lat.check(t, "GET /patroni while POST /switchover waits")
	if lat.n < 20 {
		t.Errorf("only %d health checks answered while the switchover waited %v", lat.n, sw.took)
	}
	expect("switchover nobody carries out", sw.r, 503, "Switchover status unknown")
	if sw.took < bound || sw.took > bound+3*time.Second {
		t.Errorf("switchover answered after %v, want its bound %v", sw.took, bound)
	}
	expect("second switchover while one is pending", pending, 412, "already pending")
	if v := getKey(t, raw, prefix+"failover"); !strings.Contains(v, `"member":"n2"`) {
		t.Errorf("failover key after the switchover timed out: %q", v)
	}
	if _, err := raw.Delete(context.Background(), prefix+"failover"); err != nil {
		t.Fatal(err)
	}

	// Scheduled: 202, then DELETE /switchover removes it.
	at := time.Now().Add(time.Hour).UTC().Format("2006-01-02T15:04:05+00:00")
	expect("scheduled switchover", doBody(t, "POST", url+"/switchover", `{"leader": "n1", "candidate": "n2", "scheduled_at": "`+at+`"}`),
		202, "Switchover scheduled")
	if v := getKey(t, raw, prefix+"failover"); !strings.Contains(v, "scheduled_at") {
		t.Errorf("failover key after a scheduled switchover: %q", v)
	}
	expect("DELETE /switchover", doBody(t, "DELETE", url+"/switchover", ""), 200, "scheduled switchover deleted")
	if v := getKey(t, raw, prefix+"failover"); v != "" {
		t.Errorf("failover key after DELETE /switchover: %q", v)
	}

	// This member (n1) leads.
	expect("restart as a replica only", doBody(t, "POST", url+"/restart", `{"role": "replica"}`), 503, "restart conditions are not satisfied")
	expect("reinitialize the leader", doBody(t, "POST", url+"/reinitialize", `{"force": true}`), 503, "I am the leader, can not reinitialize")
	if v := getKey(t, raw, prefix+"requests/n1"); v != "" {
		t.Errorf("a refused request was written: %s", v)
	}

	// PUT replaces the configuration.
	expect("PUT /config", doBody(t, "PUT", url+"/config", `{"ttl": 20, "loop_wait": 2}`), 200, `"ttl":20`)
	if v := getKey(t, raw, prefix+"config"); v != `{"loop_wait":2,"ttl":20}` {
		t.Errorf("config key after PUT: %s", v)
	}

	// etcd gone: one line, 503, within the etcd request timeout; health
	// checks still answer.
	e.Stop()
	start := time.Now()
	r = doBody(t, "POST", url+"/switchover", `{"leader": "n1", "candidate": "n2"}`)
	took := time.Since(start)
	if r.code != 503 || strings.Contains(r.body, "\n") || !strings.Contains(r.body, "etcd") {
		t.Errorf("switchover with etcd down: %d %q, want 503 with one line naming etcd", r.code, r.body)
	}
	if took > 3*time.Second {
		t.Errorf("switchover with etcd down answered after %v", took)
	}
	if g := do(t, "GET", url+"/patroni"); g.code != 200 {
		t.Errorf("GET /patroni with etcd down: %d", g.code)
	}
}
