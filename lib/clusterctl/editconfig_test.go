package clusterctl

import (
	"strings"
	"testing"
)

func TestApplyEdit(t *testing.T) {
	const base = `{"ttl":30,"loop_wait":10,"maximum_lag_on_failover":1048576,` +
		`"postgresql":{"use_pg_rewind":true,"parameters":{"max_connections":100,"pg_stat_statements.max":500}}}`
	for _, tc := range []struct {
		name string
		edit Edit
		want string // YAML after the edit
	}{
		{"scalar", Edit{Set: []string{"loop_wait=5"}},
			"loop_wait: 5\nmaximum_lag_on_failover: 1048576\npostgresql:\n  parameters:\n    max_connections: 100\n    pg_stat_statements.max: 500\n  use_pg_rewind: true\nttl: 30\n"},
		{"null deletes, and an emptied mapping goes too",
			Edit{Set: []string{"ttl=null", "postgresql.parameters.max_connections=null", "postgresql.parameters.pg_stat_statements.max=~", "postgresql.use_pg_rewind=null"}},
			"loop_wait: 10\nmaximum_lag_on_failover: 1048576\n"},
		{"a new dotted path creates mappings; values are YAML",
			Edit{Set: []string{"synchronous_mode=true", "tags.x.z=[a, b]", "retry_timeout= 7 ", "postgresql.parameters.shared_preload_libraries='pg_stat_statements'"}},
			"loop_wait: 10\nmaximum_lag_on_failover: 1048576\npostgresql:\n  parameters:\n    max_connections: 100\n    pg_stat_statements.max: 500\n    shared_preload_libraries: pg_stat_statements\n  use_pg_rewind: true\nretry_timeout: 7\nsynchronous_mode: true\ntags:\n  x:\n    z:\n      - a\n      - b\nttl: 30\n"},
		{"--pg names a parameter, dots and all",
			Edit{PG: []string{"work_mem=8MB", "pg_stat_statements.max=1000", "max_connections=null"}},
			"loop_wait: 10\nmaximum_lag_on_failover: 1048576\npostgresql:\n  parameters:\n    pg_stat_statements.max: 1000\n    work_mem: 8MB\n  use_pg_rewind: true\nttl: 30\n"},
		{"--apply merges, null deletes",
			Edit{Apply: []byte("loop_wait: 5\npostgresql:\n  parameters:\n    work_mem: 4MB\n    max_connections: null\n  use_pg_rewind: null\nttl: null\n")},
			"loop_wait: 5\nmaximum_lag_on_failover: 1048576\npostgresql:\n  parameters:\n    pg_stat_statements.max: 500\n    work_mem: 4MB\n"},
		{"--replace, then --set on top",
			Edit{Replace: []byte("ttl: 20\n"), Set: []string{"loop_wait=4"}},
			"loop_wait: 4\nttl: 20\n"},
		{"a scalar in the way becomes a mapping", Edit{Set: []string{"ttl.x=1"}},
			"loop_wait: 10\nmaximum_lag_on_failover: 1048576\npostgresql:\n  parameters:\n    max_connections: 100\n    pg_stat_statements.max: 500\n  use_pg_rewind: true\nttl:\n  x: 1\n"},
	} {
		before, err := ParseDynamicConfig([]byte(base))
		if err != nil {
			t.Fatal(err)
		}
		beforeYAML := before.YAML()
		after, err := ApplyEdit(before, tc.edit)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got := after.YAML(); got != tc.want {
			t.Errorf("%s:\n got\n%s\nwant\n%s", tc.name, got, tc.want)
		}
		if before.YAML() != beforeYAML {
			t.Errorf("%s: ApplyEdit changed its input", tc.name)
		}
	}
}

func TestApplyEditUsage(t *testing.T) {
	for _, e := range []Edit{
		{Set: []string{"loop_wait"}},
		{Set: []string{"=5"}},
		{PG: []string{"work_mem"}},
		{Set: []string{"a=[1, 2"}},
		{Apply: []byte("- a\n- b\n")},
		{Replace: []byte("a: [\n")},
	} {
		if _, err := ApplyEdit(DynamicConfig{}, e); ReasonOf(err) != Usage {
			t.Errorf("%+v: %v, want a usage failure", e, err)
		}
	}
}

// show-config prints integers as integers (1048576, not 1.048576e+06),
// keys sorted, {} when there is no config key.
func TestDynamicConfigYAML(t *testing.T) {
	c, err := ParseDynamicConfig([]byte(`{"ttl":30,"maximum_lag_on_failover":1048576,"x":0.5,"slots":{"s1":{"type":"physical"}},"pause":true}`))
	if err != nil {
		t.Fatal(err)
	}
	want := "maximum_lag_on_failover: 1048576\npause: true\nslots:\n  s1:\n    type: physical\nttl: 30\nx: 0.5\n"
	if got := c.YAML(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	for _, raw := range []string{"", "  "} {
		c, err := ParseDynamicConfig([]byte(raw))
		if err != nil || c.YAML() != "{}\n" {
			t.Errorf("%q: %q, %v", raw, c.YAML(), err)
		}
	}
	if _, err := ParseDynamicConfig([]byte(`[1]`)); err == nil {
		t.Error("a JSON array was accepted as the config key")
	}
	if j, _ := (DynamicConfig{}).JSON(); string(j) != "{}" {
		t.Errorf("empty config as JSON: %s", j)
	}
}

func TestUnifiedDiff(t *testing.T) {
	a := "a: 1\nb: 2\nc: 3\nd: 4\ne: 5\nf: 6\ng: 7\nh: 8\ni: 9\nj: 10\nk: 11\nl: 12\n"
	b := strings.Replace(strings.Replace(a, "b: 2\n", "b: 20\n", 1), "k: 11\n", "", 1) + "m: 13\n"
	want := "--- before\n+++ after\n" +
		"@@ -1,5 +1,5 @@\n a: 1\n-b: 2\n+b: 20\n c: 3\n d: 4\n e: 5\n" +
		"@@ -8,5 +8,5 @@\n h: 8\n i: 9\n j: 10\n-k: 11\n l: 12\n+m: 13\n"
	if got := UnifiedDiff("before", "after", a, b); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if got := UnifiedDiff("x", "y", a, a); got != "" {
		t.Errorf("equal texts: %q", got)
	}
	if got := UnifiedDiff("x", "y", "", "a\n"); got != "--- x\n+++ y\n@@ -0,0 +1 @@\n+a\n" {
		t.Errorf("from empty: %q", got)
	}
}
