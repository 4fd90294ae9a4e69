package config

import (
	"strings"
	"testing"
	"time"
)

const baseYAML = "scope: batman\nname: node1\netcd3: {host: 127.0.0.1:2379}\n"

// A wrong value names its key by path in block and in flow style alike.
func TestLoadErrorNamesKeyInBothStyles(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"block ttl", "bootstrap:\n  dcs:\n    ttl: -5\n    loop_wait: 10\n    postgresql:\n      use_pg_rewind: true\n",
			`bootstrap.dcs.ttl: "-5" is not a non-negative number of seconds`},
		{"flow ttl", "bootstrap:\n  dcs: {ttl: -5, loop_wait: 10, postgresql: {use_pg_rewind: true}}\n",
			`bootstrap.dcs.ttl: "-5" is not a non-negative number of seconds`},
		{"flow whole document", "{scope: b, name: n, bootstrap: {dcs: {loop_wait: 10, ttl: -5, postgresql: {use_pg_rewind: true}}}}\n",
			`bootstrap.dcs.ttl: "-5" is not a non-negative number of seconds`},
		{"flow later key", "bootstrap: {dcs: {ttl: 30, maximum_lag_on_failover: lots, loop_wait: 10}}\n",
			"bootstrap.dcs.maximum_lag_on_failover: cannot unmarshal !!str `lots` into int64"},
		{"flow bool", "postgresql: {listen: '127.0.0.1:5432', use_pg_rewind: maybe, data_dir: /x}\n",
			`postgresql.use_pg_rewind: "maybe" is not a boolean; write true or false`},
		{"block bool", "bootstrap:\n  dcs:\n    pause: sometimes\n",
			`bootstrap.dcs.pause: "sometimes" is not a boolean`},
		{"flow list", "bootstrap: {pg_hba: {a: b}, method: initdb}\n",
			"bootstrap.pg_hba: cannot unmarshal !!map into []string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			y := baseYAML + tt.yaml
			if strings.HasPrefix(tt.yaml, "{") {
				y = tt.yaml
			}
			_, _, err := Parse([]byte(y), []string{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse error = %v, want it to contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error spans lines: %q", err)
			}
		})
	}
}

// Booleans load the way Patroni's parse_bool reads them, wherever they are.
func TestLoadBooleansAsPatroni(t *testing.T) {
	for _, tt := range []struct {
		v    string
		want bool
	}{
		{"true", true}, {"True", true}, {"yes", true}, {"on", true}, {"1", true}, {`"1"`, true}, {`"TRUE"`, true},
		{"false", false}, {"no", false}, {"OFF", false}, {"0", false}, {`"0"`, false}, {`"off"`, false},
	} {
		y := baseYAML + "bootstrap: {dcs: {pause: " + tt.v + ", postgresql: {use_slots: " + tt.v + "}}}\n" +
			"postgresql: {use_pg_rewind: " + tt.v + "}\nctl: {insecure: " + tt.v + "}\n"
		cfg, _, err := Parse([]byte(y), []string{})
		if err != nil {
			t.Fatalf("%s: %v", tt.v, err)
		}
		d := cfg.Dynamic()
		if d.Pause != tt.want || d.UseSlots != tt.want || d.UsePgRewind != tt.want || cfg.Ctl.Insecure != tt.want {
			t.Errorf("%s: pause %v use_slots %v use_pg_rewind %v insecure %v, want all %v", tt.v, d.Pause, d.UseSlots, d.UsePgRewind, cfg.Ctl.Insecure, tt.want)
		}
	}
}

func TestTagsReadAsPatroni(t *testing.T) {
	for _, tt := range []struct {
		v    any
		want bool
	}{
		{true, true}, {1, true}, {float64(1), true}, {int64(1), true}, {"1", true}, {"yes", true}, {"On", true}, {"true", true},
		{false, false}, {0, false}, {float64(0), false}, {"0", false}, {"no", false}, {"off", false}, {"False", false},
		{nil, false}, {"", false},
		{"maybe", true}, {float64(2), true}, // unrecognised: set, as Python's bool() of it
	} {
		tags := Tags{"nofailover": tt.v, "noloadbalance": tt.v, "clonefrom": tt.v, "nosync": tt.v}
		if tags.NoFailover() != tt.want || tags.NoLoadBalance() != tt.want || tags.CloneFrom() != tt.want || tags.NoSync() != tt.want {
			t.Errorf("tag value %#v: nofailover %v noloadbalance %v clonefrom %v nosync %v, want all %v",
				tt.v, tags.NoFailover(), tags.NoLoadBalance(), tags.CloneFrom(), tags.NoSync(), tt.want)
		}
	}
	if p := (Tags{"failover_priority": float64(3)}).FailoverPriority(); p != 3 {
		t.Errorf("failover_priority 3.0 from JSON = %d", p)
	}
}

func TestValidateRejectsNonBooleanTag(t *testing.T) {
	cfg, _, err := Parse([]byte(baseYAML+"tags: {nofailover: maybe, noloadbalance: 1}\n"), []string{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range cfg.Validate(Need{}) {
		if strings.Contains(p.Error(), `tags.nofailover: "maybe" is not a boolean`) {
			found = true
		}
		if strings.Contains(p.Error(), "noloadbalance") {
			t.Errorf("noloadbalance: 1 rejected: %v", p)
		}
	}
	if !found {
		t.Errorf("Validate accepted nofailover: maybe")
	}
}

// One wrongly typed field of the config key must not discard the others,
// pause included; the bad field is described.
func TestConfigKeyFieldByField(t *testing.T) {
	base := (&Config{}).Dynamic()
	tests := []struct {
		name     string
		json     string
		check    func(d Dynamic) bool
		problems []string
		warnings []string
	}{
		{"patroni 4 quorum", `{"ttl":20,"loop_wait":2,"pause":true,"synchronous_mode":"quorum"}`,
			func(d Dynamic) bool {
				return d.Pause && d.TTL == 20*time.Second && d.LoopWait == 2*time.Second && d.SyncMode == SyncQuorum
			},
			nil, nil},
		{"bad synchronous_mode", `{"synchronous_mode":"sometimes","pause":true,"ttl":20}`,
			func(d Dynamic) bool { return d.Pause && d.TTL == 20*time.Second && d.SyncMode == SyncOff },
			[]string{`config key: synchronous_mode: "sometimes" is not a synchronous mode`}, nil},
		{"string and number booleans", `{"pause":"on","check_timeline":1,"failsafe_mode":"yes","postgresql":{"use_slots":"0","use_pg_rewind":"true"}}`,
			func(d Dynamic) bool {
				return d.Pause && d.CheckTimeline && d.FailsafeMode && !d.UseSlots && d.UsePgRewind
			},
			nil, nil},
		{"bad fields everywhere", `{"pause":true,"ttl":"soon","loop_wait":[1],"maximum_lag_on_failover":"lots","postgresql":{"use_slots":"maybe","parameters":{"work_mem":"8MB"},"pg_hba":"host all all 0/0 md5"},"standby_cluster":"x"}`,
			func(d Dynamic) bool {
				return d.Pause && d.TTL == base.TTL && d.LoopWait == base.LoopWait && d.UseSlots && d.Parameters["work_mem"] == "8MB" &&
					d.MaximumLagOnFailover == base.MaximumLagOnFailover
			},
			[]string{`loop_wait: [1] is not a non-negative number of seconds`, `maximum_lag_on_failover: "lots" is not an integer`,
				`postgresql.pg_hba: "host all all 0/0 md5" is not a list`, `postgresql.use_slots: "maybe" is not a boolean`,
				`standby_cluster: "x" is not an object`, `ttl: "soon" is not a non-negative number of seconds`}, nil},
		{"integers as strings", `{"maximum_lag_on_failover":"2048","ttl":"15"}`,
			func(d Dynamic) bool { return d.MaximumLagOnFailover == 2048 && d.TTL == 15*time.Second }, nil, nil},
		{"postgresql not an object", `{"postgresql":true,"pause":"true"}`,
			func(d Dynamic) bool { return d.Pause }, []string{"config key: postgresql: true is not an object; ignored"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := base.WithJSON([]byte(tt.json), nil)
			if err != nil {
				t.Fatalf("WithJSON: %v", err)
			}
			if !tt.check(d) {
				t.Errorf("WithJSON(%s) = %+v", tt.json, d)
			}
			if len(d.Problems) != len(tt.problems) {
				t.Fatalf("problems %q, want %d: %q", d.Problems, len(tt.problems), tt.problems)
			}
			for i, want := range tt.problems {
				if !strings.Contains(d.Problems[i], want) || strings.Contains(d.Problems[i], "\n") {
					t.Errorf("problem %d = %q, want it to contain %q", i, d.Problems[i], want)
				}
			}
			warns := strings.Join(d.Warnings(), "|")
			for _, want := range tt.warnings {
				if !strings.Contains(warns, want) {
					t.Errorf("warnings %q lack %q", warns, want)
				}
			}
		})
	}
}

// synchronous_mode: quorum in the YAML loads, with a loud warning, and is
// written to the config key the way Patroni 4 reads it.
func TestYAMLSynchronousModeQuorum(t *testing.T) {
	cfg, warns, err := Parse([]byte(baseYAML+"bootstrap: {dcs: {synchronous_mode: quorum, pause: false}}\n"), []string{})
	if err != nil {
		t.Fatal(err)
	}
	if d := cfg.Dynamic(); d.SyncMode != SyncQuorum || d.SyncNodeCount != 1 || len(warns) != 0 {
		t.Errorf("synchronous_mode quorum: %+v, warnings %q", d, warns)
	}
	raw, err := cfg.DCSJSON()
	if err != nil || !strings.Contains(string(raw), `"synchronous_mode":"quorum"`) {
		t.Errorf("DCSJSON = %s, %v", raw, err)
	}
	if _, _, err := Parse([]byte(baseYAML+"bootstrap: {dcs: {synchronous_mode: sometimes}}\n"), []string{}); err == nil ||
		!strings.Contains(err.Error(), `bootstrap.dcs.synchronous_mode: "sometimes" is not a synchronous mode`) {
		t.Errorf("synchronous_mode: sometimes: %v", err)
	}
}
