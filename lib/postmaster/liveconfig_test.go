package postmaster

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/pg-ha/pg-ha/lib/clock"
	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/pgdata"
	"github.com/pg-ha/pg-ha/lib/rolepipe"
	"github.com/pg-ha/pg-ha/lib/state"
)

const liveYAML = `
scope: demo
name: node1
etcd3: {hosts: ["127.0.0.1:2379"]}
postgresql:
  listen: 127.0.0.1:5433
  data_dir: /tmp/pgha-live-test
  parameters: {shared_buffers: 64MB}
`

func liveSupervisor(t *testing.T, yml string) *Supervisor {
	t.Helper()
	cfg, _, err := config.Parse([]byte(yml), []string{})
	if err != nil {
		t.Fatal(err)
	}
	node := &pgdata.Node{Cfg: cfg, RuntimeDir: t.TempDir()}
	s := &Supervisor{node: node, dyn: cfg.Dynamic(), log: zerolog.Nop(), clock: clock.System{}}
	s.initLive()
	return s
}

func writeKey(t *testing.T, s *Supervisor, scope string, rev int64, key string) {
	t.Helper()
	c := state.Config{Scope: scope, Name: "node1", Revision: rev, Config: []byte(key)}
	if err := state.Write(s.node.RuntimeDir, state.ConfigFile, c); err != nil {
		t.Fatal(err)
	}
}

// TestLiveConfigKeepsWhatItHas: a new config key applies; a garbled,
// foreign or missing file keeps it; a reloaded YAML applies its parameters
// and keeps its name.
func TestLiveConfigKeepsWhatItHas(t *testing.T) {
	s := liveSupervisor(t, liveYAML)
	ctx := context.Background()
	line := rolepipe.Line{Verb: rolepipe.Standby}
	param := func(name string) string { return s.params(line)[name] }

	s.followConfig(ctx, line)
	if v := param("work_mem"); v != "" {
		t.Fatalf("work_mem %q without a config key", v)
	}
	writeKey(t, s, "demo", 5, `{"postgresql":{"parameters":{"work_mem":"8MB","shared_buffers":"1GB"},"use_slots":false}}`)
	s.followConfig(ctx, line)
	if v := param("work_mem"); v != "8MB" {
		t.Fatalf("work_mem %q after the config key set 8MB", v)
	}
	if v := param("shared_buffers"); v != "64MB" {
		t.Errorf("shared_buffers %q, want the local YAML's 64MB", v)
	}
	if s.dyn.UseSlots {
		t.Error("use_slots false in the config key: still on")
	}

	path := filepath.Join(s.node.RuntimeDir, state.ConfigFile)
	for name, bad := range map[string]func(){
		"garbled": func() { _ = os.WriteFile(path, []byte(`{"scope":"demo","name":"node1","config":{"postgresql"`), 0o600) },
		"foreign": func() { writeKey(t, s, "other", 6, `{"postgresql":{"parameters":{"work_mem":"1MB"}}}`) },
		"missing": func() { _ = os.Remove(path) },
	} {
		bad()
		s.followConfig(ctx, line)
		if v := param("work_mem"); v != "8MB" {
			t.Errorf("%s config.json: work_mem %q, want 8MB kept", name, v)
		}
	}

	next, _, err := config.Parse([]byte(strings.Replace(strings.Replace(liveYAML, "64MB", "32MB", 1), "name: node1", "name: node9", 1)), []string{})
	if err != nil {
		t.Fatal(err)
	}
	s.Reload(next)
	s.followConfig(ctx, line)
	if v := param("shared_buffers"); v != "32MB" {
		t.Errorf("shared_buffers %q after the YAML was reloaded with 32MB", v)
	}
	if v := param("work_mem"); v != "8MB" {
		t.Errorf("work_mem %q after a reload, want the config key's 8MB kept", v)
	}
	if s.live.local.Name != "node1" {
		t.Errorf("name %q after a reload, want node1 until a restart", s.live.local.Name)
	}
}
