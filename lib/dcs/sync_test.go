package dcs

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestParseSyncKey(t *testing.T) {
	tests := []struct {
		in   string
		want SyncKey
	}{
		{`{"leader":"n1","sync_standby":null}`, SyncKey{Leader: "n1"}},
		{`{"leader":"n1","quorum":0,"sync_standby":"n2"}`, SyncKey{Leader: "n1", Standbys: []string{"n2"}}},
		{`{"leader":"n1","quorum":1,"sync_standby":"n2,n3, n4,,"}`, SyncKey{Leader: "n1", Standbys: []string{"n2", "n3", "n4"}, Quorum: 1}},
		{`{"leader":"n1","quorum":"2","sync_standby":"a,b,c"}`, SyncKey{Leader: "n1", Standbys: []string{"a", "b", "c"}, Quorum: 2}},
		{`{"leader":"n1","quorum":1.0,"sync_standby":["a","b"]}`, SyncKey{Leader: "n1", Standbys: []string{"a", "b"}, Quorum: 1}},
		{`{"leader":"n1","quorum":true}`, SyncKey{Leader: "n1", Quorum: 1}},
		{`{"leader":"n1","quorum":null,"sync_standby":""}`, SyncKey{Leader: "n1"}},
		{`{"leader":"n1","extra":{"x":1}}`, SyncKey{Leader: "n1"}},
		// A quorum counts only with a leader, as in Patroni.
		{`{"leader":null,"quorum":2,"sync_standby":"a"}`, SyncKey{}},
		{`{"leader":"","sync_standby":"a"}`, SyncKey{}},
		{`{}`, SyncKey{}},
	}
	for _, tt := range tests {
		got, err := ParseSyncKey([]byte(tt.in))
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseSyncKey(%s) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestParseSyncKeyRejects(t *testing.T) {
	for in, want := range map[string]string{
		`{`:                                  "not a JSON object",
		`[]`:                                 "not a JSON object",
		`"n1"`:                               "not a JSON object",
		`null`:                               "not a JSON object",
		`{"leader":1}`:                       "leader",
		`{"leader":"n1","quorum":"x"}`:       "quorum",
		`{"leader":"n1","quorum":-1}`:        "quorum",
		`{"leader":"n1","quorum":"-1"}`:      "quorum",
		`{"leader":"n1","quorum":[1]}`:       "quorum",
		`{"leader":"n1","sync_standby":7}`:   "sync_standby",
		`{"leader":"n1","sync_standby":{}}`:  "sync_standby",
		`{"leader":"n1","sync_standby":[1]}`: "sync_standby",
	} {
		got, err := ParseSyncKey([]byte(in))
		if err == nil || !strings.Contains(err.Error(), want) || !got.Empty() {
			t.Errorf("ParseSyncKey(%s) = %+v, %v; want an empty key and an error about %s", in, got, err, want)
		}
	}
}

func TestSyncKeyJSON(t *testing.T) {
	for _, tt := range []struct {
		k    SyncKey
		want string
	}{
		{SyncKey{Leader: "n1"}, `{"leader":"n1","quorum":0,"sync_standby":null}`},
		{SyncKey{Leader: "n1", Standbys: []string{"n3", "n2"}, Quorum: 1, ModRevision: 9}, `{"leader":"n1","quorum":1,"sync_standby":"n2,n3"}`},
	} {
		b, err := json.Marshal(tt.k)
		if err != nil || string(b) != tt.want {
			t.Errorf("Marshal(%+v) = %s, %v; want %s", tt.k, b, err, tt.want)
		}
		back, err := ParseSyncKey(b)
		tt.k.ModRevision = 0
		if err != nil || back.Leader != tt.k.Leader || back.Quorum != tt.k.Quorum || len(back.Standbys) != len(tt.k.Standbys) {
			t.Errorf("round trip of %s: %+v, %v", b, back, err)
		}
	}
}
