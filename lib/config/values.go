package config

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
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

// pgUnits are the time units Patroni reads in durations such as
// member_slots_ttl ("30min", "1 h", "2d"), as PostgreSQL's settings do.
var pgUnits = map[string]time.Duration{"ms": time.Millisecond, "s": time.Second, "min": time.Minute, "h": time.Hour, "d": 24 * time.Hour}

var pgDurationRE = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)\s*(ms|s|min|h|d)$`)

// ParseSeconds parses "10", "0.5", "10s", "500ms", a Go duration like
// "1h30m", or a number with a PostgreSQL unit as Patroni accepts it
// ("30min", "1 h", "2d"). Negative, NaN and unparsable values are errors.
func ParseSeconds(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		if f < 0 || math.IsNaN(f) || math.IsInf(f, 0) || f > 1e9 {
			return 0, fmt.Errorf("%q is not a non-negative number of seconds", v)
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	if m := pgDurationRE.FindStringSubmatch(v); m != nil {
		f, err := strconv.ParseFloat(m[1], 64)
		unit := pgUnits[m[2]]
		if err != nil || f*float64(unit) > 1e9*float64(time.Second) {
			return 0, fmt.Errorf("%q is not a usable duration", v)
		}
		return time.Duration(f * float64(unit)), nil
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

// NoFailover reports the nofailover tag (see TagBool).
func (t Tags) NoFailover() bool { return TagBool(t["nofailover"]) }

// NoLoadBalance reports the noloadbalance tag (see TagBool).
func (t Tags) NoLoadBalance() bool { return TagBool(t["noloadbalance"]) }

// CloneFrom reports the clonefrom tag (see TagBool).
func (t Tags) CloneFrom() bool { return TagBool(t["clonefrom"]) }

// NoStream reports the nostream tag (see TagBool): the node replays archived
// WAL only (restore_command) and streams from no one.
func (t Tags) NoStream() bool { return TagBool(t["nostream"]) }

// ReplicateFrom returns the replicatefrom tag: the member to stream from
// instead of the leader ("" for none).
func (t Tags) ReplicateFrom() string { return ParamString(t["replicatefrom"]) }

// NoSync reports the nosync tag (see TagBool).
func (t Tags) NoSync() bool { return TagBool(t["nosync"]) }

// FailoverPriority returns failover_priority (default 1; 0 means never).
func (t Tags) FailoverPriority() int {
	switch x := t["failover_priority"].(type) {
	case int:
		return x
	case int64:
		return int(x)
	case float64:
		return int(x)
	case string:
		if n, err := strconv.Atoi(strings.TrimSpace(x)); err == nil {
			return n
		}
	}
	return 1
}

// BoolTags are the tags whose value is a boolean.
var BoolTags = []string{"clonefrom", "nofailover", "noloadbalance", "nosync", "nostream"}

// ParseBool reads a boolean written any way Patroni's parse_bool accepts:
// true/false, yes/no, on/off or 1/0, case-insensitive, as a boolean, a
// number (YAML int or JSON number) or a string. ok is false for anything
// else, nil included. It is the one boolean reader of pg-ha: YAML fields,
// tags (local and read back from member keys) and the config key all use it.
func ParseBool(v any) (b, ok bool) {
	switch x := v.(type) {
	case bool:
		return x, true
	case int:
		return x == 1, x == 0 || x == 1
	case int64:
		return x == 1, x == 0 || x == 1
	case float64:
		return x == 1, x == 0 || x == 1
	case string:
		switch strings.ToLower(strings.TrimSpace(x)) {
		case "true", "yes", "on", "1":
			return true, true
		case "false", "no", "off", "0":
			return false, true
		}
	}
	return false, false
}

// TagBool is the value of a boolean tag: ParseBool's when it recognises the
// value; false when the tag is absent, null or empty; true for any other
// value, as Patroni's bool() of it, so a mistyped nofailover never makes a
// node a failover candidate.
func TagBool(v any) bool {
	if b, ok := ParseBool(v); ok {
		return b
	}
	switch v.(type) {
	case []any, map[string]any:
		return true // set, even if empty
	}
	return Truthy(v)
}

// SyncMode is synchronous_mode: off, on, or Patroni 4's quorum.
type SyncMode string

// The values of synchronous_mode.
const (
	SyncOff    SyncMode = "off"
	SyncOn     SyncMode = "on"
	SyncQuorum SyncMode = "quorum"
)

// ParseSyncMode reads synchronous_mode: a boolean (see ParseBool) or
// "quorum", case-insensitive.
func ParseSyncMode(v any) (SyncMode, bool) {
	if b, ok := ParseBool(v); ok {
		if b {
			return SyncOn, true
		}
		return SyncOff, true
	}
	if s, ok := v.(string); ok && strings.EqualFold(strings.TrimSpace(s), "quorum") {
		return SyncQuorum, true
	}
	return "", false
}

// UnmarshalYAML accepts a boolean or quorum.
func (m *SyncMode) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want false, true or quorum, got a %s", n.Line, kindName(n.Kind))
	}
	v, ok := ParseSyncMode(n.Value)
	if !ok {
		return fmt.Errorf("line %d: %q is not a synchronous mode; write false, true or quorum", n.Line, n.Value)
	}
	*m = v
	return nil
}

// MarshalJSON writes a boolean, or "quorum", as Patroni stores it.
func (m SyncMode) MarshalJSON() ([]byte, error) {
	switch m {
	case SyncOn:
		return []byte("true"), nil
	case SyncQuorum:
		return []byte(`"quorum"`), nil
	}
	return []byte("false"), nil
}

// UnmarshalJSON accepts a boolean (see ParseBool) or "quorum".
func (m *SyncMode) UnmarshalJSON(b []byte) error {
	var x any
	if err := json.Unmarshal(b, &x); err != nil {
		return err
	}
	v, ok := ParseSyncMode(x)
	if !ok {
		return fmt.Errorf("%s is not a synchronous mode; write false, true or quorum", b)
	}
	*m = v
	return nil
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
