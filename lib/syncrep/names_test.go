package syncrep

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseStandbyNames(t *testing.T) {
	tests := []struct {
		in   string
		want StandbyNames
	}{
		{"", StandbyNames{}},
		{"   ", StandbyNames{}},
		{"a", StandbyNames{Method: Priority, Num: 1, Names: []string{"a"}}},
		{" a , b ", StandbyNames{Method: Priority, Num: 1, Names: []string{"a", "b"}}},
		{"FiRsT", StandbyNames{Method: Priority, Num: 1, Names: []string{"FiRsT"}}},
		{"any", StandbyNames{Method: Priority, Num: 1, Names: []string{"any"}}},
		{`"1"`, StandbyNames{Method: Priority, Num: 1, Names: []string{"1"}}},
		{"1", StandbyNames{Method: Priority, Num: 1, Names: []string{"1"}}},
		{"2 (a,b,c)", StandbyNames{Method: Priority, Num: 2, Names: []string{"a", "b", "c"}}},
		{"FIRST 2 (a, b)", StandbyNames{Method: Priority, Num: 2, Names: []string{"a", "b"}}},
		{"first 1(a)", StandbyNames{Method: Priority, Num: 1, Names: []string{"a"}}},
		{"ANY 1 (node2,\"node 3\")", StandbyNames{Method: Quorum, Num: 1, Names: []string{"node2", "node 3"}}},
		{`ANY 4("a",*,b)`, StandbyNames{Method: Quorum, Num: 4, Names: []string{"a", "*", "b"}, Star: true}},
		{"*", StandbyNames{Method: Priority, Num: 1, Names: []string{"*"}, Star: true}},
		{`"a""b", c$1`, StandbyNames{Method: Priority, Num: 1, Names: []string{`a"b`, "c$1"}}},
		{"a, A, b", StandbyNames{Method: Priority, Num: 1, Names: []string{"a", "b"}}},
		{"nöde", StandbyNames{Method: Priority, Num: 1, Names: []string{"nöde"}}},
		{"ANY 1(__patroni_strict_sync_replica_placeholder__)", StandbyNames{Method: Quorum, Num: 1, Placeholder: true}},
		{"__patroni_strict_sync_replica_placeholder__", StandbyNames{Method: Priority, Num: 1, Placeholder: true}},
	}
	for _, tt := range tests {
		got, err := ParseStandbyNames(tt.in)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseStandbyNames(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestParseStandbyNamesRejects(t *testing.T) {
	for _, in := range []string{
		"a,", ",a", "a b", `ANY 4("a" b,"c c")`, `FIRST 4("a",)`, "2 (,)", "ANY 0 (a)", "FIRST (a)",
		"ANY 1 a", "a;b", `"a`, "ANY 1 ()", "2 (a", "a)", "ANY 99999999999999999999 (a)",
	} {
		got, err := ParseStandbyNames(in)
		if err == nil {
			t.Errorf("ParseStandbyNames(%q) = %+v, want an error", in, got)
			continue
		}
		if !strings.Contains(err.Error(), "synchronous_standby_names") {
			t.Errorf("ParseStandbyNames(%q): error %q does not name the setting", in, err)
		}
	}
}

func TestNewStandbyNamesString(t *testing.T) {
	tests := []struct {
		quorum bool
		num    int
		names  []string
		want   string
	}{
		{false, 1, []string{"n1"}, "FIRST 1 (n1)"},
		{false, 0, []string{"n2", "n1"}, "FIRST 1 (n1,n2)"},
		{false, 2, []string{"n2", "n1"}, "FIRST 2 (n1,n2)"},
		{false, 5, []string{"n2", "n1"}, "FIRST 2 (n1,n2)"},
		{false, 0, nil, ""},
		{true, 0, nil, ""},
		{false, 1, nil, "FIRST 1 (__patroni_strict_sync_replica_placeholder__)"},
		{true, 2, nil, "ANY 1 (__patroni_strict_sync_replica_placeholder__)"},
		{false, 1, []string{"*"}, "FIRST 1 (*)"},
		{true, 1, []string{"c", "b"}, "ANY 1 (b,c)"},
		{true, 2, []string{"node 3", "first", "Any", `we"ird`, "x$", "9lives", "a-b"}, `ANY 2 ("9lives","Any","a-b","first","node 3","we""ird",x$)`},
		{true, 1, []string{"b", "B"}, "ANY 1 (b)"},
	}
	for _, tt := range tests {
		s := NewStandbyNames(tt.quorum, tt.num, tt.names)
		if got := s.String(); got != tt.want {
			t.Errorf("NewStandbyNames(%v, %d, %q) = %q, want %q", tt.quorum, tt.num, tt.names, got, tt.want)
			continue
		}
		// What pg-ha writes, it reads back as the same setting.
		back, err := ParseStandbyNames(tt.want)
		if err != nil || !reflect.DeepEqual(back, s) {
			t.Errorf("round trip of %q: %+v, %v; want %+v", tt.want, back, err, s)
		}
	}
}

func TestStandbyNamesHas(t *testing.T) {
	s, _ := ParseStandbyNames(`ANY 1 (Node1, "node 2")`)
	for name, want := range map[string]bool{"node1": true, "NODE 2": true, "node3": false, "": false} {
		if s.Has(name) != want {
			t.Errorf("Has(%q) = %v", name, !want)
		}
	}
	if star, _ := ParseStandbyNames("*"); !star.Has("anything") {
		t.Error("* does not list every name")
	}
}
