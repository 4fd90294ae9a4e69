package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Seconds is a duration written the Patroni way, as a number of seconds
// (10, 0.5), or as a Go duration string ("10s", "500ms").
type Seconds time.Duration

// D returns s as a time.Duration.
func (s Seconds) D() time.Duration { return time.Duration(s) }

// UnmarshalYAML accepts a non-negative number of seconds or a duration string.
func (s *Seconds) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a number of seconds, got a %s", n.Line, kindName(n.Kind))
	}
	d, err := ParseSeconds(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*s = Seconds(d)
	return nil
}

// ParseSeconds parses "10", "0.5", "10s" or "500ms". Negative, NaN and
// unparsable values are errors.
func ParseSeconds(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		if f < 0 || math.IsNaN(f) || math.IsInf(f, 0) || f > 1e9 {
			return 0, fmt.Errorf("%q is not a non-negative number of seconds", v)
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (write seconds, like 10, or a duration, like 10s)", v)
	}
	if d < 0 {
		return 0, fmt.Errorf("%q is negative", v)
	}
	return d, nil
}

// StringList is a YAML list of strings or one comma-separated string, as
// Patroni accepts for etcd hosts.
type StringList []string

// UnmarshalYAML accepts "a:1,b:2" as well as [a:1, b:2].
func (l *StringList) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*l = nil
		for _, p := range strings.Split(n.Value, ",") {
			if p = strings.TrimSpace(p); p != "" {
				*l = append(*l, p)
			}
		}
		return nil
	case yaml.SequenceNode:
		var out []string
		if err := n.Decode(&out); err != nil {
			return err
		}
		*l = out
		return nil
	}
	return fmt.Errorf("line %d: want a list or a comma-separated string, got a %s", n.Line, kindName(n.Kind))
}

// InitDBOptions is bootstrap.initdb: a list whose items are either a switch
// ("data-checksums") or a one-key map ({encoding: UTF8}).
type InitDBOptions []InitDBOption

// InitDBOption is one initdb option; Value is empty for a switch.
type InitDBOption struct {
	Name  string
	Value string
}

// UnmarshalYAML accepts Patroni's list form and, as Patroni does, a map.
func (o *InitDBOptions) UnmarshalYAML(n *yaml.Node) error {
	*o = nil
	add := func(k, v *yaml.Node) error {
		if k.Kind != yaml.ScalarNode || (v != nil && v.Kind != yaml.ScalarNode) {
			return fmt.Errorf("line %d: an initdb option is a name or a name: value pair", k.Line)
		}
		opt := InitDBOption{Name: k.Value}
		if v != nil {
			opt.Value = v.Value
		}
		*o = append(*o, opt)
		return nil
	}
	switch n.Kind {
	case yaml.SequenceNode:
		for _, it := range n.Content {
			switch it.Kind {
			case yaml.ScalarNode:
				if err := add(it, nil); err != nil {
					return err
				}
			case yaml.MappingNode:
				for i := 0; i+1 < len(it.Content); i += 2 {
					if err := add(it.Content[i], it.Content[i+1]); err != nil {
						return err
					}
				}
			default:
				return fmt.Errorf("line %d: an initdb option is a name or a name: value pair", it.Line)
			}
		}
		return nil
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := add(n.Content[i], n.Content[i+1]); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("line %d: want a list of initdb options, got a %s", n.Line, kindName(n.Kind))
}

// Args renders the options as initdb arguments (--encoding=UTF8).
func (o InitDBOptions) Args() []string {
	var out []string
	for _, opt := range o {
		if opt.Value == "" {
			out = append(out, "--"+opt.Name)
		} else {
			out = append(out, "--"+opt.Name+"="+opt.Value)
		}
	}
	return out
}

// Parameters are PostgreSQL settings (name → value) as YAML gives them.
type Parameters map[string]any

// Strings renders every value the way postgresql.conf wants it.
func (p Parameters) Strings() map[string]string {
	out := make(map[string]string, len(p))
	for k, v := range p {
		out[k] = ParamString(v)
	}
	return out
}

// ParamString renders one YAML value as a PostgreSQL setting value.
func ParamString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case bool:
		if x {
			return "on"
		}
		return "off"
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	default:
		return fmt.Sprint(x)
	}
}

// Tags are the member's tags. The ones pg-ha acts on have accessors; any
// other tag is published as given.
type Tags map[string]any

// NoFailover reports the nofailover tag.
func (t Tags) NoFailover() bool { return truthy(t["nofailover"]) }

// NoLoadBalance reports the noloadbalance tag.
func (t Tags) NoLoadBalance() bool { return truthy(t["noloadbalance"]) }

// CloneFrom reports the clonefrom tag.
func (t Tags) CloneFrom() bool { return truthy(t["clonefrom"]) }

// NoSync reports the nosync tag.
func (t Tags) NoSync() bool { return truthy(t["nosync"]) }

// FailoverPriority returns failover_priority (default 1; 0 means never).
func (t Tags) FailoverPriority() int {
	switch x := t["failover_priority"].(type) {
	case int:
		return x
	case float64:
		return int(x)
	case string:
		if n, err := strconv.Atoi(x); err == nil {
			return n
		}
	}
	return 1
}

func truthy(v any) bool {
	switch x := v.(type) {
	case bool:
		return x
	case string:
		b, _ := strconv.ParseBool(strings.ToLower(x))
		return b || strings.EqualFold(x, "on") || strings.EqualFold(x, "yes")
	case int:
		return x != 0
	}
	return false
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "map"
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "scalar"
	case yaml.AliasNode:
		return "alias"
	}
	return "document"
}
