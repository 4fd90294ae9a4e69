package clusterctl

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/dcs"
)

const patronictlBin = "/usr/bin/patronictl"

// patronictl returns the path of Debian's patronictl and its major
// version; without it the test is skipped, or fails under
// PGHA_TEST_DISALLOW_SKIP=1.
func patronictl(t *testing.T) (string, int) {
	t.Helper()
	out, err := exec.Command(patronictlBin, "version").Output()
	if err != nil {
		if os.Getenv("PGHA_TEST_DISALLOW_SKIP") == "1" {
			t.Fatalf("%s version: %v (apt-get install patroni)", patronictlBin, err)
		}
		t.Skipf("%s version: %v (apt-get install patroni)", patronictlBin, err)
	}
	v := regexp.MustCompile(`version (\d+)\.`).FindSubmatch(out)
	if v == nil {
		t.Fatalf("%s version: %q", patronictlBin, out)
	}
	major, _ := strconv.Atoi(string(v[1]))
	return patronictlBin, major
}

// patronictlRoles runs `patronictl list -f json` against f's etcd and
// returns each member's role as it prints it.
func patronictlRoles(t *testing.T, bin string, f *fake) map[string]string {
	t.Helper()
	scope := strings.TrimSuffix(strings.TrimPrefix(f.c.Key(""), "/service/"), "/")
	hosts := strings.Join(f.etcd.Endpoints(), ",")
	hosts = strings.ReplaceAll(hosts, "http://", "")
	yml := filepath.Join(t.TempDir(), "patroni.yml")
	if err := os.WriteFile(yml, []byte("scope: "+scope+"\nnamespace: /service/\nname: node1\netcd3:\n  hosts: "+hosts+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-c", yml, "list", "-f", "json")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("patronictl list -f json: %v\n%s", err, errb.String())
	}
	var rows []map[string]any
	if err := json.Unmarshal(out, &rows); err != nil {
		t.Fatalf("patronictl list output %q: %v", out, err)
	}
	roles := map[string]string{}
	for _, r := range rows {
		name, _ := r["Member"].(string)
		roles[name], _ = r["Role"].(string)
	}
	return roles
}

// TestIntegrationListSyncMatchesPatronictl writes the config and sync keys
// into a real etcd as pg-lockd writes them (PutConfig, PutSync with the
// leader's token), next to member keys, and compares the role column of
// pg-failover list (table and --json) with what Debian's patronictl prints
// for the same keys. patronictl lists from etcd alone: no node runs.
//
// Patroni before 4 knows no quorum mode and shows a listed standby as "Sync
// Standby" whatever synchronous_mode says, so the cases where Patroni 4
// differs from it are compared only with a patronictl of version 4 or
// later (Debian 12 ships 3.0.2); TestListSyncRoles covers them.
func TestIntegrationListSyncMatchesPatronictl(t *testing.T) {
	bin, major := patronictl(t)
	f := newFake(t)
	tests := []struct {
		name     string
		config   string
		standbys []string // nil: no sync key
		want     map[string]string
		line     string // the listing's synchronous mode line, "" for none
		patroni4 bool   // only Patroni 4 agrees
	}{
		{"on, node2 listed", `{"synchronous_mode":true}`, []string{"node2"},
			map[string]string{"node1": "Leader", "node2": "Sync Standby", "node3": "Replica"}, "", false},
		{"on, node2 and node3 listed", `{"synchronous_mode":true,"synchronous_node_count":2}`, []string{"node3", "node2"},
			map[string]string{"node1": "Leader", "node2": "Sync Standby", "node3": "Sync Standby"}, "", false},
		{"on, nobody listed", `{"synchronous_mode":true}`, []string{},
			map[string]string{"node1": "Leader", "node2": "Replica", "node3": "Replica"},
			" Synchronous mode: on, no synchronous standby: replicating asynchronously", false},
		{"on, strict, nobody listed", `{"synchronous_mode":true,"synchronous_mode_strict":true}`, []string{},
			map[string]string{"node1": "Leader", "node2": "Replica", "node3": "Replica"},
			" Synchronous mode: on (strict), no synchronous standby: commits wait until one is listed", false},
		{"off, no key", `{"synchronous_mode":false}`, nil,
			map[string]string{"node1": "Leader", "node2": "Replica", "node3": "Replica"}, "", false},
		{"quorum, node3 listed", `{"synchronous_mode":"quorum"}`, []string{"node3"},
			map[string]string{"node1": "Leader", "node2": "Replica", "node3": "Quorum Standby"}, "", true},
		{"off, node2 still listed", `{"synchronous_mode":false}`, []string{"node2"},
			map[string]string{"node1": "Leader", "node2": "Replica", "node3": "Replica"}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := f.c.PutConfig(f.ctx(), []byte(tt.config), -1); err != nil {
				t.Fatal(err)
			}
			if tt.standbys == nil {
				if err := f.c.DeleteSync(f.ctx(), f.token, -1); err != nil {
					t.Fatal(err)
				}
			} else if err := f.c.PutSync(f.ctx(), f.token, dcs.SyncKey{Leader: "node1", Standbys: tt.standbys, Quorum: len(tt.standbys)}, -1); err != nil {
				t.Fatal(err)
			}
			cl, s, err := f.ctl.Read(f.ctx())
			if err != nil {
				t.Fatal(err)
			}
			l := List("demo", cl, s)
			got := map[string]string{}
			for _, m := range l.Members {
				got[m.Name] = roleTitle(m.Role)
			}
			table := RenderList(l)
			for name, role := range tt.want {
				if got[name] != role {
					t.Errorf("pg-failover list --json: %s is %q, want %q", name, got[name], role)
				}
				if !regexp.MustCompile(`\| ` + name + ` +\| [0-9.]+ +\| ` + role + ` +\|`).MatchString(table) {
					t.Errorf("pg-failover list: %s is not listed as %q:\n%s", name, role, table)
				}
			}
			if has := strings.Contains(table, "\n"+tt.line+"\n"); tt.line != "" && !has {
				t.Errorf("pg-failover list lacks %q:\n%s", tt.line, table)
			}
			if tt.line == "" && strings.Contains(table, "Synchronous mode") {
				t.Errorf("pg-failover list has a synchronous mode line:\n%s", table)
			}
			if tt.patroni4 && major < 4 {
				t.Logf("patronictl %d predates Patroni 4's roles here; pg-failover alone checked", major)
				return
			}
			if pc := patronictlRoles(t, bin, f); !mapsEqual(pc, got) {
				t.Errorf("patronictl list: %v; pg-failover list: %v", pc, got)
			}
		})
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
