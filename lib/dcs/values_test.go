package dcs

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/pg-ha/pg-ha/lib/config"
	"reflect"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

func i64(v int64) *int64 { return &v }

func TestHistoryJSON(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []HistoryEntry
		err  bool
	}{
		{in: `[]`, want: []HistoryEntry{}},
		{in: `[[1,25165984,"no recovery target specified"]]`,
			want: []HistoryEntry{{Timeline: 1, LSN: 25165984, Reason: "no recovery target specified"}}},
		{in: `[[1,25165984,"no recovery target specified","2023-05-05T10:53:25.123456+00:00"],[2,50331808,"no recovery target specified","2023-05-05T11:00:00+02:00","node2"]]`,
			want: []HistoryEntry{
				{Timeline: 1, LSN: 25165984, Reason: "no recovery target specified", Timestamp: "2023-05-05T10:53:25.123456+00:00"},
				{Timeline: 2, LSN: 50331808, Reason: "no recovery target specified", Timestamp: "2023-05-05T11:00:00+02:00", NewLeader: "node2"},
			}},
		{in: `[[3, 100.0, null, null, null]]`, want: []HistoryEntry{{Timeline: 3, LSN: 100}}},
		{in: `[[4, "200"]]`, want: []HistoryEntry{{Timeline: 4, LSN: 200}}},
		{in: `[["a"]]`, err: true},
		{in: `[[1]]`, err: true},
		{in: `[[1, 1.5, "x"]]`, err: true},
		{in: `{"1": 2}`, err: true},
		{in: `[[1, 2, 3]]`, err: true},
	} {
		var got []HistoryEntry
		err := json.Unmarshal([]byte(tc.in), &got)
		if (err != nil) != tc.err {
			t.Errorf("%s: err = %v, want error %v", tc.in, err, tc.err)
			continue
		}
		if !tc.err && !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestHistoryMarshal(t *testing.T) {
	h := []HistoryEntry{
		{Timeline: 1, LSN: 100, Reason: "r"},
		{Timeline: 2, LSN: 200, Reason: "r", Timestamp: "2023-05-05T11:00:00+00:00"},
		{Timeline: 3, LSN: 300, Reason: "r", Timestamp: "2023-05-05T12:00:00+00:00", NewLeader: "n3"},
	}
	b, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	want := `[[1,100,"r"],[2,200,"r","2023-05-05T11:00:00+00:00"],[3,300,"r","2023-05-05T12:00:00+00:00","n3"]]`
	if string(b) != want {
		t.Errorf("got %s, want %s", b, want)
	}
	var back []HistoryEntry
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, h) {
		t.Errorf("round trip: %+v, %v", back, err)
	}
}

func TestParseISOTime(t *testing.T) {
	ref := time.Date(2016, 1, 14, 10, 9, 57, 139400000, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"2016-01-14T10:09:57.1394+00:00", ref},
		{"2016-01-14T10:09:57.1394Z", ref},
		{"2016-01-14T10:09:57.139400+00:00", ref},
		{"2016-01-14 10:09:57.1394+00:00", ref},
		{"2016-01-14T11:09:57.1394+01:00", ref},
		{"2016-01-14T11:09:57.1394+0100", ref},
		{"2016-01-14T11:09:57.1394+01", ref},
		{"2016-01-14T10:09:57.1394", ref},
		{"2016-01-14T10:09:57+00:00", ref.Truncate(time.Second)},
	} {
		got, err := ParseISOTime(tc.in)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("ParseISOTime(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "yesterday", "2016-01-14", "10:09:57"} {
		if _, err := ParseISOTime(bad); err == nil {
			t.Errorf("ParseISOTime(%q) succeeded", bad)
		}
	}
}

func TestFailoverJSON(t *testing.T) {
	at := time.Date(2016, 1, 14, 10, 9, 57, 139400000, time.UTC)
	for _, tc := range []struct {
		in   string
		want Failover
		err  bool
	}{
		{in: `{"leader":"n1"}`, want: Failover{Leader: "n1"}},
		{in: `{"leader":"n1","member":"n2","scheduled_at":"2016-01-14T10:09:57.1394+00:00"}`,
			want: Failover{Leader: "n1", Member: "n2", ScheduledAt: &at}},
		{in: `{"member":"n2","scheduled_at":"2016-01-14T10:09:57.1394Z"}`, want: Failover{Member: "n2", ScheduledAt: &at}},
		{in: `{"leader":null,"member":"n2","scheduled_at":null}`, want: Failover{Member: "n2"}},
		{in: `{}`, want: Failover{}},
		{in: `n1:n2`, want: Failover{Leader: "n1", Member: "n2"}},
		{in: ` n1 `, want: Failover{Leader: "n1"}},
		{in: `:n2`, want: Failover{Member: "n2"}},
		{in: `{"scheduled_at":"soon"}`, err: true},
		{in: `[1]`, err: true},
		{in: ``, err: true},
	} {
		got, err := parseFailoverValue([]byte(tc.in))
		if (err != nil) != tc.err {
			t.Errorf("%q: err = %v, want error %v", tc.in, err, tc.err)
			continue
		}
		if tc.err {
			continue
		}
		if got.Leader != tc.want.Leader || got.Member != tc.want.Member ||
			(got.ScheduledAt == nil) != (tc.want.ScheduledAt == nil) ||
			(got.ScheduledAt != nil && !got.ScheduledAt.Equal(*tc.want.ScheduledAt)) {
			t.Errorf("%q: got %+v, want %+v", tc.in, got, tc.want)
		}
	}
	b, err := json.Marshal(Failover{Leader: "n1", Member: "n2", ScheduledAt: &at})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"leader":"n1","member":"n2","scheduled_at":"2016-01-14T10:09:57.1394+00:00"}`; string(b) != want {
		t.Errorf("marshal: got %s, want %s", b, want)
	}
}

func TestMemberDataRoundTrip(t *testing.T) {
	// As Patroni 3.0.2 writes it, with fields pg-ha does not model.
	in := `{"conn_url":"postgres://10.0.0.1:5432/postgres","api_url":"http://10.0.0.1:8008/patroni","state":"running","role":"primary","version":"3.0.2","checkpoint_after_promote":false,"tags":{"nofailover":false,"clonefrom":true},"xlog_location":50331808,"timeline":2,"scheduled_restart":{"schedule":"2023-05-05T10:00:00+00:00"},"pause":true}`
	d, err := parseMemberValue([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if d.ConnURL != "postgres://10.0.0.1:5432/postgres" || d.Role != "primary" || d.XLogLocation == nil || *d.XLogLocation != 50331808 ||
		d.Timeline != 2 || !d.Pause || d.Tags["clonefrom"] != true || len(d.Extra) != 2 {
		t.Errorf("parsed %+v", d)
	}
	out, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	var a, b map[string]any
	json.Unmarshal([]byte(in), &a)
	json.Unmarshal(out, &b)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("round trip changed the value:\n in  %s\n out %s", in, out)
	}

	// pg-ha's own fields, absent ones omitted.
	prio := 3
	out, _ = json.Marshal(MemberData{ConnURL: "c", APIURL: "a", State: "running", Role: "replica",
		ReceivedLocation: i64(10), ReplayedLocation: i64(9), FailoverPriority: &prio})
	if want := `{"conn_url":"c","api_url":"a","state":"running","role":"replica","received_location":10,"replayed_location":9,"failover_priority":3}`; string(out) != want {
		t.Errorf("marshal: %s, want %s", out, want)
	}

	// Governor-era value.
	d, err = parseMemberValue([]byte("postgres://u:p@10.0.0.2:5432/postgres?application_name=http://10.0.0.2:8008/patroni"))
	if err != nil || d.ConnURL != "postgres://u:p@10.0.0.2:5432/postgres" || d.APIURL != "http://10.0.0.2:8008/patroni" {
		t.Errorf("legacy member: %+v, %v", d, err)
	}
}

func kv(key, val string, rev, lease int64) *mvccpb.KeyValue {
	return &mvccpb.KeyValue{Key: []byte(key), Value: []byte(val), CreateRevision: rev, ModRevision: rev, Lease: lease, Version: 1}
}

func TestParseCluster(t *testing.T) {
	const p = "/service/demo/"
	full := []*mvccpb.KeyValue{
		kv(p+"config", `{"ttl":30,"loop_wait":10}`, 3, 0),
		kv(p+"failover", `{"leader":"n1","member":"n2"}`, 9, 0),
		kv(p+"failsafe", `{"n1":"http://n1:8008/patroni"}`, 8, 0),
		kv(p+"history", `[[1,25165984,"no recovery target specified","2023-05-05T10:53:25+00:00","n1"]]`, 7, 0),
		kv(p+"initialize", `7229347386571636851`, 2, 0),
		kv(p+"leader", `n1`, 5, 0x1234),
		kv(p+"members/n2", `{"conn_url":"postgres://n2:5432/postgres","api_url":"http://n2:8008/patroni","state":"running","role":"replica"}`, 6, 0x22),
		kv(p+"members/n1", `{"conn_url":"postgres://n1:5432/postgres","api_url":"http://n1:8008/patroni","state":"running","role":"primary","xlog_location":123}`, 4, 0x1234),
		kv(p+"optime/leader", `99`, 10, 0),
		kv(p+"status", `{"optime":50331808,"slots":{"logical1":50331000}}`, 11, 0),
		kv(p+"sync", `{"leader":"n1","sync_standby":"n2"}`, 12, 0),
		kv(p+"1/leader", `citus-worker`, 13, 0),
		kv(p+"members/x/y", `{}`, 14, 0),
	}
	cl := parseCluster(zerolog.Nop(), p, 20, full)
	if cl.Revision != 20 || !cl.InitializeSet || cl.Initialize != "7229347386571636851" {
		t.Errorf("initialize/revision: %+v", cl)
	}
	if string(cl.Config) != `{"ttl":30,"loop_wait":10}` || cl.ConfigRev != 3 {
		t.Errorf("config: %s @%d", cl.Config, cl.ConfigRev)
	}
	if cl.Leader == nil || *cl.Leader != (Leader{Name: "n1", Lease: 0x1234, CreateRevision: 5, ModRevision: 5}) {
		t.Errorf("leader: %+v", cl.Leader)
	}
	if len(cl.Members) != 2 || cl.Members[0].Name != "n1" || cl.Members[1].Name != "n2" {
		t.Fatalf("members: %+v", cl.Members)
	}
	if m := cl.Member("n1"); m == nil || m.Lease != 0x1234 || m.ModRevision != 4 || m.Data.Role != "primary" || *m.Data.XLogLocation != 123 {
		t.Errorf("member n1: %+v", m)
	}
	if cl.Member("n3") != nil {
		t.Errorf("member n3 found")
	}
	if cl.Failover == nil || *cl.Failover != (Failover{Leader: "n1", Member: "n2"}) || cl.FailoverRev != 9 {
		t.Errorf("failover: %+v @%d", cl.Failover, cl.FailoverRev)
	}
	if cl.Sync == nil || cl.Sync.Leader != "n1" || !reflect.DeepEqual(cl.Sync.Standbys, []string{"n2"}) || cl.Sync.ModRevision != 12 || cl.SyncRev != 12 {
		t.Errorf("sync: %+v", cl.Sync)
	}
	if len(cl.History) != 1 || cl.History[0].NewLeader != "n1" {
		t.Errorf("history: %+v", cl.History)
	}
	if cl.Status.Optime != 50331808 || cl.Status.Slots["logical1"] != 50331000 {
		t.Errorf("status (must win over optime/leader): %+v", cl.Status)
	}
	if cl.Failsafe["n1"] != "http://n1:8008/patroni" {
		t.Errorf("failsafe: %+v", cl.Failsafe)
	}

	// Legacy optime without status; absent keys.
	cl = parseCluster(zerolog.Nop(), p, 5, []*mvccpb.KeyValue{kv(p+"optime/leader", "12345", 2, 0), kv(p+"initialize", "", 3, 0)})
	if cl.Status.Optime != 12345 || cl.Leader != nil || cl.Members != nil || cl.Config != nil || cl.Failover != nil ||
		cl.Sync != nil || cl.History != nil || cl.Failsafe != nil || !cl.InitializeSet || cl.Initialize != "" {
		t.Errorf("legacy optime / absent keys: %+v", cl)
	}
	if cl = parseCluster(zerolog.Nop(), p, 5, nil); cl.InitializeSet {
		t.Errorf("empty cluster has initialize")
	}

	// Garbage in every key is logged and left empty, never fatal.
	garbage := []*mvccpb.KeyValue{
		kv(p+"config", `{"ttl":`, 3, 0),
		kv(p+"failover", `[1,2]`, 4, 0),
		kv(p+"failsafe", `["n1"]`, 5, 0),
		kv(p+"history", `[["x"]]`, 6, 0),
		kv(p+"members/bad", `{"conn_url": 5`, 7, 0x7),
		kv(p+"members/good", `{"conn_url":"postgres://g/postgres","api_url":"http://g","state":"running","role":"replica"}`, 8, 0x8),
		kv(p+"status", `optime`, 9, 0),
		kv(p+"optime/leader", `12`, 9, 0),
		kv(p+"sync", `"n1"`, 10, 0),
	}
	cl = parseCluster(zerolog.Nop(), p, 11, garbage)
	if cl.Config != nil || cl.ConfigRev != 3 || cl.Failover != nil || cl.FailoverRev != 4 || cl.Failsafe != nil || cl.History != nil ||
		cl.Status.Optime != 0 || cl.Sync != nil || cl.SyncRev != 10 {
		t.Errorf("garbage parsed into %+v", cl)
	}
	if len(cl.Members) != 2 || cl.Member("bad").Lease != 0x7 || cl.Member("bad").Data.ConnURL != "" || string(cl.Member("bad").Raw) != `{"conn_url": 5` ||
		cl.Member("good").Data.Role != "replica" {
		t.Errorf("members with garbage: %+v", cl.Members)
	}
}

func TestTranslate(t *testing.T) {
	for _, tc := range []struct {
		in   error
		want error
	}{
		{rpctypes.ErrGRPCNoLeader, ErrNoQuorum},
		{rpctypes.ErrNoLeader, ErrNoQuorum},
		{rpctypes.ErrGRPCLeaseNotFound, ErrLeaseNotFound},
		{rpctypes.ErrLeaseNotFound, ErrLeaseNotFound},
		{fmt.Errorf("x: %w", rpctypes.ErrLeaseNotFound), ErrLeaseNotFound},
	} {
		if got := translate(tc.in); !errors.Is(got, tc.want) {
			t.Errorf("translate(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
	for _, e := range []error{errors.New("boom"), rpctypes.ErrCompacted} {
		if got := translate(e); errors.Is(got, ErrNoQuorum) || errors.Is(got, ErrLeaseNotFound) || got != e {
			t.Errorf("translate(%v) = %v", e, got)
		}
	}
	if translate(nil) != nil {
		t.Errorf("translate(nil) != nil")
	}
}

func TestEventQueueCoalesces(t *testing.T) {
	q := &eventQueue{notify: make(chan struct{}, 1)}
	q.push(Event{Key: "a", Revision: 1})
	q.push(Event{Resync: true})
	q.push(Event{Key: "b", Revision: 3})
	var got []Event
	for e, ok := q.pop(); ok; e, ok = q.pop() {
		got = append(got, e)
	}
	if want := []Event{{Resync: true}, {Key: "b", Revision: 3}}; !reflect.DeepEqual(got, want) {
		t.Errorf("resync did not supersede: %+v", got)
	}

	for i := range watchMaxPending + 10 {
		q.push(Event{Key: "k", Revision: int64(i)})
	}
	got = got[:0]
	for e, ok := q.pop(); ok; e, ok = q.pop() {
		got = append(got, e)
	}
	if len(got) != 10 || !got[0].Resync || got[1].Revision != watchMaxPending+1 {
		t.Errorf("overflow: %d events, first %+v", len(got), got[0])
	}
}

// A member key written by another tool with booleans as strings or numbers
// is read, not dropped, and its tags read as Patroni reads them.
func TestMemberDataForeignBooleans(t *testing.T) {
	for _, tt := range []struct {
		raw                   string
		pause, pendingRestart bool
		nofailover            bool
	}{
		{`{"conn_url":"postgres://h:1/postgres","state":"running","role":"replica","pause":"true","pending_restart":1,"tags":{"nofailover":1}}`, true, true, true},
		{`{"conn_url":"postgres://h:1/postgres","state":"running","role":"replica","pause":"off","pending_restart":"0","tags":{"nofailover":"no"}}`, false, false, false},
		{`{"conn_url":"postgres://h:1/postgres","state":"running","role":"replica","pause":"maybe","tags":{"nofailover":"yes"}}`, false, false, true},
	} {
		d, err := parseMemberValue([]byte(tt.raw))
		if err != nil {
			t.Fatalf("%s: %v", tt.raw, err)
		}
		if d.State != "running" || d.Pause != tt.pause || d.PendingRestart != tt.pendingRestart || config.Tags(d.Tags).NoFailover() != tt.nofailover {
			t.Errorf("%s: %+v nofailover %v", tt.raw, d, config.Tags(d.Tags).NoFailover())
		}
	}
}
