package config

import (
	"reflect"
	"strings"
)

// Reloaded returns what a running program uses after its YAML was read
// again as next: old with the settings that apply while running taken from
// next — postgresql.parameters, pg_hba, pg_ident, use_pg_rewind,
// remove_data_directory_on_rewind_failure and _on_diverged_timelines, the
// callbacks, pre_promote and before_stop (used from their next run on), the
// dynamic settings at the top level and in bootstrap — and the names of
// every other setting that differs, which keeps its old value until the
// program restarts (name, scope, data_dir, listen, etcd3, …). It is pure;
// neither argument is modified.
func Reloaded(old, next *Config) (*Config, []string) {
	merged := *old
	merged.Postgres.Parameters = next.Postgres.Parameters
	merged.Postgres.PgHBA = next.Postgres.PgHBA
	merged.Postgres.PgIdent = next.Postgres.PgIdent
	merged.Postgres.UsePgRewind = next.Postgres.UsePgRewind
	merged.Postgres.RemoveDataOnRewindFail = next.Postgres.RemoveDataOnRewindFail
	merged.Postgres.RemoveDataOnDiverged = next.Postgres.RemoveDataOnDiverged
	merged.Postgres.Callbacks = next.Postgres.Callbacks
	merged.Postgres.PrePromote, merged.Postgres.BeforeStop = next.Postgres.PrePromote, next.Postgres.BeforeStop
	merged.DCSCore = next.DCSCore
	merged.Bootstrap = next.Bootstrap

	// What next asks for beyond the live settings, compared with old.
	rest := *next
	rest.Postgres.Parameters, rest.Postgres.PgHBA = old.Postgres.Parameters, old.Postgres.PgHBA
	rest.Postgres.PgIdent, rest.Postgres.UsePgRewind = old.Postgres.PgIdent, old.Postgres.UsePgRewind
	rest.Postgres.RemoveDataOnRewindFail = old.Postgres.RemoveDataOnRewindFail
	rest.Postgres.RemoveDataOnDiverged = old.Postgres.RemoveDataOnDiverged
	rest.Postgres.Callbacks = old.Postgres.Callbacks
	rest.Postgres.PrePromote, rest.Postgres.BeforeStop = old.Postgres.PrePromote, old.Postgres.BeforeStop
	rest.DCSCore, rest.Bootstrap, rest.File = old.DCSCore, old.Bootstrap, old.File
	var restart []string
	diffFields(reflect.ValueOf(*old), reflect.ValueOf(rest), "", &restart)
	return &merged, restart
}

// diffFields appends the YAML names of the fields of structs a and b that
// differ; the postgresql section is compared field by field.
func diffFields(a, b reflect.Value, prefix string, out *[]string) {
	t := a.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		fa, fb := a.Field(i), b.Field(i)
		if name == "postgresql" && f.Type.Kind() == reflect.Struct {
			diffFields(fa, fb, "postgresql.", out)
			continue
		}
		if name == "" {
			name = f.Name
		}
		if !reflect.DeepEqual(fa.Interface(), fb.Interface()) {
			*out = append(*out, prefix+name)
		}
	}
}
