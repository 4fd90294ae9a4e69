package config

import (
	"strings"
	"testing"
)

func TestReloaded(t *testing.T) {
	const base = `
scope: demo
name: node1
etcd3: {hosts: ["127.0.0.1:2379"]}
postgresql:
  listen: 127.0.0.1:5433
  data_dir: /data/node1
  parameters: {work_mem: 4MB}
tags: {nofailover: false}
`
	parse := func(s string) *Config {
		t.Helper()
		c, _, err := Parse([]byte(s), []string{})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	old := parse(base)
	for _, tc := range []struct {
		name, from, to string
		restart        string // names that need a restart, comma-separated
		work           string // work_mem in force after the reload
	}{
		{name: "unchanged", work: "4MB"},
		{name: "a parameter", from: "work_mem: 4MB", to: "work_mem: 8MB", work: "8MB"},
		{name: "pg_hba and a parameter", from: "  parameters: {work_mem: 4MB}", to: "  parameters: {work_mem: 6MB}\n  pg_hba: [local all all trust]", work: "6MB"},
		{name: "callbacks and hooks", from: "  parameters: {work_mem: 4MB}", to: "  parameters: {work_mem: 4MB}\n  callbacks: {on_start: /bin/true}\n  pre_promote: /bin/true\n  before_stop: /bin/true", work: "4MB"},
		{name: "name", from: "name: node1", to: "name: node9", restart: "name", work: "4MB"},
		{name: "data_dir and listen", from: "  listen: 127.0.0.1:5433\n  data_dir: /data/node1", to: "  listen: 127.0.0.1:5434\n  data_dir: /data/other", restart: "postgresql.listen,postgresql.connect_address,postgresql.data_dir", work: "4MB"},
		{name: "scope with a parameter", from: "scope: demo\n", to: "scope: other\n", restart: "scope", work: "4MB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next := parse(strings.Replace(base, tc.from, tc.to, 1))
			got, restart := Reloaded(old, next)
			if strings.Join(restart, ",") != tc.restart {
				t.Errorf("needs a restart: %v, want %q", restart, tc.restart)
			}
			if w := ParamString(got.Postgres.Parameters["work_mem"]); w != tc.work {
				t.Errorf("work_mem = %q, want %q", w, tc.work)
			}
			if got.Name != "node1" || got.Scope != "demo" || got.Postgres.DataDir != "/data/node1" || got.Postgres.Listen != "127.0.0.1:5433" {
				t.Errorf("restart-only settings changed: %s %s %s %s", got.Scope, got.Name, got.Postgres.DataDir, got.Postgres.Listen)
			}
			if old.Name != "node1" || ParamString(old.Postgres.Parameters["work_mem"]) != "4MB" {
				t.Error("the old configuration was modified")
			}
		})
	}
}
