package config

import (
	"regexp"
	"slices"
	"strings"
)

// slotNameRE is what PostgreSQL takes as a replication slot name.
var slotNameRE = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// LogicalSlot is a permanent logical slot: slots: <Name>: {type: logical,
// database: <Database>, plugin: <Plugin>}.
type LogicalSlot struct {
	Name, Database, Plugin string
}

// PermanentSlots splits the slots: section (permanent slots, as in Patroni:
// name → {type: physical} or {type: logical, database, plugin}) into the
// physical slots, the logical ones, and entries whose name PostgreSQL would
// refuse, whose type is neither, or that are logical without a database and
// a plugin. A slot without a type is physical. The lists are sorted by
// name. It does no I/O.
func PermanentSlots(slots map[string]any) (physical []string, logical []LogicalSlot, invalid []string) {
	for name, v := range slots {
		typ := "physical"
		m, _ := v.(map[string]any)
		if t, ok := m["type"]; ok {
			typ = ParamString(t)
		}
		db, plugin := ParamString(m["database"]), ParamString(m["plugin"])
		switch {
		case !slotNameRE.MatchString(name) || (typ != "physical" && typ != "logical"):
			invalid = append(invalid, name)
		case typ == "physical":
			physical = append(physical, name)
		case db == "" || plugin == "":
			invalid = append(invalid, name)
		default:
			logical = append(logical, LogicalSlot{Name: name, Database: db, Plugin: plugin})
		}
	}
	slices.Sort(physical)
	slices.SortFunc(logical, func(a, b LogicalSlot) int { return strings.Compare(a.Name, b.Name) })
	slices.Sort(invalid)
	return physical, logical, invalid
}

// SlotIgnored is Patroni's ignore_slots: a slot matches an entry when each
// of the entry's name, type, database and plugin that is set equals the
// slot's. pg-ha never drops a slot that matches.
func SlotIgnored(rules []map[string]any, name, typ, database, plugin string) bool {
	for _, r := range rules {
		match := len(r) > 0
		for k, want := range map[string]string{"name": name, "type": typ, "database": database, "plugin": plugin} {
			if v, ok := r[k]; ok && v != nil && ParamString(v) != want {
				match = false
			}
		}
		if match {
			return true
		}
	}
	return false
}
