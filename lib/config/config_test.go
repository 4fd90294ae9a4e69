package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadFixtures(t *testing.T) {
	tests := []struct {
		file     string
		loadErr  string   // substring of the Load error, if Load fails
		problems []string // substrings, one per expected Validate error
		warnings []string // substrings expected among the warnings
	}{
		{file: "patroni-postgres0.yml", warnings: []string{"watchdog.mode: not implemented"}},
		{file: "etcd-v2.yml", warnings: []string{"etcd: the etcd (v2) section is read as etcd3"}},
		{file: "unknown-key.yml", warnings: []string{"postgresql.paramters: unknown key", "frobnicate: unknown key"}},
		{file: "missing-name.yml", problems: []string{"name: missing"}},
		{file: "missing-data-dir.yml", problems: []string{"postgresql.data_dir: missing"}},
		{file: "negative-ttl.yml", loadErr: "bootstrap.dcs.ttl: \"-5\" is not a non-negative number of seconds"},
		{file: "bad-duration.yml", loadErr: "bootstrap.dcs.loop_wait: \"soon\" is not a duration"},
		{file: "bad-budget.yml", problems: []string{"bootstrap.dcs.ttl: loop_wait (5s) + retry_timeout (5s) + fence margin (1s) = 11s exceeds ttl (10s)"}},
		{file: "not-yaml.yml", loadErr: "not valid YAML"},
		{file: "bad-type.yml", loadErr: "bootstrap.dcs.maximum_lag_on_failover:"},
		{file: "does-not-exist.yml", loadErr: "read config testdata/does-not-exist.yml: no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			cfg, warns, err := Load(filepath.Join("testdata", tt.file), []string{})
			if tt.loadErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.loadErr) {
					t.Fatalf("Load error = %v, want it to contain %q", err, tt.loadErr)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Fatalf("Load error spans lines: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			problems := cfg.Validate(NeedAll)
			if len(problems) != len(tt.problems) {
				t.Fatalf("Validate = %v, want %d problems %q", problems, len(tt.problems), tt.problems)
			}
			for i, want := range tt.problems {
				if !strings.Contains(problems[i].Error(), want) {
					t.Errorf("problem %d = %q, want it to contain %q", i, problems[i], want)
				}
			}
			for _, want := range tt.warnings {
				found := false
				for _, w := range warns {
					found = found || strings.Contains(w, want)
				}
				if !found {
					t.Errorf("warnings %q lack %q", warns, want)
				}
			}
			if len(tt.warnings) == 0 && len(warns) > 0 {
				t.Errorf("unexpected warnings %q", warns)
			}
		})
	}
}

func TestPatroniFileValues(t *testing.T) {
	cfg, _, err := Load("testdata/patroni-postgres0.yml", []string{})
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.Dynamic()
	if d.TTL != 30*time.Second || d.LoopWait != 10*time.Second || d.RetryTimeout != 10*time.Second {
		t.Errorf("timing = %v/%v/%v, want 30s/10s/10s", d.TTL, d.LoopWait, d.RetryTimeout)
	}
	if !d.UsePgRewind || !d.UseSlots || d.MaximumLagOnFailover != 1048576 {
		t.Errorf("dynamic = %+v", d)
	}
	if got := cfg.Endpoints(); len(got) != 1 || got[0] != "http://127.0.0.1:2379" {
		t.Errorf("Endpoints = %v", got)
	}
	if cfg.Prefix() != "/service/batman/" {
		t.Errorf("Prefix = %q", cfg.Prefix())
	}
	if cfg.ConnURL() != "postgres://127.0.0.1:5432/postgres" || cfg.APIURL() != "http://127.0.0.1:8008/patroni" {
		t.Errorf("urls = %q %q", cfg.ConnURL(), cfg.APIURL())
	}
	if got := strings.Join(cfg.Bootstrap.InitDB.Args(), " "); got != "--encoding=UTF8 --data-checksums" {
		t.Errorf("initdb args = %q", got)
	}
	if d.Parameters["max_connections"] != "100" || d.Parameters["hot_standby"] != "on" || d.Parameters["unix_socket_directories"] != ".." {
		t.Errorf("parameters = %v", d.Parameters)
	}
	if cfg.Bootstrap.Users["admin"].Password != "admin%" {
		t.Errorf("users = %v", cfg.Bootstrap.Users)
	}
}

func TestEnvironmentOverrides(t *testing.T) {
	env := []string{
		"PATRONI_NAME=node9", "PATRONI_SCOPE=gotham", "PATRONI_NAMESPACE=/pg/",
		"PATRONI_ETCD3_HOSTS='10.0.0.1:2379','10.0.0.2:2379'",
		"PATRONI_RESTAPI_LISTEN=0.0.0.0:8010", "PATRONI_RESTAPI_CONNECT_ADDRESS=10.0.0.9:8010",
		"PATRONI_POSTGRESQL_DATA_DIR=/data/pg", "PATRONI_POSTGRESQL_LISTEN=0.0.0.0:5444",
		"PATRONI_POSTGRESQL_CONNECT_ADDRESS=10.0.0.9:5444",
		"PATRONI_SUPERUSER_USERNAME=admin", "PATRONI_SUPERUSER_PASSWORD=s3cret",
		"PATRONI_REPLICATION_USERNAME=repl", "PATRONI_REPLICATION_PASSWORD=r3pl",
		"PATRONI_APP_PASSWORD=apppw", "PATRONI_APP_OPTIONS=createdb",
	}
	cfg, _, err := Load("testdata/patroni-postgres0.yml", env)
	if err != nil {
		t.Fatal(err)
	}
	checks := map[string][2]string{
		"name":               {cfg.Name, "node9"},
		"scope":              {cfg.Scope, "gotham"},
		"prefix":             {cfg.Prefix(), "/pg/gotham/"},
		"restapi.listen":     {cfg.RestAPI.Listen, "0.0.0.0:8010"},
		"data_dir":           {cfg.Postgres.DataDir, "/data/pg"},
		"connect_address":    {cfg.Postgres.ConnectAddress, "10.0.0.9:5444"},
		"superuser":          {cfg.Postgres.Authentication.Superuser.Username, "admin"},
		"superuser password": {cfg.Postgres.Authentication.Superuser.Password, "s3cret"},
		"replication":        {cfg.Postgres.Authentication.Replication.Username, "repl"},
		"endpoints":          {strings.Join(cfg.Endpoints(), ","), "http://10.0.0.1:2379,http://10.0.0.2:2379"},
		"user app":           {cfg.Bootstrap.Users["app"].Password, "apppw"},
		"user app options":   {strings.Join(cfg.Bootstrap.Users["app"].Options, ","), "createdb"},
	}
	for what, c := range checks {
		if c[0] != c[1] {
			t.Errorf("%s = %q, want %q", what, c[0], c[1])
		}
	}
	if _, ok := cfg.Bootstrap.Users["superuser"]; ok {
		t.Errorf("PATRONI_SUPERUSER_PASSWORD must not create a bootstrap user")
	}
	if cfg.ListenPort() != 5444 || cfg.ListenAddresses() != "0.0.0.0" {
		t.Errorf("listen = %d %q", cfg.ListenPort(), cfg.ListenAddresses())
	}
}

func TestParseSeconds(t *testing.T) {
	good := map[string]time.Duration{"10": 10 * time.Second, "0.5": 500 * time.Millisecond, "250ms": 250 * time.Millisecond, "2s": 2 * time.Second, "0": 0,
		"30min": 30 * time.Minute, "1 h": time.Hour, "2d": 48 * time.Hour, "1.5s": 1500 * time.Millisecond, "1h30m": 90 * time.Minute}
	for in, want := range good {
		if got, err := ParseSeconds(in); err != nil || got != want {
			t.Errorf("ParseSeconds(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"-1", "-2s", "soon", "NaN", "", "1e20", "30 mins", "-5min", "99999999999d"} {
		if _, err := ParseSeconds(in); err == nil {
			t.Errorf("ParseSeconds(%q) succeeded", in)
		}
	}
}

func TestBudget(t *testing.T) {
	tests := []struct {
		ttl, loop, retry time.Duration
		ok               bool
	}{
		{DefaultTTL, DefaultLoopWait, DefaultRetryTimeout, true},
		{30 * time.Second, 10 * time.Second, 10 * time.Second, true},
		{10 * time.Second, 1 * time.Second, 4 * time.Second, true},
		{10 * time.Second, 5 * time.Second, 5 * time.Second, false},
		{1 * time.Second, 100 * time.Millisecond, 100 * time.Millisecond, false},
		{10 * time.Second, 0, 1 * time.Second, false},
	}
	for _, tt := range tests {
		err := Dynamic{TTL: tt.ttl, LoopWait: tt.loop, RetryTimeout: tt.retry}.CheckBudget()
		if (err == nil) != tt.ok {
			t.Errorf("budget(%v,%v,%v) = %v, want ok=%v", tt.ttl, tt.loop, tt.retry, err, tt.ok)
		}
	}
}

func TestDynamicJSONRoundTrip(t *testing.T) {
	cfg, _, err := Load("testdata/etcd-v2.yml", []string{})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := cfg.DCSJSON()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), `"ttl":8`) || !strings.Contains(string(raw), `"loop_wait":1`) {
		t.Errorf("DCSJSON = %s", raw)
	}
	d, err := cfg.Dynamic().WithJSON([]byte(`{"ttl":20,"loop_wait":2,"retry_timeout":5,"pause":true,"postgresql":{"parameters":{"work_mem":"8MB"}}}`), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if d.TTL != 20*time.Second || !d.Pause || d.Parameters["work_mem"] != "8MB" {
		t.Errorf("WithJSON = %+v", d)
	}
	bad, err := cfg.Dynamic().WithJSON([]byte(`{"ttl":"x"}`), cfg)
	if err != nil || bad.TTL != cfg.Dynamic().TTL || len(bad.Problems) != 1 || !strings.Contains(bad.Problems[0], `ttl: "x" is not a non-negative number of seconds`) {
		t.Errorf("WithJSON of a bad ttl = TTL %v, problems %q, %v; want the ttl left out and described", bad.TTL, bad.Problems, err)
	}
	if _, err := cfg.Dynamic().WithJSON([]byte(`[1]`), cfg); err == nil {
		t.Error("WithJSON accepted a list")
	}
}

func TestMain(m *testing.M) {
	os.Exit(m.Run())
}
