package clusterctl

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestSetPause(t *testing.T) {
	tests := []struct {
		name    string
		raw     string
		pause   bool
		want    string // "" when unchanged
		wantErr bool
	}{
		{"pause keeps every field", `{"ttl":8,"loop_wait":1,"postgresql":{"use_slots":true,"parameters":{"max_connections":100}},"x_unknown":[1,2]}`, true,
			`{"loop_wait":1,"pause":true,"postgresql":{"use_slots":true,"parameters":{"max_connections":100}},"ttl":8,"x_unknown":[1,2]}`, false},
		{"already paused", `{"ttl":8,"pause":true}`, true, "", false},
		{"pause false becomes true", `{"pause":false}`, true, `{"pause":true}`, false},
		{"resume removes pause", `{"ttl":8,"pause":true}`, false, `{"ttl":8}`, false},
		{"resume removes pause: false too", `{"pause":false}`, false, `{}`, false},
		{"resume when not paused", `{"ttl":8}`, false, "", false},
		{"pause without a config key", ``, true, `{"pause":true}`, false},
		{"resume without a config key", ``, false, "", false},
		{"not an object", `[1]`, true, "", true},
		{"null", `null`, true, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var raw []byte
			if tt.raw != "" {
				raw = []byte(tt.raw)
			}
			out, changed, err := SetPause(raw, tt.pause)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v", err)
			}
			if err != nil {
				return
			}
			if changed != (tt.want != "") {
				t.Fatalf("changed %v, out %s", changed, out)
			}
			if !changed {
				if string(out) != tt.raw {
					t.Errorf("unchanged output %s, want the input %s", out, tt.raw)
				}
				return
			}
			var got, want any
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(tt.want), &want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %s, want %s", out, tt.want)
			}
		})
	}
}
