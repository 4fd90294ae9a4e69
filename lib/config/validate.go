package config

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// Need says which parts of the configuration a program uses, so that
// Validate does not demand what that program never reads.
type Need struct {
	// Etcd requires etcd endpoints (everything but a standalone pg-healthd).
	Etcd bool
	// Postgres requires a data directory and the connection settings.
	Postgres bool
}

// NeedAll is what the HA daemons need.
var NeedAll = Need{Etcd: true, Postgres: true}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// Validate returns every problem of c, each one line naming the key and the
// fix. An empty result means c is usable.
func (c *Config) Validate(need Need) []error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	switch {
	case c.Name == "":
		add("name: missing; set name to this node's member name (or PATRONI_NAME)")
	case !nameRE.MatchString(c.Name):
		add("name: %q is not a usable member name; use letters, digits, '.', '_' or '-'", c.Name)
	}
	switch {
	case c.Scope == "":
		add("scope: missing; set scope to the cluster's name (or PATRONI_SCOPE)")
	case strings.Contains(c.Scope, "/"):
		add("scope: %q contains '/'; use the cluster's name alone", c.Scope)
	}
	if !strings.HasPrefix(c.Namespace, "/") {
		add("namespace: %q must start with '/', like /service/", c.Namespace)
	}

	if need.Etcd {
		eps := c.Endpoints()
		if len(eps) == 0 {
			add("etcd3: no endpoints; set etcd3.hosts to the etcd client addresses (host:port, …) or PATRONI_ETCD3_HOSTS")
		}
		for _, ep := range eps {
			u, err := url.Parse(ep)
			if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
				add("etcd3.hosts: %q is not an etcd address; write host:port or http(s)://host:port", ep)
			}
		}
		if c.Etcd3 != nil && c.Etcd3.SRV != "" && len(eps) == 0 {
			add("etcd3.srv: DNS discovery is not supported; list etcd3.hosts instead")
		}
	}

	for _, sc := range []map[string]any{c.Bootstrap.DCS.StandbyCluster, c.DCSCore.StandbyCluster} {
		if _, err := ParseStandbyCluster(sc); err != nil {
			add("bootstrap.dcs.%v", err)
		}
	}

	if c.RestAPI.Listen != "" {
		if _, _, ok := lastHostPort(c.RestAPI.Listen); !ok {
			add("restapi.listen: %q is not host:port; write it like 127.0.0.1:8008", c.RestAPI.Listen)
		}
	}
	if c.RestAPI.ConnectAddress != "" {
		if _, _, err := net.SplitHostPort(c.RestAPI.ConnectAddress); err != nil {
			add("restapi.connect_address: %q is not host:port; write it like 10.0.0.1:8008", c.RestAPI.ConnectAddress)
		}
	}
	if (c.RestAPI.CertFile == "") != (c.RestAPI.KeyFile == "") && c.RestAPI.CertFile == "" {
		add("restapi.keyfile: set without restapi.certfile; set both for TLS or neither")
	}
	if a := c.RestAPI.Authentication; a != nil && (a.Username == "" || a.Password == "") {
		add("restapi.authentication: needs both username and password")
	}

	if need.Postgres {
		if c.Postgres.DataDir == "" {
			add("postgresql.data_dir: missing; set it to the PostgreSQL data directory (or PATRONI_POSTGRESQL_DATA_DIR)")
		}
		if c.Postgres.Listen == "" {
			add("postgresql.listen: missing; set it to the address PostgreSQL listens on, like 127.0.0.1:5432")
		} else if _, p, ok := lastHostPort(c.Postgres.Listen); !ok {
			add("postgresql.listen: %q is not host:port; write it like 127.0.0.1:5432", c.Postgres.Listen)
		} else if n, err := strconv.Atoi(p); err != nil || n <= 0 || n > 65535 {
			add("postgresql.listen: port %q is out of range", p)
		}
		if c.Postgres.ConnectAddress == "" {
			add("postgresql.connect_address: missing; set the host:port other nodes reach PostgreSQL at")
		} else if _, _, err := net.SplitHostPort(c.Postgres.ConnectAddress); err != nil {
			add("postgresql.connect_address: %q is not host:port; write it like 10.0.0.1:5432", c.Postgres.ConnectAddress)
		}
		if c.Postgres.Authentication.Replication.Username == "" {
			add("postgresql.authentication.replication.username: missing; set the role replicas connect as (or PATRONI_REPLICATION_USERNAME)")
		}
		for key, cmd := range c.hookCommands() {
			if _, err := SplitCommand(cmd); err != nil {
				add("postgresql.%s: %q cannot be run: %v; write the program and its arguments as a shell would, quoting spaces", key, cmd, err)
			}
		}
		seen := map[string]bool{}
		for _, m := range c.Postgres.CreateReplicaMethods {
			if seen[m] {
				add("postgresql.create_replica_methods: %q is listed twice", m)
			}
			seen[m] = true
		}
	}

	switch strings.ToLower(c.Watchdog.Mode) {
	case "", "off", "automatic", "required", "false", "true":
	default:
		add("watchdog.mode: %q is not one of off, automatic, required", c.Watchdog.Mode)
	}
	for _, name := range BoolTags {
		if v, ok := c.Tags[name]; ok && v != nil {
			if _, ok := ParseBool(v); !ok {
				add("tags.%s: %q is not a boolean; write true or false", name, ParamString(v))
			}
		}
	}
	if p, ok := c.Tags["failover_priority"]; ok {
		n, err := strconv.Atoi(ParamString(p))
		if err != nil || n < 0 {
			add("tags.failover_priority: %v is not a non-negative integer", p)
		}
	}

	for _, n := range []*int{c.Bootstrap.DCS.SynchronousNodeCount, c.DCSCore.SynchronousNodeCount} {
		if n != nil && *n < 1 {
			add("bootstrap.dcs.synchronous_node_count: %d is less than 1; set how many standbys each commit waits for, like 1", *n)
		}
	}
	d := c.Dynamic()
	if d.MaximumLagOnFailover < 0 {
		add("bootstrap.dcs.maximum_lag_on_failover: %d is negative; set a number of bytes, like 1048576", d.MaximumLagOnFailover)
	}
	if err := d.CheckBudget(); err != nil {
		errs = append(errs, fmt.Errorf("bootstrap.dcs.%w", err))
	}
	if err := d.CheckHangTimeout(); err != nil {
		errs = append(errs, fmt.Errorf("bootstrap.dcs.%w", err))
	}
	return errs
}

// hookCommands lists the scripts set in the postgresql section by key:
// callbacks.<action>, pre_promote and before_stop.
func (c *Config) hookCommands() map[string]string {
	out := map[string]string{}
	for name, cmd := range c.Postgres.Callbacks {
		out["callbacks."+name] = cmd
	}
	if c.Postgres.PrePromote != "" {
		out["pre_promote"] = c.Postgres.PrePromote
	}
	if c.Postgres.BeforeStop != "" {
		out["before_stop"] = c.Postgres.BeforeStop
	}
	return out
}
