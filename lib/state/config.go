package state

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/pg-ha/pg-ha/lib/clock"
)

// ConfigFile is where pg-lockd leaves the cluster's dynamic configuration
// (the config key) for pg-supervise, which must not talk to etcd itself.
const ConfigFile = "config.json"

// Config is the content of ConfigFile: the config key's JSON object as
// pg-lockd last read and applied it. pg-supervise merges it with its own
// YAML exactly as pg-lockd does (config.Dynamic.WithJSON), so that both
// programs derive the same settings and a reloaded YAML applies on either
// side alone.
type Config struct {
	// Scope and Name say whose file it is: a file left in a runtime
	// directory by another node is not used.
	Scope string `json:"scope"`
	Name  string `json:"name"`
	// Revision is the config key's mod revision.
	Revision int64 `json:"revision"`
	// Config is the config key's value, a JSON object.
	Config json.RawMessage `json:"config"`
	// Updated is when this was written (CLOCK_BOOTTIME ns).
	Updated clock.Time `json:"updated"`
}

// ReadConfig reads ConfigFile from dir and checks that it belongs to the
// node scope/name and holds a JSON object. It returns ErrNotExist (wrapped)
// if absent, another error if unreadable or not the node's.
func ReadConfig(dir, scope, name string) (Config, error) {
	var c Config
	if err := Read(dir, ConfigFile, &c); err != nil {
		return Config{}, err
	}
	if c.Scope != scope || c.Name != name {
		return Config{}, fmt.Errorf("read %s: written for %s/%s, not %s/%s", ConfigFile, c.Scope, c.Name, scope, name)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(c.Config, &obj); err != nil || obj == nil {
		return Config{}, fmt.Errorf("read %s: config is not a JSON object", ConfigFile)
	}
	return c, nil
}

// IsNotExist reports whether err says a state file is absent.
func IsNotExist(err error) bool { return errors.Is(err, ErrNotExist) }
