package health

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/clusterctl"
	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/dcs"
	"github.com/pg-ha/pg-ha/lib/logx/logxtest"
)

func TestWriteRoute(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		method, path string
		want         writeOp
	}{
		{"POST", "/switchover", opSwitchover},
		{"POST", "/switchover/", opSwitchover},
		{"POST", "/failover", opFailover},
		{"DELETE", "/switchover", opCancelSwitchover},
		{"POST", "/restart", opRestart},
		{"DELETE", "/restart", opCancelRestart},
		{"POST", "/reinitialize", opReinit},
		{"POST", "/reload", opReload},
		{"PATCH", "/config", opPatchConfig},
		{"PUT", "/config", opPutConfig},
		{"POST", "/config", opNone},
		{"PUT", "/switchover", opNone},
		{"DELETE", "/failover", opNone},
		{"POST", "/primary", opNone},
		{"POST", "/switchover/x", opNone},
		{"TRACE", "/", opNone},
	} {
		if got := writeRoute(tt.method, tt.path); got != tt.want {
			t.Errorf("%s %s: %d, want %d", tt.method, tt.path, got, tt.want)
		}
	}
}

func TestParseSchedule(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		in   string
		code int
		want time.Time
	}{
		{"2026-06-01T13:00:00+00:00", 0, now.Add(time.Hour)},
		{"2026-06-01T13:00:00.250000+00:00", 0, now.Add(time.Hour + 250*time.Millisecond)},
		{"2026-06-01T15:00:00+02:00", 0, now.Add(time.Hour)},
		{"2026-06-01T13:00:00Z", 0, now.Add(time.Hour)},
		{"2026-06-01 13:00:00+00:00", 0, now.Add(time.Hour)},
		{"2026-06-01T13:00+00:00", 0, now.Add(time.Hour)},
		{"2026-06-01T13:00:00", 400, time.Time{}},
		{"2026-06-01 13:00", 400, time.Time{}},
		{"2026-06-01T11:00:00+00:00", 422, time.Time{}},
		{"tomorrow", 422, time.Time{}},
		{"", 422, time.Time{}},
	} {
		got, code, msg := ParseSchedule(tt.in, "switchover", now)
		if code != tt.code || !got.Equal(tt.want) {
			t.Errorf("%q: %v %d %q, want %v %d", tt.in, got, code, msg, tt.want, tt.code)
		}
		if code != 0 && msg == "" {
			t.Errorf("%q: %d without a message", tt.in, code)
		}
	}
}

func TestFailoverRequest(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	later, past, noZone := "2026-06-01T13:00:00+00:00", "2026-06-01T11:00:00+00:00", "2026-06-01T13:00:00"
	at := now.Add(time.Hour)
	for _, tt := range []struct {
		name   string
		action string
		body   FailoverBody
		paused bool
		code   int
		msg    string
		want   clusterctl.Request
	}{
		{name: "switchover", action: "switchover", body: FailoverBody{Leader: "n1", Candidate: "n2"},
			want: clusterctl.Request{From: "n1", Candidate: "n2"}},
		{name: "switchover to the best", action: "switchover", body: FailoverBody{Leader: "n1"},
			want: clusterctl.Request{From: "n1"}},
		{name: "member is candidate's old name", action: "switchover", body: FailoverBody{Leader: "n1", Member: "n3"},
			want: clusterctl.Request{From: "n1", Candidate: "n3"}},
		{name: "switchover without leader", action: "switchover", body: FailoverBody{Candidate: "n2"},
			code: 400, msg: "Switchover could be performed only from a specific leader"},
		{name: "failover without candidate", action: "failover", body: FailoverBody{Leader: "n1"},
			code: 400, msg: "Failover could be performed only to a specific candidate"},
		{name: "failover", action: "failover", body: FailoverBody{Candidate: "n2"},
			want: clusterctl.Request{Candidate: "n2", Failover: true}},
		{name: "failover naming the leader", action: "failover", body: FailoverBody{Leader: "n1", Candidate: "n2"},
			want: clusterctl.Request{From: "n1", Candidate: "n2", Failover: true}},
		{name: "scheduled", action: "switchover", body: FailoverBody{Leader: "n1", Candidate: "n2", ScheduledAt: &later},
			want: clusterctl.Request{From: "n1", Candidate: "n2", At: &at}},
		{name: "scheduled failover without leader", action: "failover", body: FailoverBody{Candidate: "n2", ScheduledAt: &later},
			code: 400, msg: "Scheduled failover is possible only from a specific leader"},
		{name: "scheduled while paused", action: "switchover", body: FailoverBody{Leader: "n1", Candidate: "n2", ScheduledAt: &later},
			paused: true, code: 400, msg: "Can't schedule switchover in the paused state"},
		{name: "scheduled in the past", action: "switchover", body: FailoverBody{Leader: "n1", ScheduledAt: &past},
			code: 422, msg: "Cannot schedule switchover in the past"},
		{name: "scheduled without zone", action: "switchover", body: FailoverBody{Leader: "n1", ScheduledAt: &noZone},
			code: 400, msg: "Timezone information is mandatory for the scheduled switchover"},
		{name: "paused without candidate", action: "switchover", body: FailoverBody{Leader: "n1"}, paused: true,
			code: 400, msg: "Switchover is possible only to a specific candidate in a paused state"},
		{name: "paused with candidate", action: "switchover", body: FailoverBody{Leader: "n1", Candidate: "n2"}, paused: true,
			want: clusterctl.Request{From: "n1", Candidate: "n2"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, code, msg := FailoverRequest(tt.action, tt.body, tt.paused, now)
			if code != tt.code || msg != tt.msg {
				t.Fatalf("%d %q, want %d %q", code, msg, tt.code, tt.msg)
			}
			if code != 0 {
				return
			}
			if got.From != tt.want.From || got.Candidate != tt.want.Candidate || got.Failover != tt.want.Failover ||
				(got.At == nil) != (tt.want.At == nil) || got.At != nil && !got.At.Equal(*tt.want.At) {
				t.Errorf("request %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestFailoverBodyJSON(t *testing.T) {
	t.Parallel()
	// What patronictl 3.0.2 sends for switchover --candidate n2 --force.
	var b FailoverBody
	if code, msg := readJSONObject([]byte(`{"leader": "n1", "candidate": "n2", "scheduled_at": null}`), true, false, &b); code != 0 {
		t.Fatalf("%d %s", code, msg)
	}
	if b.Leader != "n1" || b.Candidate != "n2" || b.ScheduledAt != nil {
		t.Errorf("%+v", b)
	}
	for body, want := range map[string]int{`[]`: 400, `"x"`: 400, `{}`: 400, `{"leader": 1}`: 400, `{`: 400} {
		var b FailoverBody
		if code, _ := readJSONObject([]byte(body), true, false, &b); code != want {
			t.Errorf("%s: %d, want %d", body, code, want)
		}
	}
	if code, _ := readJSONObject(nil, false, false, &b); code != 411 {
		t.Errorf("no Content-Length: %d, want 411", code)
	}
	m := map[string]any{}
	if code, _ := readJSONObject(nil, false, true, &m); code != 0 {
		t.Errorf("optional body absent: %d, want 0", code)
	}
	if code, _ := readJSONObject([]byte("{}"), true, true, &m); code != 0 {
		t.Errorf("optional body {}: %d, want 0", code)
	}
}

func TestFailoverAnswer(t *testing.T) {
	t.Parallel()
	failure := func(r clusterctl.Reason) error { return &clusterctl.Failure{Reason: r, Msg: "why"} }
	r := clusterctl.Result{Leader: "n1", Candidate: "n2"}
	done := r
	done.Result = "done"
	sched := r
	sched.Result = "scheduled"
	noop := r
	noop.Result, noop.Message = "noop", "n2 is the leader already; nothing to do"
	for _, tt := range []struct {
		name      string
		action    string
		r         clusterctl.Result
		err       error
		newLeader string
		code      int
		msg       string
	}{
		{"done", "switchover", done, nil, "", 200, `Successfully switched over to "n2"`},
		{"failover done", "failover", done, nil, "", 200, `Successfully failed over to "n2"`},
		{"scheduled", "switchover", sched, nil, "", 202, "Switchover scheduled"},
		{"noop", "switchover", noop, nil, "", 412, "Switchover is not possible: n2 is the leader already; nothing to do"},
		{"no such member", "switchover", r, failure(clusterctl.NoSuchMember), "", 412, "Switchover is not possible: why"},
		{"not eligible", "switchover", r, failure(clusterctl.NotEligible), "", 412, "Switchover is not possible: why"},
		{"no leader", "switchover", r, failure(clusterctl.NoLeader), "", 412, "Switchover is not possible: why"},
		{"not from leader", "switchover", r, failure(clusterctl.NotFromLeader), "", 412, "Switchover is not possible: why"},
		{"pending", "failover", r, failure(clusterctl.Pending), "", 412, "Failover is not possible: why"},
		{"timed out", "switchover", r, failure(clusterctl.TimedOut), "", 503, "Switchover status unknown: why"},
		{"refused", "switchover", r, failure(clusterctl.Refused), "", 503, "Switchover failed: why"},
		{"elsewhere", "switchover", r, failure(clusterctl.Diverted), "n3", 200, `Switched over to "n3" instead of "n2"`},
		{"replaced", "switchover", r, failure(clusterctl.Diverted), "n1", 503, "Switchover failed: why"},
		{"etcd", "switchover", r, errors.New("etcd down"), "", 503, "failed to carry out the switchover: etcd down"},
	} {
		code, msg := FailoverAnswer(tt.action, tt.r, tt.err, tt.newLeader)
		if code != tt.code || msg != tt.msg {
			t.Errorf("%s: %d %q, want %d %q", tt.name, code, msg, tt.code, tt.msg)
		}
	}
}

func TestParseRestartBody(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		body   string
		paused bool
		code   int
		want   RestartRequest
	}{
		{`{}`, false, 0, RestartRequest{}},
		{`{"role": "master"}`, false, 0, RestartRequest{Role: "primary"}},
		{`{"role": "replica", "restart_pending": true}`, false, 0, RestartRequest{Role: "replica", RestartPending: true}},
		{`{"role": "leader"}`, false, 400, RestartRequest{}},
		{`{"postgres_version": "15.4"}`, false, 0, RestartRequest{PostgresVersion: 150004}},
		{`{"postgres_version": "9.6.24"}`, false, 0, RestartRequest{PostgresVersion: 90624}},
		{`{"postgres_version": "15"}`, false, 400, RestartRequest{}},
		{`{"postgres_version": "15.4.1"}`, false, 400, RestartRequest{}},
		{`{"timeout": 30}`, false, 0, RestartRequest{Timeout: 30 * time.Second}},
		{`{"timeout": "2min"}`, false, 0, RestartRequest{Timeout: 2 * time.Minute}},
		{`{"timeout": 0}`, false, 400, RestartRequest{}},
		{`{"timeout": "soon"}`, false, 400, RestartRequest{}},
		{`{"schedule": "2030-06-01T13:00:00+00:00", "role": "replica"}`, false, 0,
			RestartRequest{Role: "replica", Schedule: time.Date(2030, 6, 1, 13, 0, 0, 0, time.UTC)}},
		{`{"schedule": "2030-06-01T13:00:00+00:00"}`, true, 500, RestartRequest{}},
		{`{"schedule": "2020-06-01T13:00:00+00:00"}`, false, 422, RestartRequest{}},
		{`{"schedule": "2030-06-01T13:00:00"}`, false, 400, RestartRequest{}},
		{`{"schedule": "tomorrow"}`, false, 422, RestartRequest{}},
		{`{"force": true}`, false, 400, RestartRequest{}},
	} {
		m := map[string]any{}
		if code, msg := readJSONObject([]byte(tt.body), true, true, &m); code != 0 {
			t.Fatalf("%s: %d %s", tt.body, code, msg)
		}
		got, code, msg := ParseRestartBody(m, tt.paused, time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC))
		if code != tt.code || code == 0 && !(got.Schedule.Equal(tt.want.Schedule) && got.Role == tt.want.Role &&
			got.PostgresVersion == tt.want.PostgresVersion && got.RestartPending == tt.want.RestartPending && got.Timeout == tt.want.Timeout) {
			t.Errorf("%s (paused %v): %+v %d %q, want %+v %d", tt.body, tt.paused, got, code, msg, tt.want, tt.code)
		}
	}
}

// One restart can be scheduled at a time; DELETE /restart drops it, as in
// Patroni (409 for a second one, 404 when none is left).
func TestScheduledRestartOneAtATime(t *testing.T) {
	t.Parallel()
	w, err := NewWriter(WriterOptions{Cfg: &config.Config{Name: "n1"}})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(time.Hour)
	if !w.scheduleRestart(RestartRequest{Schedule: at}) {
		t.Fatal("the first scheduled restart was refused")
	}
	if got, ok := w.ScheduledRestart(); !ok || !got.Equal(at) {
		t.Errorf("ScheduledRestart() = %v %v, want %v", got, ok, at)
	}
	if w.scheduleRestart(RestartRequest{Schedule: at.Add(time.Minute)}) {
		t.Error("a second scheduled restart was accepted")
	}
	if a := w.cancelRestart(); a.code != 200 || a.body != "scheduled restart deleted" {
		t.Errorf("DELETE /restart: %d %q", a.code, a.body)
	}
	if a := w.cancelRestart(); a.code != 404 || a.body != "no restarts are scheduled" {
		t.Errorf("DELETE /restart with none: %d %q", a.code, a.body)
	}
	if _, ok := w.ScheduledRestart(); ok {
		t.Error("a restart is still scheduled after DELETE /restart")
	}
}

func TestRestartConditionsMet(t *testing.T) {
	t.Parallel()
	primary := &dcs.Member{Name: "n1", Data: dcs.MemberData{Role: "primary", State: "running"}}
	pending := &dcs.Member{Name: "n2", Data: dcs.MemberData{Role: "replica", State: "running", PendingRestart: true}}
	for _, tt := range []struct {
		name    string
		r       RestartRequest
		m       *dcs.Member
		version int
		want    bool
	}{
		{"no conditions", RestartRequest{}, primary, 0, true},
		{"role primary on primary", RestartRequest{Role: "primary"}, primary, 0, true},
		{"role replica on primary", RestartRequest{Role: "replica"}, primary, 0, false},
		{"role replica on replica", RestartRequest{Role: "replica"}, pending, 0, true},
		{"older than asked", RestartRequest{PostgresVersion: 150005}, primary, 150004, true},
		{"as new as asked", RestartRequest{PostgresVersion: 150004}, primary, 150004, false},
		{"pending asked, none", RestartRequest{RestartPending: true}, primary, 0, false},
		{"pending asked, pending", RestartRequest{RestartPending: true}, pending, 0, true},
	} {
		if got := RestartConditionsMet(tt.r, tt.m, tt.version); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestPatchConfig(t *testing.T) {
	t.Parallel()
	cur := `{"ttl":30,"loop_wait":10,"postgresql":{"parameters":{"max_connections":100,"work_mem":"4MB"},"use_slots":true},"pause":true}`
	for _, tt := range []struct {
		name, patch string
		changed     bool
		want        string
	}{
		{"pause", `{"pause": true}`, false, cur},
		{"resume (null deletes)", `{"pause": null}`, true,
			`{"loop_wait":10,"postgresql":{"parameters":{"max_connections":100,"work_mem":"4MB"},"use_slots":true},"ttl":30}`},
		{"delete absent", `{"nope": null}`, false, cur},
		{"nested merge", `{"postgresql": {"parameters": {"work_mem": "8MB", "max_connections": null}}}`, true,
			`{"loop_wait":10,"pause":true,"postgresql":{"parameters":{"work_mem":"8MB"},"use_slots":true},"ttl":30}`},
		{"same number", `{"ttl": 30}`, false, cur},
		{"new number keeps its form", `{"ttl": 1e1, "maximum_lag_on_failover": 1048576}`, true,
			`{"loop_wait":10,"maximum_lag_on_failover":1048576,"pause":true,"postgresql":{"parameters":{"max_connections":100,"work_mem":"4MB"},"use_slots":true},"ttl":1e1}`},
		{"object replaces scalar", `{"ttl": {"a": 1}}`, true,
			`{"loop_wait":10,"pause":true,"postgresql":{"parameters":{"max_connections":100,"work_mem":"4MB"},"use_slots":true},"ttl":{"a":1}}`},
		{"scalar replaces object", `{"postgresql": 1}`, true, `{"loop_wait":10,"pause":true,"postgresql":1,"ttl":30}`},
	} {
		patch := map[string]any{}
		if code, msg := readJSONObject([]byte(tt.patch), true, false, &patch); code != 0 {
			t.Fatalf("%s: %d %s", tt.name, code, msg)
		}
		out, changed, err := PatchConfig([]byte(cur), patch)
		if err != nil || changed != tt.changed || !sameConfig(out, []byte(tt.want)) {
			t.Errorf("%s: %s %v %v, want %s %v", tt.name, out, changed, err, tt.want, tt.changed)
		}
		if tt.changed && string(out) != tt.want {
			t.Errorf("%s: written as %s, want %s", tt.name, out, tt.want)
		}
	}
	if out, changed, err := PatchConfig(nil, map[string]any{"pause": true}); err != nil || !changed || string(out) != `{"pause":true}` {
		t.Errorf("no config key: %s %v %v", out, changed, err)
	}
	if _, _, err := PatchConfig([]byte(`[1]`), map[string]any{"pause": true}); err == nil {
		t.Error("a config key that is not an object: no error")
	}
}

// newWriteService serves a standalone Service with a Writer for cfg.
func newWriteService(t *testing.T, yml string) string {
	t.Helper()
	cfg, _, err := config.Parse([]byte(yml), nil)
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWriter(WriterOptions{Cfg: cfg, Log: logxtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(Options{Name: cfg.Name, Scope: cfg.Scope, Standalone: true, RuntimeDir: t.TempDir(), Writer: w,
		Log: logxtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, svc)
}

// TestWriteAccess: with restapi.authentication, a write without the right
// credentials is 401 with Patroni's challenge, while GET stays open; with
// them, a standalone pg-healthd answers 503 with one line naming why.
func TestWriteAccess(t *testing.T) {
	t.Parallel()
	url := newWriteService(t, `
scope: demo
name: node1
restapi: {listen: 127.0.0.1:0, authentication: {username: admin, password: s3cret}}
postgresql: {listen: 127.0.0.1:1, data_dir: /nonexistent}
`)
	good := "Basic YWRtaW46czNjcmV0" // admin:s3cret
	for _, tt := range []struct {
		method, path, auth string
		code               int
		body               string
	}{
		{"POST", "/switchover", "", 401, "no auth header received"},
		{"POST", "/switchover", "Basic YWRtaW46d3Jvbmc=", 401, "not authenticated"},
		{"PATCH", "/config", "Bearer x", 401, "not authenticated"},
		{"POST", "/switchover", good, 503, "pg-healthd runs without etcd (standalone): POST /switchover needs it"},
		{"PATCH", "/config", good, 503, "pg-healthd runs without etcd (standalone): PATCH /config needs it"},
		{"DELETE", "/restart", good, 404, "no restarts are scheduled"},
		{"POST", "/primary", good, 405, "method not allowed: POST /primary\n"},
		{"GET", "/liveness", "", 200, ""},
	} {
		hdr := []string{}
		if tt.auth != "" {
			hdr = append(hdr, "Authorization", tt.auth)
		}
		r := do(t, tt.method, url+tt.path, hdr...)
		if r.code != tt.code || r.body != tt.body {
			t.Errorf("%s %s (%q): %d %q, want %d %q", tt.method, tt.path, tt.auth, r.code, r.body, tt.code, tt.body)
		}
		if tt.code == 401 && r.header.Get("Www-Authenticate") != `Basic realm="Patroni"` {
			t.Errorf("%s %s: 401 without the Basic challenge: %v", tt.method, tt.path, r.header)
		}
		if tt.code == 405 && !strings.Contains(r.header.Get("Allow"), "PATCH") {
			t.Errorf("405 Allow %q does not list the write methods", r.header.Get("Allow"))
		}
	}
}

// TestWriteOpenWithoutAuthentication: without restapi.authentication,
// writes need none, as in Patroni.
func TestWriteOpenWithoutAuthentication(t *testing.T) {
	t.Parallel()
	url := newWriteService(t, `
scope: demo
name: node1
restapi: {listen: 127.0.0.1:0}
postgresql: {listen: 127.0.0.1:1, data_dir: /nonexistent}
`)
	r := do(t, "POST", url+"/failover")
	if r.code != http.StatusServiceUnavailable || !strings.Contains(r.body, "standalone") {
		t.Errorf("POST /failover: %d %q, want 503 naming standalone", r.code, r.body)
	}
}

// TestWriteAllowlist: a client outside restapi.allowlist gets 403 before
// its credentials are looked at.
func TestWriteAllowlist(t *testing.T) {
	t.Parallel()
	url := newWriteService(t, `
scope: demo
name: node1
restapi: {listen: 127.0.0.1:0, allowlist: [10.0.0.0/8, 192.0.2.1], authentication: {username: a, password: b}}
postgresql: {listen: 127.0.0.1:1, data_dir: /nonexistent}
`)
	if r := do(t, "POST", url+"/reload"); r.code != 403 || r.body != "Access is denied" {
		t.Errorf("POST /reload from 127.0.0.1: %d %q, want 403", r.code, r.body)
	}
	url = newWriteService(t, `
scope: demo
name: node1
restapi: {listen: 127.0.0.1:0, allowlist: [127.0.0.0/8], authentication: {username: a, password: b}}
postgresql: {listen: 127.0.0.1:1, data_dir: /nonexistent}
`)
	if r := do(t, "POST", url+"/reload"); r.code != 401 {
		t.Errorf("POST /reload from an allowed address without credentials: %d %q, want 401", r.code, r.body)
	}
}
