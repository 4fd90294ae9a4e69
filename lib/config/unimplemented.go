package config

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Patroni keys pg-ha accepts but does not act on yet. Each set one is
// reported by a warning naming the key and what pg-ha does instead, so that
// nothing an operator wrote is ignored in silence.

// unimplemented lists the settings of the YAML that are set but not acted
// on, one warning line each.
func (c *Config) unimplemented() []string {
	var out []string
	add := func(key, instead string) {
		out = append(out, fmt.Sprintf("%s: not implemented by pg-ha yet and ignored; %s", key, instead))
	}
	out = append(out, c.Bootstrap.DCS.unimplemented("bootstrap.dcs.")...)
	out = append(out, (&DCS{DCSCore: c.DCSCore}).unimplemented("")...)
	p := &c.Postgres
	for _, name := range slices.Sorted(maps.Keys(p.Callbacks)) {
		if !slices.Contains(CallbackActions, name) {
			out = append(out, fmt.Sprintf("postgresql.callbacks.%s: not a callback (they are %s); it is never run",
				name, strings.Join(CallbackActions, ", ")))
		}
	}
	if p.CustomConf != "" {
		add("postgresql.custom_conf", "the file is not included: pg-ha writes postgresql.conf itself around postgresql.base.conf in data_dir (initdb's original, which Patroni keeps there too); put the file's settings into postgresql.parameters or postgresql.base.conf")
	}
	if p.ConfigDir != "" && p.ConfigDir != p.DataDir {
		add("postgresql.config_dir", "the configuration files are written to and read from data_dir")
	}
	if len(p.BinName) > 0 {
		add("postgresql.bin_name", "the programs are run by their usual names from bin_dir")
	}
	if p.UseUnixSocket || p.UseUnixSocketRepl {
		add("postgresql.use_unix_socket", "pg-ha's own local connections use the runtime directory's socket; replication uses connect_address")
	}
	r := &c.RestAPI
	if r.RequestQueueSize != 0 {
		add("restapi.request_queue_size", "the server's own limits apply")
	}
	switch strings.ToLower(c.Watchdog.Mode) {
	case "automatic", "required", "true":
		add("watchdog.mode", "pg-ha relies on systemd's watchdog (WatchdogSec in the units) and on its own fence, not on /dev/watchdog")
	}
	for key, set := range map[string]bool{"citus": len(c.Citus) > 0, "raft": len(c.Raft) > 0, "consul": len(c.Consul) > 0,
		"zookeeper": len(c.Zookeeper) > 0, "exhibitor": len(c.Exhibitor) > 0, "kubernetes": len(c.Kubernetes) > 0} {
		if set {
			add(key, "pg-ha uses etcd (etcd3) only")
		}
	}
	slices.Sort(out)
	return out
}

// unimplemented lists the dynamic settings in s that are set but not acted
// on; prefix names where they were found ("bootstrap.dcs.", "config key: ").
func (s *DCS) unimplemented(prefix string) []string {
	var out []string
	add := func(key, instead string) {
		out = append(out, fmt.Sprintf("%s%s: not implemented by pg-ha yet and ignored; %s", prefix, key, instead))
	}
	_, _, invalid := PermanentSlots(s.Slots)
	for _, name := range invalid {
		add("slots."+name, "not a slot name PostgreSQL takes ([a-z0-9_], at most 63), a type other than physical and logical, or a logical slot without database and plugin")
	}
	return out
}
