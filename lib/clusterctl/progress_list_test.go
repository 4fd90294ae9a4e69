package clusterctl

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/pg-ha/pg-ha/lib/dcs"
	"github.com/pg-ha/pg-ha/lib/state"
)

// creating is a member creating a replica whose key carries progress (raw
// JSON of the pg-ha field; "" for none).
func creating(progress string) func(*dcs.MemberData) {
	return func(d *dcs.MemberData) {
		stopped(d)
		d.State, d.Timeline = state.CreatingReplica, 0
		if progress != "" {
			d.Extra = map[string]json.RawMessage{state.ProgressField: json.RawMessage(progress)}
		}
	}
}

// TestListWhileCloning: list shows "creating replica 45 %" (or the MB done
// while the total is unknown) as the State of a member that clones; its
// JSON keeps Patroni's state string and adds the progress.
func TestListWhileCloning(t *testing.T) {
	cl := cluster("node1",
		m("node1", 100*mb, primary),
		m("node2", 0, creating(`{"method":"basebackup","done":4831838208,"total":10737418240}`)),
		m("node3", 0, creating(`{"method":"basebackup","done":1572864000}`)),
		m("node4", 0, creating("")),
		m("node5", 100*mb, func(d *dcs.MemberData) {
			// A field left over on a member that runs again is not shown.
			d.Extra = map[string]json.RawMessage{state.ProgressField: json.RawMessage(`{"done":1,"total":2}`)}
		}),
	)
	l := List("demo", cl, Settings{})
	got := "\n" + RenderList(l)
	diffLines(t, got, `
+ Cluster: demo (7000000000000000001) -------------------+----+-----------+
| Member | Host     | Role    | State                    | TL | Lag in MB |
+--------+----------+---------+--------------------------+----+-----------+
| node1  | 10.0.0.1 | Leader  | running                  |  2 |           |
| node2  | 10.0.0.2 | Replica | creating replica 45 %    |    |   unknown |
| node3  | 10.0.0.3 | Replica | creating replica 1500 MB |    |   unknown |
| node4  | 10.0.0.4 | Replica | creating replica         |    |   unknown |
| node5  | 10.0.0.5 | Replica | streaming                |  2 |         0 |
+--------+----------+---------+--------------------------+----+-----------+
`)

	b, err := json.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Members []struct {
			Name     string          `json:"name"`
			State    string          `json:"state"`
			Progress *state.Progress `json:"progress"`
		} `json:"members"`
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	for i, want := range []struct {
		state string
		pc    int // -2: no progress
	}{{"running", -2}, {"creating replica", 45}, {"creating replica", -1}, {"creating replica", -2}, {"running", -2}} {
		m := back.Members[i]
		switch {
		case m.State != want.state:
			t.Errorf("%s: JSON state %q, want %q (Patroni's string, unchanged)", m.Name, m.State, want.state)
		case want.pc == -2 && m.Progress != nil:
			t.Errorf("%s: JSON progress %+v, want none", m.Name, m.Progress)
		case want.pc != -2 && (m.Progress == nil || m.Progress.Percent() != want.pc || m.Progress.Method != "basebackup"):
			t.Errorf("%s: JSON progress %+v, want %d %%", m.Name, m.Progress, want.pc)
		}
	}
	if !strings.Contains(string(b), `"state":"creating replica","progress":{"method":"basebackup","done":4831838208,"total":10737418240}`) {
		t.Errorf("list JSON: %s", b)
	}
}

// TestRequestStateWhileCloning: a reinit that times out says how far the
// member's clone has got.
func TestRequestStateWhileCloning(t *testing.T) {
	cl := cluster("node1", m("node1", 100*mb, primary), m("node2", 0, creating(`{"method":"basebackup","done":45,"total":100}`)))
	if got, want := requestState(&RequestProgress{Member: "node2"}, cl), "node2 took the request; its PostgreSQL is creating replica 45 %"; got != want {
		t.Errorf("requestState = %q, want %q", got, want)
	}
}
