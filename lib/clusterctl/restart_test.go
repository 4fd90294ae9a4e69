package clusterctl

import (
	"strings"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/dcs"
)

func pendingRestart(d *dcs.MemberData) { d.PendingRestart = true }

func TestSelectMembers(t *testing.T) {
	cl := cluster("node1", m("node1", 1, primary, pendingRestart), m("node2", 1), m("node3", 1, pendingRestart))
	for _, tc := range []struct {
		name   string
		f      RestartFilter
		want   string
		reason Reason
	}{
		{"every member", RestartFilter{Role: "any"}, "node1, node2, node3", 0},
		{"named", RestartFilter{Names: []string{"node3", "node2"}}, "node2, node3", 0},
		{"leader", RestartFilter{Role: "leader"}, "node1", 0},
		{"primary", RestartFilter{Role: "primary"}, "node1", 0},
		{"replicas", RestartFilter{Role: "replica"}, "node2, node3", 0},
		{"pending", RestartFilter{Pending: true}, "node1, node3", 0},
		{"pending replicas", RestartFilter{Role: "replica", Pending: true}, "node3", 0},
		{"named, not pending", RestartFilter{Names: []string{"node2"}, Pending: true}, "", 0},
		{"named leader as replica", RestartFilter{Names: []string{"node1"}, Role: "replica"}, "", 0},
		{"no such member", RestartFilter{Names: []string{"node9"}}, "", NoSuchMember},
		{"bad role", RestartFilter{Role: "boss"}, "", Usage},
	} {
		got, err := SelectMembers(cl, tc.f)
		switch {
		case tc.reason != 0:
			if err == nil || ReasonOf(err) != tc.reason {
				t.Errorf("%s: %v, want %v", tc.name, err, tc.reason)
			}
		case err != nil || memberNames(got) != tc.want:
			t.Errorf("%s: %q %v, want %q", tc.name, memberNames(got), err, tc.want)
		}
	}
	if !(RestartFilter{}).Empty() || (RestartFilter{Role: "replica"}).Empty() || !(RestartFilter{Role: "any"}).Empty() {
		t.Error("Empty is wrong")
	}
}

func TestRestartBody(t *testing.T) {
	at := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	b := RestartBody(at, "leader", true)
	if b["schedule"] != "2026-12-01T03:00:00Z" || b["role"] != "primary" || b["restart_pending"] != true || len(b) != 3 {
		t.Errorf("leader, pending: %v", b)
	}
	if b := RestartBody(at, "any", false); len(b) != 1 {
		t.Errorf("any: %v", b)
	}
	if b := RestartBody(at, "replica", false); b["role"] != "replica" {
		t.Errorf("replica: %v", b)
	}
}

func TestMemberURL(t *testing.T) {
	for _, tc := range []struct{ api, want string }{
		{"http://10.0.0.1:8008/patroni", "http://10.0.0.1:8008/restart"},
		{"https://[fd00::1]:8008/patroni?x=1", "https://[fd00::1]:8008/restart"},
		{"", ""},
		{"10.0.0.1:8008", ""},
	} {
		got, err := MemberURL(&dcs.Member{Name: "n", Data: dcs.MemberData{APIURL: tc.api}}, "restart")
		if got != tc.want || (err != nil) != (tc.want == "") {
			t.Errorf("%q: %q %v, want %q", tc.api, got, err, tc.want)
		}
	}
}

// patronictl remove's confirmations: the cluster's name, the sentence,
// and the leader's name only while there is a leader; a live leader is
// refused without --force.
func TestRemoveQuestions(t *testing.T) {
	q := RemoveQuestions("demo", "")
	if len(q) != 2 || q[0].Want != "demo" || q[1].Want != "Yes I am aware" ||
		!strings.Contains(q[1].Prompt, `please type: "Yes I am aware"`) {
		t.Errorf("without leader: %+v", q)
	}
	q = RemoveQuestions("demo", "node1")
	if len(q) != 3 || q[2].Want != "node1" || q[2].Wrong != "You did not specify the current leader of the cluster" {
		t.Errorf("with leader: %+v", q)
	}
	if err := CheckRemove(healthy(), false); ReasonOf(err) != LeaderAlive {
		t.Errorf("live leader, no force: %v", err)
	}
	if err := CheckRemove(healthy(), true); err != nil {
		t.Errorf("live leader, force: %v", err)
	}
	if err := CheckRemove(cluster("", m("node1", 1, stopped)), false); err != nil {
		t.Errorf("no leader: %v", err)
	}
}
