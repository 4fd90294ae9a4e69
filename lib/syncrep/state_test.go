package syncrep

import (
	"reflect"
	"testing"
)

func rep(app, syncState string, lsn uint64) Replication {
	return Replication{ApplicationName: app, State: "streaming", SyncState: syncState, WriteLSN: lsn, FlushLSN: lsn, ReplayLSN: lsn}
}

func obs(reps ...Replication) Observation {
	return Observation{Self: "n1", Members: running("n1", "n2", "n3", "n4"), Replication: reps, PrimaryLSN: 100}
}

// TestReadinessOn: in synchronous_mode on, a standby counts as confirmed
// only once it is listed, reported "sync" and has reached the primary's
// flush position of the moment it was listed.
func TestReadinessOn(t *testing.T) {
	var r Readiness
	on := Options{NodeCount: 1}
	if changed, err := r.Observe("", 50); !changed || err != nil {
		t.Fatalf("first Observe: %v, %v", changed, err)
	}
	st := r.State(obs(rep("n2", "async", 50), rep("n3", "async", 40)), on, nil)
	if !reflect.DeepEqual(st.Active, []string{"n2"}) || st.Confirmed != nil || st.Current.Method != Off {
		t.Fatalf("before listing: %+v", st)
	}
	// n2 is listed at flush position 100.
	if changed, _ := r.Observe("FIRST 1 (n2)", 100); !changed {
		t.Fatal("new setting not reported as a change")
	}
	if changed, _ := r.Observe("FIRST 1 (n2)", 120); changed {
		t.Fatal("same setting reported as a change")
	}
	st = r.State(obs(rep("n2", "sync", 99)), on, nil)
	if st.Confirmed != nil || r.Ready("n2") {
		t.Fatalf("confirmed before catching up: %+v", st)
	}
	st = r.State(obs(rep("n2", "sync", 100)), on, nil)
	if !reflect.DeepEqual(st.Confirmed, []string{"n2"}) || !r.Ready("N2") {
		t.Fatalf("not confirmed after catching up: %+v", st)
	}
	// Once caught up it stays confirmed while listed, even if behind.
	st = r.State(obs(rep("n2", "sync", 90)), on, nil)
	if !reflect.DeepEqual(st.Confirmed, []string{"n2"}) {
		t.Fatalf("lost confirmation while listed: %+v", st)
	}
	// A standby reported "potential" is active but not confirmed.
	st = r.State(obs(rep("n2", "potential", 200)), on, nil)
	if !reflect.DeepEqual(st.Active, []string{"n2"}) || st.Confirmed != nil {
		t.Fatalf("potential confirmed: %+v", st)
	}
	// Unlisted, then listed again: it must catch up again.
	r.Observe("", 150)
	r.Observe("FIRST 1 (n2)", 300)
	st = r.State(obs(rep("n2", "sync", 250)), on, nil)
	if st.Confirmed != nil {
		t.Fatalf("kept readiness across unlisting: %+v", st)
	}
	// Already published in the sync key (say pg-lockd restarted): counts.
	st = r.State(obs(rep("n2", "sync", 250)), on, []string{"N2"})
	if !reflect.DeepEqual(st.Confirmed, []string{"n2"}) {
		t.Fatalf("standby in the sync key not confirmed: %+v", st)
	}
}

// TestReadinessQuorum: in quorum mode, "quorum" is the state that counts,
// and every candidate is active (Patroni's test_current_state_quorum).
func TestReadinessQuorum(t *testing.T) {
	var r Readiness
	q := Options{Quorum: true, NodeCount: 1}
	r.Observe(`ANY 1 (n2,"n3")`, 1)
	st := r.State(obs(rep("n2", "quorum", 1), rep("n3", "quorum", 2), rep("n4", "sync", 5)), q, nil)
	if !reflect.DeepEqual(st.Active, []string{"n4", "n3", "n2"}) || !reflect.DeepEqual(st.Confirmed, []string{"n3", "n2"}) ||
		st.Current.Method != Quorum || st.Current.Num != 1 {
		t.Fatalf("got %+v", st)
	}
	// In quorum mode the sync key does not vouch for a standby.
	var r2 Readiness
	r2.Observe("ANY 1 (n2)", 10)
	if st := r2.State(obs(rep("n2", "quorum", 5)), q, []string{"n2"}); st.Confirmed != nil {
		t.Fatalf("confirmed from the sync key in quorum mode: %+v", st)
	}
}

func TestReadinessPicks(t *testing.T) {
	members := append(running("n1", "n2", "n3"), Member{Name: "n4", Running: true, SyncPriority: 1, NoFailover: true})
	o := Observation{Self: "n1", Members: members, Replication: []Replication{rep("n4", "async", 10), rep("n2", "async", 9), rep("n3", "async", 1)}}
	tests := []struct {
		name string
		opt  Options
		want []string
	}{
		{"on: node count 1 takes the best promotable", Options{NodeCount: 1}, []string{"n2"}},
		{"on: node count 2", Options{NodeCount: 2}, []string{"n2", "n3"}},
		{"on: node count 3 takes the nofailover one last", Options{NodeCount: 3}, []string{"n2", "n3", "n4"}},
		{"on: node count 0 is 1", Options{}, []string{"n2"}},
		{"quorum: every promotable; nofailover only to fill the count", Options{Quorum: true, NodeCount: 1}, []string{"n2", "n3"}},
		{"quorum: nofailover fills the count", Options{Quorum: true, NodeCount: 3}, []string{"n2", "n3", "n4"}},
		{"maximum_lag_on_syncnode leaves a laggard out", Options{NodeCount: 2, MaxLagOnSyncNode: 5}, []string{"n2", "n4"}},
	}
	for _, tt := range tests {
		var r Readiness
		r.Observe("", 0)
		if st := r.State(o, tt.opt, nil); !reflect.DeepEqual(st.Active, tt.want) {
			t.Errorf("%s: active %v, want %v", tt.name, st.Active, tt.want)
		}
	}
}

func TestReadinessUnparsableSetting(t *testing.T) {
	var r Readiness
	changed, err := r.Observe("a b", 1)
	if !changed || err == nil || r.Current().Method != Off {
		t.Fatalf("Observe(\"a b\") = %v, %v, current %+v; want a change, an error, off", changed, err, r.Current())
	}
	if st := r.State(obs(rep("a", "sync", 5)), Options{NodeCount: 1}, nil); st.Confirmed != nil {
		t.Fatalf("confirmed under an unparsable setting: %+v", st)
	}
}
