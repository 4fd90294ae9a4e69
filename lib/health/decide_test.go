package health

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/clock"
	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/dcs"
	"github.com/pg-ha/pg-ha/lib/pg"
	"github.com/pg-ha/pg-ha/lib/state"
)

// now is the instant every table is evaluated at.
const now = clock.Time(1000 * time.Second)

func ago(d time.Duration) clock.Time   { return now.Add(-d) }
func ahead(d time.Duration) clock.Time { return now.Add(d) }

var bounds = DefaultBounds(8 * time.Second)

func i64(v int64) *int64 { return &v }

const mib = 1 << 20

// base is a node with nothing observed but the settings.
func base(name string) *Snapshot {
	tags, text := effectiveTags(config.Tags{"zone": "a", "weight": 1, "ssd": true, "nofailover": false})
	return &Snapshot{
		Name: name, Scope: "demo", Version: "0.1.0",
		Tags: tags, TagText: text, MaxLagOnFailover: mib, TTL: 8 * time.Second, At: ago(100 * time.Millisecond),
	}
}

func cluster(leader string, optime int64) *dcs.Cluster {
	cl := &dcs.Cluster{
		Revision: 42,
		Config:   []byte(`{"ttl":8,"loop_wait":1}`),
		History:  []dcs.HistoryEntry{{Timeline: 1, LSN: 100, Reason: "no recovery target specified"}},
		Status:   dcs.Status{Optime: optime},
		Members: []dcs.Member{
			{Name: "node1", Data: dcs.MemberData{ConnURL: "postgres://10.0.0.1:5432/postgres", APIURL: "http://10.0.0.1:8008/patroni", State: "running", Role: "master", XLogLocation: i64(optime), Timeline: 1}},
			{Name: "node2", Data: dcs.MemberData{ConnURL: "postgres://10.0.0.2:5432/postgres", APIURL: "http://10.0.0.2:8008/patroni", State: "running", Role: "replica", XLogLocation: i64(optime - 2*mib), Timeline: 1}},
			{Name: "node3", Data: dcs.MemberData{ConnURL: "postgres://10.0.0.3:5432/postgres", State: "stopped", Role: "replica"}},
		},
	}
	if leader != "" {
		cl.Leader = &dcs.Leader{Name: leader, Lease: 7, CreateRevision: 10, ModRevision: 10}
	}
	return cl
}

func primary() *Snapshot {
	s := base("node1")
	s.PG = PGObservation{Known: true, OK: ago(100 * time.Millisecond), Status: pg.Status{
		Timeline: 3, WriteLSN: 0x5000060, ServerVersion: 150010, SystemIdentifier: 7300000000000000001,
		PostmasterStart: time.Date(2024, 5, 1, 10, 0, 0, 123456000, time.UTC),
		Replication:     []pg.Replica{{ApplicationName: "node2", ClientAddr: "10.0.0.2", State: "streaming", SyncState: "async"}},
	}}
	s.DCS = DCSObservation{Cluster: cluster("node1", 0x5000060), Confirmed: ago(500 * time.Millisecond), LastSeen: time.Unix(1714557600, 0)}
	s.Lockd = &state.Lockd{Role: "leader", Leader: "node1", ValidUntil: ahead(7 * time.Second), EtcdOK: true, Updated: ago(400 * time.Millisecond)}
	s.Supervise = &state.Supervise{State: state.Running, Role: "primary", Deadline: ahead(6 * time.Second), Updated: ago(300 * time.Millisecond)}
	return s
}

func replica() *Snapshot {
	s := base("node2")
	s.PG = PGObservation{Known: true, OK: ago(100 * time.Millisecond), Status: pg.Status{
		InRecovery: true, Timeline: 3, ReceiveLSN: 0x5000060, ReplayLSN: 0x5000060, ServerVersion: 150010,
		SystemIdentifier: 7300000000000000001, ReceiverStatus: "streaming",
		PostmasterStart: time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC),
	}}
	s.DCS = DCSObservation{Cluster: cluster("node1", 0x5000060), Confirmed: ago(500 * time.Millisecond), LastSeen: time.Unix(1714557600, 0)}
	s.Lockd = &state.Lockd{Role: "replica", Leader: "node1", EtcdOK: true, Updated: ago(400 * time.Millisecond)}
	s.Supervise = &state.Supervise{State: state.Running, Role: "replica", Updated: ago(300 * time.Millisecond)}
	return s
}

func with(s *Snapshot, fn func(*Snapshot)) *Snapshot { fn(s); return s }

// Scenarios the tables cover.
var (
	laggingReplica = func() *Snapshot { // 100 MiB behind the leader's optime
		return with(replica(), func(s *Snapshot) { s.DCS.Cluster = cluster("node1", 0x5000060+100*mib) })
	}
	stoppedPG = func() *Snapshot { // the last attempt was refused
		return with(primary(), func(s *Snapshot) {
			s.PG.Failed, s.PG.Err, s.PG.Refused = ago(50*time.Millisecond), "connect: connection refused", true
			s.Supervise.State, s.Supervise.Role, s.Supervise.Deadline = state.Stopped, "", 0
		})
	}
	etcdDown = func() *Snapshot { // last confirmed 3 s ago
		return with(primary(), func(s *Snapshot) {
			s.DCS.Confirmed, s.DCS.Err = ago(3*time.Second), "context deadline exceeded"
			s.Lockd.EtcdOK = false
		})
	}
	etcdDownReplica = func() *Snapshot {
		return with(replica(), func(s *Snapshot) { s.DCS.Confirmed, s.DCS.Err = ago(3*time.Second), "context deadline exceeded" })
	}
	hungPG = func() *Snapshot { // the query in flight for 2.5 s
		return with(primary(), func(s *Snapshot) { s.PG.OK = ago(2500 * time.Millisecond) })
	}
	standalone = func(s *Snapshot) *Snapshot {
		s.Standalone, s.DCS, s.Lockd = true, DCSObservation{}, nil
		return s
	}
)

var paths = []string{"/", "/primary", "/master", "/read-write", "/leader", "/standby-leader", "/replica",
	"/replica?lag=16MB", "/read-only", "/read-only?lag=16MB", "/health", "/liveness", "/readiness", "/sync",
	"/async", "/read-only-sync", "/patroni", "/cluster", "/history", "/config", "/metrics", "/nonsense"}

// codes lists the expected status per path, in the order of paths.
func codes(list ...int) map[string]int {
	if len(list) != len(paths) {
		panic("codes: one per path")
	}
	m := map[string]int{}
	for i, p := range paths {
		m[p] = list[i]
	}
	return m
}

const (
	ok  = 200
	no  = 503
	bad = 502
)

func TestDecideTable(t *testing.T) {
	tests := []struct {
		name string
		snap *Snapshot
		want map[string]int
	}{
		//                                  /   prim mast rw   lead sblead rep  rep16 ro   ro16 heal live read sync async rosyn patr clus hist conf metr nons
		{"primary", primary(), codes(ok, ok, ok, ok, ok, no, no, no, ok, ok, ok, ok, ok, no, no, ok, ok, ok, ok, ok, ok, no)},
		{"replica", replica(), codes(no, no, no, no, no, no, ok, ok, ok, ok, ok, ok, ok, no, ok, no, ok, ok, ok, ok, ok, no)},
		{"lagging replica", laggingReplica(), codes(no, no, no, no, no, no, ok, no, ok, no, ok, ok, no, no, ok, no, ok, ok, ok, ok, ok, no)},
		{"stopped postgres", stoppedPG(), codes(no, no, no, no, no, no, no, no, no, no, no, ok, no, no, no, no, ok, ok, ok, ok, ok, no)},
		{"hung postgres", hungPG(), codes(no, no, no, no, no, no, no, no, no, no, no, ok, no, no, no, no, ok, ok, ok, ok, ok, no)},
		{"etcd unreachable, primary", etcdDown(), codes(no, no, no, no, no, no, no, no, no, no, ok, ok, no, no, no, no, ok, ok, ok, ok, ok, no)},
		{"etcd unreachable, replica", etcdDownReplica(), codes(no, no, no, no, no, no, ok, ok, ok, ok, ok, ok, no, no, ok, no, ok, ok, ok, ok, ok, no)},
		{"etcd never read", with(primary(), func(s *Snapshot) { s.DCS = DCSObservation{Err: "connection refused"} }),
			codes(no, no, no, no, no, no, no, no, no, no, ok, ok, no, no, no, no, ok, no, no, no, ok, no)},
		{"no config key", with(primary(), func(s *Snapshot) { s.DCS.Cluster.Config = nil }),
			codes(ok, ok, ok, ok, ok, no, no, no, ok, ok, ok, ok, ok, no, no, ok, ok, ok, ok, bad, ok, no)},
		{"standalone primary", standalone(primary()), codes(ok, ok, ok, ok, ok, no, no, no, ok, ok, ok, ok, ok, no, no, no, ok, no, no, no, ok, no)},
		{"standalone replica", standalone(replica()), codes(no, no, no, no, no, no, ok, ok, ok, ok, ok, ok, ok, no, no, no, ok, no, no, no, ok, no)},
		{"standalone stopped", standalone(stoppedPG()), codes(no, no, no, no, no, no, no, no, no, no, no, ok, no, no, no, no, ok, no, no, no, ok, no)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, p := range paths {
				path, query, _ := strings.Cut(p, "?")
				got, _ := Decide(tt.snap, bounds, now, ParseRequest(path, query))
				if got != tt.want[p] {
					f := Evaluate(tt.snap, bounds, now)
					t.Errorf("%s: %d, want %d (facts %+v)", p, got, tt.want[p], f)
				}
			}
		})
	}
}

// TestPrimaryFailsClosed lists every reason /primary refuses a node whose
// PostgreSQL is writable.
func TestPrimaryFailsClosed(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Snapshot)
		why  string // substring of Facts.Why; "" means /primary is 200
	}{
		{"healthy", func(*Snapshot) {}, ""},
		{"postgres answered 2.1 s ago", func(s *Snapshot) { s.PG.OK = ago(2100 * time.Millisecond) }, "not answering"},
		{"postgres last attempt failed", func(s *Snapshot) { s.PG.Failed, s.PG.Err = ago(10*time.Millisecond), "timeout" }, "timeout"},
		{"postgres never answered", func(s *Snapshot) { s.PG = PGObservation{} }, "not answering"},
		{"in recovery", func(s *Snapshot) { s.PG.Status.InRecovery = true }, "in recovery"},
		{"etcd confirmed 2.1 s ago", func(s *Snapshot) { s.DCS.Confirmed = ago(2100 * time.Millisecond) }, "not confirmed"},
		{"etcd confirmed in the future", func(s *Snapshot) { s.DCS.Confirmed = ahead(5 * time.Second) }, "not confirmed"},
		{"leader key held by node2", func(s *Snapshot) { s.DCS.Cluster = cluster("node2", 1) }, "held by node2"},
		{"no leader key", func(s *Snapshot) { s.DCS.Cluster = cluster("", 1) }, "nobody holds"},
		{"lockd validity ran out", func(s *Snapshot) { s.Lockd.ValidUntil = ago(time.Millisecond) }, "validity ends"},
		{"lockd validity within the margin", func(s *Snapshot) { s.Lockd.ValidUntil = ahead(900 * time.Millisecond) }, "validity ends"},
		{"lockd validity unset", func(s *Snapshot) { s.Lockd.ValidUntil = 0 }, "validity ends"},
		{"lockd not leader", func(s *Snapshot) { s.Lockd.Role = "candidate" }, "role is candidate"},
		{"lockd file absent", func(s *Snapshot) { s.Lockd = nil }, ""},
		{"lockd heartbeat old but validity left", func(s *Snapshot) { s.Lockd.Updated = ago(5 * time.Second) }, ""},
		{"supervise fenced", func(s *Snapshot) { s.Supervise.State = state.Fenced }, "state is fenced"},
		{"supervise stopped", func(s *Snapshot) { s.Supervise.State = state.Stopped }, "state is stopped"},
		{"supervise demoting", func(s *Snapshot) { s.Supervise.State = state.Demoting }, "state is demoting"},
		{"supervise promoting", func(s *Snapshot) { s.Supervise.State = state.Promoting }, ""},
		{"supervise fences in 0.5 s", func(s *Snapshot) { s.Supervise.Deadline = ahead(500 * time.Millisecond) }, "fences in"},
		{"supervise file absent", func(s *Snapshot) { s.Supervise = nil }, ""},
		{"standby cluster", func(s *Snapshot) { s.DCS.StandbyCluster = true }, "standby cluster"},
		// failsafe_mode: etcd cannot confirm, every member promised.
		{"etcd lost, failsafe deadline ahead", failsafeLeader(ahead(5 * time.Second)), ""},
		{"etcd lost, failsafe deadline within the margin", failsafeLeader(ahead(900 * time.Millisecond)), "not confirmed"},
		{"etcd lost, failsafe deadline passed", failsafeLeader(ago(time.Second)), "not confirmed"},
		{"etcd lost, failsafe deadline but lockd not leader", func(s *Snapshot) {
			failsafeLeader(ahead(5 * time.Second))(s)
			s.Lockd.Role = "replica"
		}, "not confirmed"},
		{"failsafe deadline but a confirmed view names node2", func(s *Snapshot) {
			failsafeLeader(ahead(5 * time.Second))(s)
			s.DCS.Confirmed, s.DCS.Cluster = ago(100*time.Millisecond), cluster("node2", 1)
		}, "held by node2"},
		{"failsafe deadline and a confirmed view without a leader", func(s *Snapshot) {
			failsafeLeader(ahead(5 * time.Second))(s)
			s.DCS.Confirmed, s.DCS.Cluster = ago(100*time.Millisecond), cluster("", 1)
		}, "nobody holds"},
		{"etcd lost, failsafe armed, lease still valid", func(s *Snapshot) {
			failsafeLeader(0)(s)
			s.Lockd.ValidUntil = ahead(4 * time.Second)
		}, ""},
		{"etcd lost, lease still valid, failsafe not armed", func(s *Snapshot) {
			failsafeLeader(0)(s)
			s.Lockd.ValidUntil, s.Lockd.FailsafeMode = ahead(4*time.Second), false
		}, "not confirmed"},
		{"failsafe deadline, supervise fences in 0.5 s", func(s *Snapshot) {
			failsafeLeader(ahead(5 * time.Second))(s)
			s.Supervise.Deadline = ahead(500 * time.Millisecond)
		}, "fences in"},
		{"failsafe deadline, in recovery", func(s *Snapshot) {
			failsafeLeader(ahead(5 * time.Second))(s)
			s.PG.Status.InRecovery = true
		}, "in recovery"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := primary()
			tt.mod(s)
			f := Evaluate(s, bounds, now)
			code, _ := Decide(s, bounds, now, ParseRequest("/primary", ""))
			if tt.why == "" {
				if !f.Primary || code != 200 {
					t.Fatalf("/primary %d, facts %+v; want 200", code, f)
				}
				return
			}
			if f.Primary || code != 503 {
				t.Fatalf("/primary %d; want 503 (%s)", code, tt.why)
			}
			if !strings.Contains(f.Why, tt.why) {
				t.Errorf("why %q, want it to mention %q", f.Why, tt.why)
			}
		})
	}
}

// failsafeLeader: etcd last confirmed 20 s ago, the lease ran out, and
// pg-lockd holds a lead deadline failsafe rounds won until until;
// pg-supervise's deadline is 5 s ahead.
func failsafeLeader(until clock.Time) func(*Snapshot) {
	return func(s *Snapshot) {
		s.DCS.Confirmed = ago(20 * time.Second)
		s.Lockd.ValidUntil, s.Lockd.FailsafeUntil, s.Lockd.EtcdOK = ago(10*time.Second), until, false
		s.Lockd.FailsafeMode = true
		s.Supervise.Deadline = ahead(5 * time.Second)
	}
}

// failsafe_mode_is_active: on the leader while it leads on failsafe rounds,
// on another member while a promise it gave binds; GET /failsafe is the
// failsafe key of the last view, 502 without one.
func TestFailsafeActive(t *testing.T) {
	s := primary()
	if f := Evaluate(s, bounds, now); f.FailsafeActive || strings.Contains(string(StatusJSON(s, &f)), "failsafe_mode_is_active") {
		t.Errorf("leader with a confirmed view: failsafe active %v, want false and no status field", f.FailsafeActive)
	}
	failsafeLeader(ahead(5 * time.Second))(s)
	f := Evaluate(s, bounds, now)
	if !f.FailsafeActive || !f.Primary {
		t.Errorf("leader on failsafe: active %v primary %v (%s), want both", f.FailsafeActive, f.Primary, f.Why)
	}
	if !strings.Contains(string(StatusJSON(s, &f)), `"failsafe_mode_is_active":true`) {
		t.Errorf("status %s lacks failsafe_mode_is_active", StatusJSON(s, &f))
	}
	r := replica()
	r.Promise = &state.Failsafe{Leader: "node1", Received: ago(time.Second), Until: ahead(7 * time.Second)}
	if f := Evaluate(r, bounds, now); !f.FailsafeActive {
		t.Error("replica with a promise that binds: failsafe not active")
	}
	r.Promise.Until = ago(time.Millisecond)
	if f := Evaluate(r, bounds, now); f.FailsafeActive {
		t.Error("replica with an expired promise: failsafe active")
	}

	req := ParseRequest("/failsafe", "")
	if req.Route != RouteFailsafe {
		t.Fatalf("/failsafe routes to %s", req.Route)
	}
	if code, body := Decide(r, bounds, now, req); code != 502 || body != BodyNone {
		t.Errorf("/failsafe without the key: %d %v, want 502", code, body)
	}
	r.DCS.Cluster.Failsafe = map[string]string{"node1": "http://10.0.0.1:8008/patroni"}
	if code, body := Decide(r, bounds, now, req); code != 200 || body != BodyFailsafe {
		t.Errorf("/failsafe with the key: %d %v, want 200 and the key", code, body)
	}
	if got := string(Render(r, bounds, now).Failsafe); got != `{"node1":"http://10.0.0.1:8008/patroni"}` {
		t.Errorf("/failsafe body %s", got)
	}
	r.Standalone = true
	if code, _ := Decide(r, bounds, now, req); code != 502 {
		t.Errorf("/failsafe standalone: %d, want 502", code)
	}
}

func TestStandbyLeader(t *testing.T) {
	s := with(replica(), func(s *Snapshot) {
		s.Name = "node1" // holds the leader key of a standby cluster
		s.DCS.StandbyCluster = true
		s.Lockd = &state.Lockd{Role: "leader", ValidUntil: ahead(7 * time.Second), Updated: ago(time.Second)}
	})
	want := map[string]int{"/standby-leader": 200, "/standby_leader": 200, "/leader": 200, "/primary": 503,
		"/replica": 503, "/read-only": 200, "/readiness": 200}
	for p, code := range want {
		if got, _ := Decide(s, bounds, now, ParseRequest(p, "")); got != code {
			t.Errorf("%s: %d, want %d", p, got, code)
		}
	}
	if f := Evaluate(s, bounds, now); f.Role != "standby_leader" {
		t.Errorf("role %q, want standby_leader", f.Role)
	}
}

func TestReplicaFilters(t *testing.T) {
	archive := with(replica(), func(s *Snapshot) { s.PG.Status.ReceiverStatus, s.RestoreCommand = "", true })
	noLB := with(replica(), func(s *Snapshot) { s.NoLoadBalance = true })
	tests := []struct {
		snap  *Snapshot
		path  string
		query string
		want  int
	}{
		{replica(), "/replica", "tag_zone=a", 200},
		{replica(), "/replica", "tag_zone=b", 503},
		{replica(), "/replica", "tag_zone=a&tag_ssd=true&tag_weight=1", 200},
		{replica(), "/replica", "tag_ssd=True", 503},         // Python's str(True).lower()
		{replica(), "/replica", "tag_nofailover=false", 503}, // false special tags are dropped
		{replica(), "/replica", "tag_missing=x", 503},
		{replica(), "/replica", "tag_zone=", 200}, // blank values are ignored, as parse_qs does
		{replica(), "/replica", "tag_zone=a&tag_zone=b", 200},
		{replica(), "/health", "tag_zone=b", 503},
		{replica(), "/read-only", "tag_zone=b", 503},
		{primary(), "/primary", "tag_zone=b", 200}, // the leader checks ignore tags
		{primary(), "/read-only", "tag_zone=b", 503},
		{replica(), "/replica", "replication_state=streaming", 200},
		{archive, "/replica", "replication_state=streaming", 503},
		{archive, "/replica", "replication_state=in+archive+recovery", 200},
		{archive, "/replica", "", 200},
		{replica(), "/replica", "lag=0", 200},
		{laggingReplica(), "/replica", "lag=100MB", 200},
		{laggingReplica(), "/replica", "lag=104857599", 503},
		{laggingReplica(), "/replica", "lag=1GB", 200},
		{laggingReplica(), "/replica", "lag=garbage", 200}, // unparsable: no limit, as Patroni
		{laggingReplica(), "/replica", "lag=%zz", 200},
		{laggingReplica(), "/replica", "lag=9223372036854775807", 200},
		{laggingReplica(), "/replica", "lag=-5", 503},
		{noLB, "/replica", "", 503},
		{noLB, "/read-only", "", 503},
		{noLB, "/health", "", 200},
		{noLB, "/async", "", 503},
	}
	for _, tt := range tests {
		got, _ := Decide(tt.snap, bounds, now, ParseRequest(tt.path, tt.query))
		if got != tt.want {
			t.Errorf("%s?%s on %s: %d, want %d", tt.path, tt.query, tt.snap.Name, got, tt.want)
		}
	}
}

func TestLivenessReadiness(t *testing.T) {
	tests := []struct {
		name       string
		snap       *Snapshot
		live, read bool
	}{
		{"primary", primary(), true, true},
		{"replica", replica(), true, true},
		{"primary, heartbeat 9 s old (ttl 8 s)", with(primary(), func(s *Snapshot) { s.Lockd.Updated = ago(9 * time.Second) }), false, true},
		{"replica, heartbeat 9 s old (2·ttl 16 s)", with(replica(), func(s *Snapshot) { s.Lockd.Updated = ago(9 * time.Second) }), true, true},
		{"replica, heartbeat 17 s old", with(replica(), func(s *Snapshot) { s.Lockd.Updated = ago(17 * time.Second) }), false, true},
		{"replica, heartbeat 17 s old, paused", with(replica(), func(s *Snapshot) {
			s.Lockd.Updated, s.Lockd.Paused = ago(17*time.Second), true
		}), true, true},
		{"no lockd.json", with(replica(), func(s *Snapshot) { s.Lockd = nil }), false, true},
		{"refresh loop stuck", with(replica(), func(s *Snapshot) { s.At = ago(3 * time.Second) }), false, true},
		{"lagging replica", laggingReplica(), true, false},
		{"replica, etcd unreachable", etcdDownReplica(), true, false},
		{"stopped", stoppedPG(), true, false},
		{"standalone replica", standalone(replica()), true, true},
		{"standalone replica behind what it received", standalone(with(replica(), func(s *Snapshot) {
			s.PG.Status.ReceiveLSN += 2 * mib
		})), true, false},
	}
	for _, tt := range tests {
		f := Evaluate(tt.snap, bounds, now)
		if f.Live != tt.live || f.Ready != tt.read {
			t.Errorf("%s: live %v ready %v, want %v %v", tt.name, f.Live, f.Ready, tt.live, tt.read)
		}
	}
}

func TestStateAndRole(t *testing.T) {
	tests := []struct {
		name        string
		snap        *Snapshot
		state, role string
	}{
		{"primary", primary(), "running", "master"},
		{"replica", replica(), "running", "replica"},
		{"stopped by pg-supervise", stoppedPG(), "stopped", "master"},
		{"refused, no pg-supervise", with(stoppedPG(), func(s *Snapshot) { s.Supervise = nil }), "stopped", "master"},
		{"hung", hungPG(), "unknown", "master"},
		{"fenced", with(stoppedPG(), func(s *Snapshot) { s.Supervise.State = state.Fenced }), "fenced", "master"},
		{"starting replica", with(stoppedPG(), func(s *Snapshot) {
			s.Supervise.State, s.Supervise.Role = state.Starting, "replica"
		}), "starting", "replica"},
		{"never seen", with(base("x"), func(s *Snapshot) { s.PG.Failed, s.PG.Err = ago(1), "timeout" }), "unknown", "uninitialized"},
	}
	for _, tt := range tests {
		f := Evaluate(tt.snap, bounds, now)
		if f.State != tt.state || f.Role != tt.role {
			t.Errorf("%s: state %q role %q, want %q %q", tt.name, f.State, f.Role, tt.state, tt.role)
		}
	}
}

func TestRoute(t *testing.T) {
	tests := map[string]Route{
		"/": RoutePrimary, "/primary": RoutePrimary, "/master": RoutePrimary, "/read-write": RoutePrimary,
		"/primary/": RoutePrimary, "/x/primary": RoutePrimary,
		"/leader": RouteLeader, "/standby-leader": RouteStandbyLeader, "/standby_leader": RouteStandbyLeader,
		"/replica": RouteReplica, "/read-only": RouteReadOnly, "/read-only-sync": RouteReadOnlySync,
		"/read-only-synchronous": RouteReadOnlySync, "/sync": RouteSync, "/synchronous": RouteSync,
		"/async": RouteAsync, "/asynchronous": RouteAsync, "/health": RouteHealth, "/healthz": RouteHealth,
		"/liveness": RouteLiveness, "/readiness": RouteReadiness, "/patroni": RoutePatroni,
		"/cluster": RouteCluster, "/cluster/x": RouteCluster, "/history": RouteHistory, "/config": RouteConfig,
		"/metrics": RouteMetrics, "": RouteUnknown, "/nonsense": RouteUnknown, "/sync/": RouteUnknown,
		"//":      RouteUnknown,
		"/quorum": RouteQuorum, "/read-only-quorum": RouteReadOnlyQuorum, "/quorum/": RouteUnknown,
		"/read-only-quorum-x": RouteUnknown, "/read-only-quorumish": RouteUnknown, "/x/read-only": RouteReadOnly,
		"/read-only-synchronousx": RouteUnknown,
	}
	for path, want := range tests {
		if got := route(path); got != want {
			t.Errorf("route(%q) = %v, want %v", path, got, want)
		}
	}
}

func TestParseRequest(t *testing.T) {
	r := ParseRequest("/replica", "lag=16MB&tag_zone=a&tag_zone=b&replication_state=streaming&x&=y&tag_%zz=1&tag_ssd=true")
	if !r.HasLag || r.MaxLag != 16*mib || r.ReplicationState != "streaming" {
		t.Errorf("lag %d %v, state %q", r.MaxLag, r.HasLag, r.ReplicationState)
	}
	if len(r.Tags) != 2 || r.Tags[0] != (TagFilter{"zone", "a"}) || r.Tags[1] != (TagFilter{"ssd", "true"}) {
		t.Errorf("tags %+v", r.Tags)
	}
	q := strings.Repeat("tag_k=v&", 10000)
	if r := ParseRequest("/replica", q); len(r.Tags) > maxTagFilters {
		t.Errorf("%d tag filters kept, want at most %d", len(r.Tags), maxTagFilters)
	}
	many := url.Values{}
	for i := range 1000 {
		many.Set("tag_k"+strings.Repeat("x", i%50)+string(rune('a'+i%26)), "v")
	}
	if r := ParseRequest("/replica", many.Encode()); len(r.Tags) != maxTagFilters {
		t.Errorf("%d tag filters kept, want %d", len(r.Tags), maxTagFilters)
	}
}

func TestParseLag(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"1048576", 1048576, true}, {" 16MB ", 16 << 20, true}, {"16 MB", 16 << 20, true},
		{"1024kB", 1 << 20, true}, {"1GB", 1 << 30, true}, {"1TB", 1 << 40, true}, {"10B", 10, true},
		{"0x400", 1024, true}, {"0x400MB", 1024 << 20, true}, {"010", 8, true}, {"-1", -1, true}, {"+5", 5, true},
		{"1.5MB", 1536 << 10, true}, {"4097.5kB", 4097*1024 + 512, true}, {"1e3", 1000, true}, {".5kB", 512, true},
		{"2.5", 2, true}, {"3.5", 4, true}, // rint: half to even
		{"16mb", 0, false}, {"16 M", 0, false}, {"abc", 0, false}, {"", 0, false}, {"08", 0, false},
		{"1.", 0, false}, {"MB", 0, false}, {"1 2", 0, false},
		{"99999999999999999999", 1<<63 - 1, true}, {"99999999999TB", 1<<63 - 1, true}, {"1e400", 1<<63 - 1, true},
	}
	for _, tt := range tests {
		got, ok := ParseLag(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseLag(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestPyStr(t *testing.T) {
	tests := map[string]any{"a": "a", "true": true, "false": false, "1": 1, "1.5": 1.5, "2.0": 2.0, "none": nil}
	for want, v := range tests {
		if got := pyStr(v); got != want {
			t.Errorf("pyStr(%#v) = %q, want %q", v, got, want)
		}
	}
}

func TestDefaultBounds(t *testing.T) {
	if b := DefaultBounds(8 * time.Second); b.DCS != 2*time.Second || b.PG != 2*time.Second {
		t.Errorf("ttl 8s: %+v", b)
	}
	if b := DefaultBounds(3 * time.Second); b.DCS != 1500*time.Millisecond {
		t.Errorf("ttl 3s: DCS bound %v, want ttl/2", b.DCS)
	}
}
