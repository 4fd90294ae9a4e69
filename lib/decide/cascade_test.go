package decide

import "testing"

func TestUpstream(t *testing.T) {
	run := func(from string) Streamer { return Streamer{ReplicateFrom: from, Running: true} }
	tests := []struct {
		name    string
		members map[string]Streamer
		self    string
		noLead  bool
		want    string
	}{
		{name: "no tag", members: map[string]Streamer{"n1": run(""), "n2": run("")}, self: "n2", want: "n1"},
		{name: "cascade", members: map[string]Streamer{"n1": run(""), "n2": run(""), "n3": run("n2")}, self: "n3", want: "n2"},
		{name: "tag names the leader", members: map[string]Streamer{"n1": run(""), "n3": run("n1")}, self: "n3", want: "n1"},
		{name: "tag names itself", members: map[string]Streamer{"n1": run(""), "n3": run("n3")}, self: "n3", want: "n1"},
		{name: "named member gone", members: map[string]Streamer{"n1": run(""), "n3": run("n2")}, self: "n3", want: "n1"},
		{name: "named member not running", members: map[string]Streamer{"n1": run(""), "n2": {}, "n3": run("n2")}, self: "n3", want: "n1"},
		{name: "chain of three", members: map[string]Streamer{"n1": run(""), "n2": run(""), "n3": run("n2"), "n4": run("n3")}, self: "n4", want: "n3"},
		{name: "two-member loop: both to the leader", members: map[string]Streamer{"n1": run(""), "n2": run("n3"), "n3": run("n2")}, self: "n3", want: "n1"},
		{name: "two-member loop: the other too", members: map[string]Streamer{"n1": run(""), "n2": run("n3"), "n3": run("n2")}, self: "n2", want: "n1"},
		{name: "hanging off a loop keeps its upstream", members: map[string]Streamer{"n1": run(""), "n2": run("n3"), "n3": run("n2"), "n4": run("n2")}, self: "n4", want: "n2"},
		{name: "three-member loop", members: map[string]Streamer{"n1": run(""), "a": run("b"), "b": run("c"), "c": run("a")}, self: "b", want: "n1"},
		{name: "no leader, no tag", members: map[string]Streamer{"n2": run("")}, self: "n2", noLead: true, want: ""},
		{name: "no leader, cascade", members: map[string]Streamer{"n2": run(""), "n3": run("n2")}, self: "n3", noLead: true, want: "n2"},
		{name: "named member stopped, tags in a loop", members: map[string]Streamer{"n1": run(""), "n2": {ReplicateFrom: "n3"}, "n3": run("n2")}, self: "n3", want: "n1"},
	}
	for _, tt := range tests {
		leader := "n1"
		if tt.noLead {
			leader = ""
		}
		if got := Upstream(tt.self, leader, tt.members); got != tt.want {
			t.Errorf("%s: Upstream = %q, want %q", tt.name, got, tt.want)
		}
	}
}
