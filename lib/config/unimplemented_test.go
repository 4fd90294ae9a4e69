package config

import (
	"slices"
	"strings"
	"testing"
)

// TestUnimplementedKeysWarn: every Patroni key pg-ha accepts without acting
// on it yet is named in a warning, from the YAML and from the config key; a
// file without them gets none of these warnings.
func TestUnimplementedKeysWarn(t *testing.T) {
	yml := baseYAML + `
bootstrap:
  post_bootstrap: /bin/true
  dcs:
    failsafe_mode: true
    standby_cluster: {host: 10.0.0.9, port: 5432}
    slots: {cdc: {type: logical, database: app, plugin: pgoutput}}
    check_timeline: true
    ignore_slots: [{name: keep_me}]
restapi:
  request_queue_size: 10
tags:
  clonefrom: true
  nostream: true
  replicatefrom: node3
`
	_, warns, err := Parse([]byte(yml), []string{})
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(warns, "\n")
	for _, key := range []string{"restapi.request_queue_size"} {
		if !strings.Contains(all, key+": not implemented by pg-ha yet") {
			t.Errorf("no warning names %s; warnings:\n%s", key, all)
		}
	}
	for _, tag := range []string{"tags.clonefrom", "tags.nostream", "tags.replicatefrom", "slots.cdc", "standby_cluster", "ignore_slots", "post_bootstrap", "check_timeline"} {
		if strings.Contains(all, tag) {
			t.Errorf("%s is acted on, yet warned about:\n%s", tag, all)
		}
	}
	_, warns, err = Parse([]byte(baseYAML), []string{})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.Join(warns, "\n"), "not implemented") {
		t.Errorf("warnings for a plain file: %q", warns)
	}

	d, err := (Dynamic{}).WithJSON([]byte(`{"failsafe_mode":true,"slots":{"s":{"type":"physical"},"cdc":{"type":"logical"},"app":{"type":"logical","database":"app","plugin":"pgoutput"},"Bad-Name":null},"ttl":20}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(d.Warnings(), "\n")
	if d.PermanentSlots == nil || len(d.PermanentSlots) != 1 || d.PermanentSlots[0] != "s" {
		t.Errorf("permanent physical slots %q, want s", d.PermanentSlots)
	}
	if want := []LogicalSlot{{Name: "app", Database: "app", Plugin: "pgoutput"}}; !slices.Equal(d.LogicalSlots, want) {
		t.Errorf("permanent logical slots %+v, want %+v", d.LogicalSlots, want)
	}
	for _, key := range []string{"config key: slots.cdc", "config key: slots.Bad-Name"} {
		if !strings.Contains(got, key+": not implemented") {
			t.Errorf("config key warnings lack %s: %q", key, got)
		}
	}
	if strings.Contains(got, "slots.s:") || strings.Contains(got, "failsafe_mode") {
		t.Errorf("failsafe_mode is acted on, yet warned about: %q", got)
	}
	if d.TTL != 20e9 {
		t.Errorf("the config key's other fields are lost: ttl %s", d.TTL)
	}
}

// TestCallbackKeys: the five callbacks, pre_promote and before_stop are run,
// so they draw no warning; a callback name Patroni does not know is named
// in one; a script that cannot be split into words is invalid.
func TestCallbackKeys(t *testing.T) {
	yml := baseYAML + `
postgresql:
  callbacks:
    on_start: /bin/cb
    on_stop: /bin/cb
    on_restart: /bin/cb
    on_reload: /bin/cb
    on_role_change: "/bin/cb 'with space'"
    on_promote: /bin/cb
  pre_promote: /bin/pre
  before_stop: /bin/stop
`
	_, warns, err := Parse([]byte(yml), []string{})
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(warns, "\n")
	if !strings.Contains(all, "postgresql.callbacks.on_promote: not a callback") {
		t.Errorf("no warning for on_promote: %q", warns)
	}
	for _, w := range warns {
		if strings.Contains(w, "on_promote") {
			continue
		}
		for _, key := range []string{"callbacks", "on_start", "on_role_change", "pre_promote", "before_stop"} {
			if strings.Contains(w, key) {
				t.Errorf("a warning names %s: %q", key, w)
			}
		}
	}
	c, _, err := Parse([]byte(strings.Replace(yml, "before_stop: /bin/stop", `before_stop: "/bin/stop 'open"`, 1)), []string{})
	if err != nil {
		t.Fatal(err)
	}
	var problems []string
	for _, e := range c.Validate(Need{Postgres: true}) {
		problems = append(problems, e.Error())
	}
	if p := strings.Join(problems, "\n"); !strings.Contains(p, "postgresql.before_stop:") || !strings.Contains(p, "unterminated") {
		t.Errorf("problems %q, want one naming postgresql.before_stop", problems)
	}
}

// TestImplementedKeysDoNotWarn: a custom bootstrap method and
// postgresql.recovery_conf, in the YAML and in the config key, are acted
// on and draw no "not implemented" warning.
func TestImplementedKeysDoNotWarn(t *testing.T) {
	yml := baseYAML + `
bootstrap:
  method: pitr
  pitr:
    command: /usr/local/bin/restore --from backup
    recovery_conf:
      restore_command: cp /archive/%f %p
      recovery_target_time: '2026-12-04 01:00:00+00'
  dcs:
    postgresql:
      recovery_conf:
        restore_command: cp /archive/%f %p
postgresql:
  recovery_conf:
    restore_command: cp /archive/%f %p
`
	c, warns, err := Parse([]byte(yml), []string{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Bootstrap.Custom == nil {
		t.Fatal("bootstrap.pitr not read")
	}
	for _, w := range warns {
		if strings.Contains(w, "not implemented") {
			t.Errorf("warning: %s", w)
		}
	}
	d, err := (Dynamic{}).WithJSON([]byte(`{"postgresql":{"recovery_conf":{"restore_command":"cp /a/%f %p"}}}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if w := d.Warnings(); len(w) > 0 {
		t.Errorf("config key warnings: %q", w)
	}
}
