package config

import (
	"regexp"
	"slices"
)

// slotNameRE is what PostgreSQL takes as a replication slot name.
var slotNameRE = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// PermanentSlots splits the slots: section (permanent slots, as in Patroni:
// name → {type: physical} or {type: logical, database, plugin}) into the
// physical slots pg-ha keeps, the logical ones it does not act on yet, and
// entries whose name PostgreSQL would refuse or whose type is neither. A
// slot without a type is physical. The lists are sorted. It does no I/O.
func PermanentSlots(slots map[string]any) (physical, logical, invalid []string) {
	for name, v := range slots {
		typ := "physical"
		if m, ok := v.(map[string]any); ok {
			if t, ok := m["type"]; ok {
				typ = ParamString(t)
			}
		}
		switch {
		case !slotNameRE.MatchString(name) || (typ != "physical" && typ != "logical"):
			invalid = append(invalid, name)
		case typ == "physical":
			physical = append(physical, name)
		default:
			logical = append(logical, name)
		}
	}
	slices.Sort(physical)
	slices.Sort(logical)
	slices.Sort(invalid)
	return physical, logical, invalid
}
