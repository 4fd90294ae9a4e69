package config

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// Method is the section of a replica creation method (postgresql.<name>,
// listed in postgresql.create_replica_methods) or of a custom bootstrap
// method (bootstrap.<name>, named by bootstrap.method), as Patroni reads it.
type Method struct {
	Name    string
	Command string
	// KeepData: the data directory is not emptied before the command runs
	// (a delta restore reuses it).
	KeepData bool
	// NoParams: the command gets none of --scope, --datadir, --role,
	// --connstring (the section's other keys are still passed, as Patroni
	// does).
	NoParams bool
	// NoLeader: the method may run while no member is there to clone from
	// (--connstring is then empty).
	NoLeader bool
	// KeepExistingRecoveryConf (bootstrap only): the recovery settings and
	// signal files the command left are kept as they are.
	KeepExistingRecoveryConf bool
	// RecoveryConf (bootstrap only): recovery settings for the first start
	// of the restored cluster (restore_command, recovery_target_*, …).
	RecoveryConf map[string]any
	// Options are the section's other keys, in file order, passed to the
	// command as --key=value.
	Options []Option
}

// Option is one key of a method section passed on as --key=value.
type Option struct {
	Key   string
	Value any
}

// Args are the --key=value arguments of m's options.
func (m Method) Args() []string {
	var out []string
	for _, o := range m.Options {
		out = append(out, "--"+o.Key+"="+ParamString(o.Value))
	}
	return out
}

// ReplicaMethods are the replica creation methods in the order they are
// tried: postgresql.create_replica_methods, or basebackup alone when the
// list is empty. basebackup is built in and has no Method section.
func (c *Config) ReplicaMethods() []string {
	if len(c.Postgres.CreateReplicaMethods) == 0 {
		return []string{"basebackup"}
	}
	return c.Postgres.CreateReplicaMethods
}

// parseMethods reads the method sections next to create_replica_methods
// and bootstrap.method from the document's YAML.
func parseMethods(doc *yaml.Node, cfg *Config) error {
	if pg := child(doc, "postgresql"); pg != nil {
		for _, name := range cfg.Postgres.CreateReplicaMethods {
			if name == "basebackup" {
				continue
			}
			m, err := parseMethod(child(pg, name), "postgresql."+name, name)
			if err != nil {
				return err
			}
			if cfg.Postgres.Methods == nil {
				cfg.Postgres.Methods = map[string]Method{}
			}
			cfg.Postgres.Methods[name] = m
		}
	}
	if name := cfg.Bootstrap.Method; name != "" && name != "initdb" {
		m, err := parseMethod(child(child(doc, "bootstrap"), name), "bootstrap."+name, name)
		if err != nil {
			return err
		}
		cfg.Bootstrap.Custom = &m
	}
	return nil
}

func parseMethod(n *yaml.Node, path, name string) (Method, error) {
	m := Method{Name: name}
	if n == nil || n.Kind != yaml.MappingNode {
		return m, fmt.Errorf("%s: missing; a method needs its own section with a command", path)
	}
	flag := func(k string, v *yaml.Node) (bool, error) {
		var x any
		if err := v.Decode(&x); err != nil {
			return false, fmt.Errorf("%s.%s: %s", path, k, oneLine(err))
		}
		b, ok := ParseBool(x)
		if !ok {
			return false, fmt.Errorf("%s.%s: %q is not a boolean; write true or false", path, k, ParamString(x))
		}
		return b, nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i].Value, n.Content[i+1]
		var err error
		switch k {
		case "command":
			if v.Kind != yaml.ScalarNode || strings.TrimSpace(v.Value) == "" {
				return m, fmt.Errorf("%s.command: want the program and its arguments as one line", path)
			}
			if _, err := SplitCommand(v.Value); err != nil {
				return m, fmt.Errorf("%s.command: %q cannot be run: %v", path, v.Value, err)
			}
			m.Command = v.Value
		case "keep_data":
			m.KeepData, err = flag(k, v)
		case "no_params":
			m.NoParams, err = flag(k, v)
		case "no_leader", "no_master":
			m.NoLeader, err = flag(k, v)
		case "keep_existing_recovery_conf":
			m.KeepExistingRecoveryConf, err = flag(k, v)
		case "recovery_conf":
			if err := v.Decode(&m.RecoveryConf); err != nil {
				return m, fmt.Errorf("%s.recovery_conf: want a map of recovery settings (%s)", path, oneLine(err))
			}
		default:
			var x any
			if err := v.Decode(&x); err != nil {
				return m, fmt.Errorf("%s.%s: %s", path, k, oneLine(err))
			}
			m.Options = append(m.Options, Option{Key: k, Value: x})
		}
		if err != nil {
			return m, err
		}
	}
	if m.Command == "" {
		return m, fmt.Errorf("%s.command: missing; say what program creates the data directory", path)
	}
	return m, nil
}

// child is the value of key in the mapping n, or nil.
func child(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}
