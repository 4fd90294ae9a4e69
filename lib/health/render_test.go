package health

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/dcs"
)

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return m
}

func TestStatusJSONPrimary(t *testing.T) {
	s := primary()
	f := Evaluate(s, bounds, now)
	b := StatusJSON(s, &f)
	got := decode(t, b)
	want := map[string]any{
		"state":                      "running",
		"postmaster_start_time":      "2024-05-01 10:00:00.123456+00:00",
		"role":                       "master",
		"server_version":             150010.0,
		"xlog":                       map[string]any{"location": float64(0x5000060)},
		"timeline":                   3.0,
		"replication":                []any{map[string]any{"application_name": "node2", "client_addr": "10.0.0.2", "state": "streaming", "sync_state": "async"}},
		"dcs_last_seen":              1714557600.0,
		"tags":                       map[string]any{"zone": "a", "weight": 1.0, "ssd": true},
		"database_system_identifier": "7300000000000000001",
		"patroni":                    map[string]any{"version": "0.1.0", "scope": "demo", "name": "node1"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("status\n got %v\nwant %v", got, want)
	}
	// Patroni's field order, so a diff against Patroni's output reads well.
	order := []string{`"state"`, `"postmaster_start_time"`, `"role"`, `"server_version"`, `"xlog"`, `"timeline"`,
		`"replication"`, `"dcs_last_seen"`, `"tags"`, `"database_system_identifier"`, `"patroni"`}
	last := -1
	for _, k := range order {
		i := strings.Index(string(b), k)
		if i < last {
			t.Errorf("%s out of Patroni's order in %s", k, b)
		}
		last = i
	}
}

func TestStatusJSONReplicaAndDown(t *testing.T) {
	s := with(replica(), func(s *Snapshot) { s.PG.Status.ReplayLSN -= 0x60; s.PG.Status.ReplayPaused = true })
	f := Evaluate(s, bounds, now)
	got := decode(t, StatusJSON(s, &f))
	wantXLog := map[string]any{"received_location": float64(0x5000060), "replayed_location": float64(0x5000000),
		"replayed_timestamp": nil, "paused": true}
	if !reflect.DeepEqual(got["xlog"], wantXLog) || got["role"] != "replica" || got["replication_state"] != "streaming" {
		t.Errorf("replica status %v", got)
	}
	if got["postmaster_start_time"] != "2024-05-01 10:00:00+00:00" {
		t.Errorf("postmaster_start_time %v: Python omits zero microseconds", got["postmaster_start_time"])
	}

	s = with(stoppedPG(), func(s *Snapshot) { s.DCS.Cluster = cluster("", 1) })
	f = Evaluate(s, bounds, now)
	got = decode(t, StatusJSON(s, &f))
	for _, k := range []string{"xlog", "timeline", "server_version", "postmaster_start_time", "replication"} {
		if _, ok := got[k]; ok {
			t.Errorf("stopped: %s present in %v", k, got)
		}
	}
	if got["state"] != "stopped" || got["role"] != "master" || got["cluster_unlocked"] != true {
		t.Errorf("stopped status %v", got)
	}

	s = standalone(replica())
	f = Evaluate(s, bounds, now)
	got = decode(t, StatusJSON(s, &f))
	if _, ok := got["dcs_last_seen"]; ok {
		t.Errorf("standalone: dcs_last_seen in %v", got)
	}
}

func TestClusterJSON(t *testing.T) {
	cl := cluster("node1", 0x5000060)
	when := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	cl.Failover = &dcs.Failover{Leader: "node1", Member: "node2", ScheduledAt: &when}
	got := decode(t, ClusterJSON(cl, false, true, config.SyncOff))
	members := got["members"].([]any)
	if len(members) != 3 {
		t.Fatalf("members %v", members)
	}
	m1, m2, m3 := members[0].(map[string]any), members[1].(map[string]any), members[2].(map[string]any)
	if m1["name"] != "node1" || m1["role"] != "leader" || m1["host"] != "10.0.0.1" || m1["port"] != 5432.0 || m1["lag"] != nil {
		t.Errorf("leader %v", m1)
	}
	if m2["role"] != "replica" || m2["lag"] != float64(2<<20) || m2["api_url"] != "http://10.0.0.2:8008/patroni" {
		t.Errorf("replica %v", m2)
	}
	if m3["lag"] != "unknown" || m3["state"] != "stopped" {
		t.Errorf("member without xlog_location %v", m3)
	}
	if got["pause"] != true {
		t.Errorf("pause missing: %v", got)
	}
	sw, _ := got["scheduled_switchover"].(map[string]any)
	if sw["at"] != "2024-05-01T12:00:00+00:00" || sw["from"] != "node1" || sw["to"] != "node2" {
		t.Errorf("scheduled_switchover %v", sw)
	}
	if got := decode(t, ClusterJSON(cluster("node1", 1), true, false, config.SyncOff)); got["members"].([]any)[0].(map[string]any)["role"] != "standby_leader" {
		t.Errorf("standby cluster leader role: %v", got)
	}
}

func TestRender(t *testing.T) {
	r := Render(primary(), bounds, now)
	if string(r.Config) != `{"ttl":8,"loop_wait":1}` {
		t.Errorf("config %s", r.Config)
	}
	if string(r.History) != `[[1,100,"no recovery target specified"]]` {
		t.Errorf("history %s", r.History)
	}
	r = Render(standalone(primary()), bounds, now)
	if r.Cluster != nil || r.History != nil || r.Config != nil {
		t.Errorf("standalone rendered etcd bodies: %+v", r)
	}
}

func TestDynamicFlags(t *testing.T) {
	tests := []struct {
		raw             string
		standby, paused bool
		mode            config.SyncMode
	}{
		{`{"ttl":8}`, false, false, config.SyncOff},
		{`{"pause":true}`, false, true, config.SyncOff},
		{`{"pause":"on"}`, false, true, config.SyncOff},
		{`{"standby_cluster":{"host":"10.1.0.1","port":5432}}`, true, false, config.SyncOff},
		{`{"standby_cluster":{"restore_command":"cp x y"}}`, true, false, config.SyncOff},
		{`{"standby_cluster":{}}`, false, false, config.SyncOff},
		{`not json`, false, false, config.SyncOff},
		{`{"pause":1}`, false, true, config.SyncOff},
		{`{"pause":"0"}`, false, false, config.SyncOff},
		{`{"pause":true,"standby_cluster":"x","synchronous_mode":"quorum","ttl":"soon"}`, false, true, config.SyncQuorum},
		{`{"pause":"yes","standby_cluster":{"host":"10.1.0.1"},"loop_wait":[1]}`, true, true, config.SyncOff},
		{`{"synchronous_mode":true}`, false, false, config.SyncOn},
		{`{"synchronous_mode":"on"}`, false, false, config.SyncOn},
		{`{"synchronous_mode":"QUORUM"}`, false, false, config.SyncQuorum},
		{`{"synchronous_mode":false}`, false, false, config.SyncOff},
		{`{"synchronous_mode":"sometimes","pause":true}`, false, true, config.SyncOff},
	}
	for _, tt := range tests {
		standby, paused, mode := dynamicFlags([]byte(tt.raw))
		if standby != tt.standby || paused != tt.paused || mode != tt.mode {
			t.Errorf("%s: standby %v paused %v mode %q", tt.raw, standby, paused, mode)
		}
	}
}

// The special tags are dropped when false, however written, as Patroni does.
func TestEffectiveTagsBooleans(t *testing.T) {
	tags, _ := effectiveTags(config.Tags{"nofailover": "false", "noloadbalance": 0, "nosync": "off", "clonefrom": float64(0), "nostream": "no", "zone": "a"})
	if len(tags) != 1 || tags["zone"] != "a" {
		t.Errorf("false special tags kept: %v", tags)
	}
	tags, _ = effectiveTags(config.Tags{"nofailover": "1", "noloadbalance": float64(1)})
	if len(tags) != 2 {
		t.Errorf("true special tags dropped: %v", tags)
	}
}

// A config key with a field of the wrong type is logged once per revision,
// naming the field.
func TestWarnConfigOncePerRevision(t *testing.T) {
	var logs bytes.Buffer
	svc, err := New(Options{Name: "node1", Scope: "demo", Standalone: true, RuntimeDir: t.TempDir(), Log: zerolog.New(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	raw := []byte(`{"pause":true,"ttl":"soon","synchronous_mode":"quorum"}`)
	svc.warnConfig(5, raw)
	svc.warnConfig(5, raw)
	out := logs.String()
	if strings.Count(out, `config key: ttl: \"soon\" is not a non-negative number of seconds; ignored`) != 1 ||
		strings.Count(out, `"key":"config"`) != 1 {
		t.Errorf("logs %s: want the bad ttl once, and nothing else about the config key", out)
	}
	svc.warnConfig(6, []byte(`{"pause":true}`))
	if strings.Count(logs.String(), `"key":"config"`) != 1 {
		t.Errorf("a clean config key logged: %s", logs.String())
	}
}
