package clusterctl

import (
	"encoding/json"
	"fmt"
)

// SetPause returns the config key's JSON with "pause": true (pause) or with
// "pause" removed (resume), as Patroni's PATCH /config does; every other
// field is kept as it was. raw nil (no config key) counts as {}. changed is
// false when raw already says so; then out is raw. It is pure.
func SetPause(raw []byte, pause bool) (out []byte, changed bool, err error) {
	fields := map[string]json.RawMessage{}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &fields); err != nil {
			return nil, false, fmt.Errorf("config key: %w", err)
		}
		if fields == nil {
			return nil, false, fmt.Errorf("config key: not a JSON object: %.40q", raw)
		}
	}
	var cur bool
	if v, ok := fields["pause"]; ok {
		// Patroni accepts true/false and also "true"/"on"-like strings;
		// anything but JSON true counts as not paused.
		_ = json.Unmarshal(v, &cur)
	}
	_, present := fields["pause"]
	if pause {
		if cur {
			return raw, false, nil
		}
		fields["pause"] = json.RawMessage("true")
	} else {
		if !present {
			return raw, false, nil
		}
		delete(fields, "pause")
	}
	out, err = json.Marshal(fields)
	return out, true, err
}
