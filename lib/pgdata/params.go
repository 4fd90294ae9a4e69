package pgdata

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/pg-ha/pg-ha/lib/config"
)

// Override is a parameter whose requested value (from the config key or
// the YAML) pg-ha did not write, and why.
type Override struct {
	Name  string
	Asked string // "" when the parameter was left out
	Used  string // "" when the parameter is not written at all
	Why   string
}

func (o Override) String() string {
	if o.Used == "" {
		return fmt.Sprintf("%s=%q ignored: %s", o.Name, o.Asked, o.Why)
	}
	return fmt.Sprintf("%s=%q replaced by %q: %s", o.Name, o.Asked, o.Used, o.Why)
}

// minimum is a lower bound Patroni keeps on a parameter that replication
// needs, and the value used when a request is below it or unreadable.
type minimum struct {
	min, def int64
	unitMB   bool // the value is a size whose base unit is MB
}

// minimums are Patroni's bounds on the server parameters it passes on the
// postmaster's command line (patroni/postgresql/config.py CMDLINE_OPTIONS),
// those that apply to PostgreSQL 15. Below them a replica cannot follow, or
// a standby cannot start after a primary with larger values.
var minimums = map[string]minimum{
	"max_connections":           {min: 25, def: 100},
	"max_wal_senders":           {min: 3, def: 10},
	"max_prepared_transactions": {min: 0, def: 0},
	"max_locks_per_transaction": {min: 32, def: 64},
	"max_replication_slots":     {min: 4, def: 10},
	"max_worker_processes":      {min: 2, def: 8},
	"wal_keep_size":             {min: 16, def: 128, unitMB: true},
}

// recoveryManaged are set by pg-ha from the role line (WriteConf).
var recoveryManaged = []string{"primary_conninfo", "primary_slot_name", "recovery_target_timeline"}

// ServerParameters returns the settings pg-ha writes into postgresql.conf
// for this node from the merged dynamic configuration d, and every
// requested value it overrode. The rules are Patroni's: the node's own
// listen_addresses, port and unix socket directories come from its YAML and
// cluster_name is the scope; hot_standby stays on; wal_level is at least
// replica; the replication limits keep their minimums (a value below one,
// or unreadable, is replaced by Patroni's default); the recovery settings
// follow the role; with synchronous_mode on, synchronous_standby_names is
// pg-ha's to set, never the configuration's. It is pure.
func (n *Node) ServerParameters(d config.Dynamic) (map[string]string, []Override) {
	p := map[string]string{}
	for k, v := range d.Parameters {
		p[strings.ToLower(k)] = v
	}
	var ov []Override
	force := func(name, used, why string) {
		if asked, ok := p[name]; ok && asked != used {
			ov = append(ov, Override{Name: name, Asked: asked, Used: used, Why: why})
		}
		if used == "" {
			delete(p, name)
			return
		}
		p[name] = used
	}

	if segs, ok := p["wal_keep_segments"]; ok {
		// Removed in PostgreSQL 13; Patroni converts it assuming 16 MB segments.
		n, err := strconv.ParseInt(strings.TrimSpace(segs), 10, 64)
		_, haveSize := p["wal_keep_size"]
		if err == nil && !haveSize {
			p["wal_keep_size"] = strconv.FormatInt(n*16, 10) + "MB"
		}
		ov = append(ov, Override{Name: "wal_keep_segments", Asked: segs, Why: "removed in PostgreSQL 13; wal_keep_size is used"})
		delete(p, "wal_keep_segments")
	}
	for name, m := range minimums {
		v, ok := p[name]
		if !ok {
			continue
		}
		x, ok := intValue(v, m.unitMB)
		if !ok || x < m.min {
			used := strconv.FormatInt(m.def, 10)
			if m.unitMB {
				used += "MB"
			}
			force(name, used, fmt.Sprintf("must be at least %d%s for replication (Patroni's rule)", m.min, map[bool]string{true: "MB"}[m.unitMB]))
		}
	}
	if v, ok := p["hot_standby"]; ok {
		if b, ok := config.ParseBool(v); !ok || !b {
			force("hot_standby", "on", "replicas must accept read-only queries; pg-ha keeps it on")
		}
	}
	switch v, ok := p["wal_level"]; {
	case !ok:
	case strings.EqualFold(v, "hot_standby"):
		p["wal_level"] = "replica" // the name before PostgreSQL 9.6
	case strings.EqualFold(v, "replica"), strings.EqualFold(v, "logical"):
	default:
		force("wal_level", "replica", "replication needs wal_level replica or logical")
	}
	if len(d.LogicalSlots) > 0 {
		// Logical permanent slots: decoding needs logical WAL, and the
		// copies on the replicas need their catalog rows kept on the
		// primary, which hot_standby_feedback through their slots does.
		force("wal_level", "logical", "logical permanent slots (slots:) need it")
		if v, ok := p["hot_standby_feedback"]; ok {
			if b, ok := config.ParseBool(v); !ok || !b {
				force("hot_standby_feedback", "on", "the replicas' copies of logical permanent slots need it")
			}
		}
		p["hot_standby_feedback"] = "on"
	}
	if v, ok := p["track_commit_timestamp"]; ok {
		if _, ok := config.ParseBool(v); !ok {
			force("track_commit_timestamp", "off", "not a boolean")
		}
	}
	if v, ok := p["wal_log_hints"]; ok && d.UsePgRewind {
		if b, ok := config.ParseBool(v); !ok || !b {
			force("wal_log_hints", "on", "use_pg_rewind needs it")
		}
	}
	for _, name := range recoveryManaged {
		force(name, "", "pg-ha sets it from the node's role")
	}
	if d.Synchronous() {
		force("synchronous_standby_names", "", "synchronous_mode is on: pg-ha sets it from the sync state")
	}
	for _, name := range []string{"data_directory", "config_file"} {
		force(name, "", "fixed by the node's data_dir")
	}

	defaults := map[string]string{
		"wal_level":                   "replica",
		"hot_standby":                 "on",
		"max_wal_senders":             "10",
		"max_replication_slots":       "10",
		"wal_keep_size":               "128MB",
		"wal_retrieve_retry_interval": "1s",
		// As Patroni: on even without use_pg_rewind, whose dry run still
		// tells whether a replica diverged.
		"wal_log_hints": "on",
	}
	for k, v := range defaults {
		if _, ok := p[k]; !ok {
			p[k] = v
		}
	}
	force("cluster_name", n.Cfg.Scope, "always the scope")
	force("listen_addresses", n.Cfg.ListenAddresses(), "set by the node's postgresql.listen")
	force("port", strconv.Itoa(n.Cfg.ListenPort()), "set by the node's postgresql.listen")
	sock := n.RuntimeDir
	if v, ok := n.Cfg.Postgres.Parameters["unix_socket_directories"]; ok {
		sock = config.ParamString(v)
	}
	force("unix_socket_directories", sock, "the node's own (its YAML's, else the runtime directory): pg-ha connects there")
	sort.Slice(ov, func(i, j int) bool { return ov[i].Name < ov[j].Name })
	return p, ov
}

// intValue reads an integer setting; with unitMB a size in kB, MB, GB or TB
// (MB without a unit), converted to MB.
func intValue(v string, unitMB bool) (int64, bool) {
	s := strings.TrimSpace(v)
	mult, div := int64(1), int64(1)
	if unitMB {
		for _, u := range []struct {
			suffix    string
			mult, div int64
		}{{"kB", 1, 1024}, {"MB", 1, 1}, {"GB", 1024, 1}, {"TB", 1024 * 1024, 1}} {
			if t, ok := strings.CutSuffix(s, u.suffix); ok {
				s, mult, div = strings.TrimSpace(t), u.mult, u.div
				break
			}
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, false
	}
	return n * mult / div, true
}
