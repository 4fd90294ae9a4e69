package clusterctl

import (
	"strings"
	"testing"
)

// An edit is written with compare-and-swap on the config key's mod
// revision: when another editor wrote in between, the later write fails
// with Conflict (exit 21) and the other editor's change survives.
func TestEditConfigConflict(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	if err := f.c.PutConfig(f.ctx(), []byte(`{"ttl":30,"loop_wait":10,"postgresql":{"parameters":{"max_connections":100}}}`), 0); err != nil {
		t.Fatal(err)
	}
	mine, err := f.ctl.PlanConfigEdit(f.ctx(), Edit{Set: []string{"loop_wait=5"}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(mine.Diff, "-loop_wait: 10\n+loop_wait: 5\n") {
		t.Errorf("diff:\n%s", mine.Diff)
	}
	theirs, err := f.ctl.PlanConfigEdit(f.ctx(), Edit{PG: []string{"work_mem=8MB"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.ctl.WriteConfigEdit(f.ctx(), theirs); err != nil {
		t.Fatalf("first writer: %v", err)
	}
	err = f.ctl.WriteConfigEdit(f.ctx(), mine)
	if ReasonOf(err) != Conflict || Conflict.ExitCode() != 21 {
		t.Fatalf("second writer: %v (reason %v), want a conflict", err, ReasonOf(err))
	}
	got, err := f.ctl.ShowConfig(f.ctx())
	if err != nil {
		t.Fatal(err)
	}
	want := "loop_wait: 10\npostgresql:\n  parameters:\n    max_connections: 100\n    work_mem: 8MB\nttl: 30\n"
	if got.YAML() != want {
		t.Errorf("config key after the conflict:\n%s\nwant\n%s", got.YAML(), want)
	}

	// Re-planned on the new value, the same edit goes through and keeps
	// the other change.
	mine, err = f.ctl.PlanConfigEdit(f.ctx(), Edit{Set: []string{"loop_wait=5"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.ctl.WriteConfigEdit(f.ctx(), mine); err != nil {
		t.Fatal(err)
	}
	cl, err := f.c.Get(f.ctx())
	if err != nil {
		t.Fatal(err)
	}
	if s := string(cl.Config); s != `{"loop_wait":5,"postgresql":{"parameters":{"max_connections":100,"work_mem":"8MB"}},"ttl":30}` {
		t.Errorf("config key = %s", s)
	}
}

// Without a config key an edit creates it; a second creator conflicts.
func TestEditConfigCreatesKey(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	a, err := f.ctl.PlanConfigEdit(f.ctx(), Edit{Set: []string{"ttl=20"}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.ctl.PlanConfigEdit(f.ctx(), Edit{Set: []string{"ttl=25"}})
	if err != nil {
		t.Fatal(err)
	}
	if a.Rev != 0 || a.Diff != "--- before\n+++ after\n@@ -1 +1 @@\n-{}\n+ttl: 20\n" {
		t.Errorf("plan without a key: rev %d, diff:\n%s", a.Rev, a.Diff)
	}
	if err := f.ctl.WriteConfigEdit(f.ctx(), a); err != nil {
		t.Fatal(err)
	}
	if err := f.ctl.WriteConfigEdit(f.ctx(), b); ReasonOf(err) != Conflict {
		t.Fatalf("second creator: %v, want a conflict", err)
	}
}
