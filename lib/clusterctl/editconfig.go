package clusterctl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/pg-ha/pg-ha/lib/dcs"
)

// DynamicConfig is the config key decoded: JSON objects as maps, integers
// as int64 (so 1048576 does not turn into 1.048576e+06 in YAML), other
// numbers as float64.
type DynamicConfig map[string]any

// ParseDynamicConfig decodes the config key's JSON; nil or empty is {}. It
// is pure.
func ParseDynamicConfig(raw []byte) (DynamicConfig, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return DynamicConfig{}, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("config key: %w", err)
	}
	m, ok := normalise(v).(map[string]any)
	if !ok {
		return nil, fmt.Errorf("config key: not a JSON object: %.40q", raw)
	}
	return m, nil
}

// normalise turns json.Number into int64 or float64 and YAML's
// map[any]any-free output into plain maps, recursively.
func normalise(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case int:
		return int64(x)
	case map[string]any:
		for k, e := range x {
			x[k] = normalise(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = normalise(e)
		}
		return x
	}
	return v
}

// YAML renders c as patronictl show-config does: block style, keys sorted,
// "{}" when empty. It is pure.
func (c DynamicConfig) YAML() string {
	if len(c) == 0 {
		return "{}\n"
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	_ = enc.Encode(map[string]any(c)) // maps of scalars, slices and maps always encode
	_ = enc.Close()
	return b.String()
}

// JSON is c as the config key stores it.
func (c DynamicConfig) JSON() ([]byte, error) { return json.Marshal(map[string]any(c)) }

func (c DynamicConfig) clone() DynamicConfig {
	var cp func(v any) any
	cp = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			m := make(map[string]any, len(x))
			for k, e := range x {
				m[k] = cp(e)
			}
			return m
		case []any:
			s := make([]any, len(x))
			for i, e := range x {
				s[i] = cp(e)
			}
			return s
		}
		return v
	}
	return cp(map[string]any(c)).(map[string]any)
}

// Edit is what edit-config changes, applied in this order: Replace (a
// whole YAML document), Apply (a YAML document merged in), then Set and PG.
type Edit struct {
	// Set are "dotted.path=value" pairs; value is read as a YAML scalar (or
	// flow collection), and null deletes the key. Under
	// postgresql.parameters the rest of the path is one parameter name, so
	// "postgresql.parameters.pg_stat_statements.max=1000" works.
	Set []string
	// PG are "name=value" pairs for postgresql.parameters.
	PG []string
	// Apply is a YAML document merged in as Patroni's patch_config does:
	// mappings merge, null deletes, anything else replaces.
	Apply []byte
	// Replace, if not nil, is a YAML document that replaces the whole
	// configuration.
	Replace []byte
}

// Empty reports whether e changes nothing at all.
func (e Edit) Empty() bool {
	return len(e.Set) == 0 && len(e.PG) == 0 && e.Apply == nil && e.Replace == nil
}

// ApplyEdit returns a copy of c with e applied; c is not changed. A pair
// without "=", a value or document that is not valid YAML, or a document
// that is not a mapping is a Usage failure. It is pure.
func ApplyEdit(c DynamicConfig, e Edit) (DynamicConfig, error) {
	out := c.clone()
	if e.Replace != nil {
		doc, err := yamlMapping("--replace", e.Replace)
		if err != nil {
			return nil, err
		}
		out = doc
	}
	if e.Apply != nil {
		doc, err := yamlMapping("--apply", e.Apply)
		if err != nil {
			return nil, err
		}
		patch(out, doc)
	}
	pairs := make([][2]string, 0, len(e.Set)+len(e.PG))
	for _, kv := range e.Set {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fail(Usage, "--set %q: write it as key=value, e.g. --set loop_wait=5 or --set postgresql.parameters.work_mem=8MB", kv)
		}
		pairs = append(pairs, [2]string{"--set", kv})
	}
	for _, kv := range e.PG {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fail(Usage, "--pg %q: write it as name=value, e.g. --pg work_mem=8MB", kv)
		}
		pairs = append(pairs, [2]string{"--pg", "postgresql.parameters." + strings.TrimSpace(kv)})
	}
	for _, p := range pairs {
		k, raw, _ := strings.Cut(p[1], "=")
		var v any
		if err := yaml.Unmarshal([]byte(raw), &v); err != nil {
			return nil, fail(Usage, "%s %q: the value is not valid YAML: %v", p[0], p[1], err)
		}
		setPath(out, strings.Split(strings.TrimSpace(k), "."), normalise(v), nil)
	}
	return out, nil
}

// yamlMapping reads a YAML document that must be a mapping (or empty).
func yamlMapping(flag string, b []byte) (DynamicConfig, error) {
	var v any
	if err := yaml.Unmarshal(b, &v); err != nil {
		return nil, fail(Usage, "%s: not valid YAML: %v", flag, err)
	}
	if v == nil {
		return DynamicConfig{}, nil
	}
	m, ok := normalise(v).(map[string]any)
	if !ok {
		return nil, fail(Usage, "%s: the document must be a mapping (key: value lines), not a %T", flag, v)
	}
	return m, nil
}

// setPath sets path to v in m (nil deletes), creating mappings on the way
// and removing those a deletion leaves empty. Below postgresql.parameters
// the rest of the path is one name: parameter names contain dots.
func setPath(m map[string]any, path []string, v any, prefix []string) {
	if len(prefix) == 2 && prefix[0] == "postgresql" && prefix[1] == "parameters" {
		path = []string{strings.Join(path, ".")}
	}
	k := path[0]
	if len(path) == 1 {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return
	}
	sub, ok := m[k].(map[string]any)
	if !ok {
		sub = map[string]any{}
		m[k] = sub
	}
	setPath(sub, path[1:], v, append(prefix, k))
	if len(sub) == 0 {
		delete(m, k)
	}
}

// patch merges doc into m: a null deletes, a mapping merges into a
// mapping, anything else replaces.
func patch(m, doc map[string]any) {
	for k, v := range doc {
		switch x := v.(type) {
		case nil:
			delete(m, k)
		case map[string]any:
			if cur, ok := m[k].(map[string]any); ok {
				patch(cur, x)
				continue
			}
			fresh := map[string]any{}
			patch(fresh, x)
			m[k] = fresh
		default:
			m[k] = v
		}
	}
}

// ConfigEdit is a planned change of the config key.
type ConfigEdit struct {
	// Before and After are the configuration before and after the edit.
	Before, After DynamicConfig
	// Rev is the config key's mod revision Before was read at (0: absent).
	Rev int64
	// Diff is the unified diff of Before's and After's YAML; "" if equal.
	Diff string
}

// PlanConfigEdit reads the config key and applies e to it. It blocks for
// one etcd request.
func (c *Ctl) PlanConfigEdit(ctx context.Context, e Edit) (ConfigEdit, error) {
	before, rev, err := c.ReadConfig(ctx)
	if err != nil {
		return ConfigEdit{}, err
	}
	return NewConfigEdit(before, rev, e)
}

// NewConfigEdit applies e to before, the config key read at mod revision
// rev (0: absent). It is pure.
func NewConfigEdit(before DynamicConfig, rev int64, e Edit) (ConfigEdit, error) {
	after, err := ApplyEdit(before, e)
	if err != nil {
		return ConfigEdit{}, err
	}
	return ConfigEdit{Before: before, After: after, Rev: rev,
		Diff: UnifiedDiff("before", "after", before.YAML(), after.YAML())}, nil
}

// ReadConfig reads the config key and its mod revision (0 when absent),
// for an edit made elsewhere (in an editor) and then NewConfigEdit. It
// blocks for one etcd request.
func (c *Ctl) ReadConfig(ctx context.Context) (DynamicConfig, int64, error) {
	cl, err := c.DCS.Get(ctx)
	if err != nil {
		return nil, 0, err
	}
	dc, err := ParseDynamicConfig(cl.Config)
	return dc, cl.ConfigRev, err
}

// WriteConfigEdit writes ce.After if the config key is still at ce.Rev: an
// edit made by someone else since ce was read is never overwritten, it is
// a Conflict failure and nothing is written. It blocks for one etcd
// request.
func (c *Ctl) WriteConfigEdit(ctx context.Context, ce ConfigEdit) error {
	raw, err := ce.After.JSON()
	if err != nil {
		return err
	}
	err = c.DCS.PutConfig(ctx, raw, ce.Rev)
	if errors.Is(err, dcs.ErrConflict) {
		return fail(Conflict, "the config key changed while it was being edited; nothing was written: run edit-config again to see the new value")
	}
	if err != nil {
		return fmt.Errorf("write the config key: %w", err)
	}
	c.Log.Info().Int64("previous_revision", ce.Rev).Msg("config key written")
	return nil
}

// ShowConfig reads the config key. It blocks for one etcd request.
func (c *Ctl) ShowConfig(ctx context.Context) (DynamicConfig, error) {
	dc, _, err := c.ReadConfig(ctx)
	return dc, err
}
