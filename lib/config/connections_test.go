package config

import (
	"strings"
	"testing"
)

func TestConnectionWarnings(t *testing.T) {
	const base = "scope: s\nname: n\netcd3: {hosts: 127.0.0.1:2379}\npostgresql:\n  data_dir: /d\n"
	tests := []struct {
		name, yaml string
		want       []string // substrings, one per expected warning
	}{
		{name: "defaults", yaml: base},
		{name: "enough", yaml: base + "  parameters: {superuser_reserved_connections: 5}\n"},
		{name: "exactly enough in bootstrap.dcs", yaml: base +
			"bootstrap:\n  dcs:\n    postgresql:\n      parameters: {superuser_reserved_connections: 3}\n"},
		{name: "too few", yaml: base + "  parameters: {superuser_reserved_connections: 2}\n",
			want: []string{"postgresql.parameters.superuser_reserved_connections: 2 (set) cannot cover pg-ha's own 3 connections"}},
		{name: "too few in bootstrap.dcs", yaml: base +
			"bootstrap:\n  dcs:\n    postgresql:\n      parameters: {superuser_reserved_connections: 0}\n",
			want: []string{"superuser_reserved_connections: 0 (set) cannot cover"}},
		{name: "local overrides bootstrap.dcs", yaml: base + "  parameters: {superuser_reserved_connections: 4}\n" +
			"bootstrap:\n  dcs:\n    postgresql:\n      parameters: {superuser_reserved_connections: 1}\n"},
		{name: "not a number", yaml: base + "  parameters: {superuser_reserved_connections: many}\n",
			want: []string{`postgresql.parameters.superuser_reserved_connections: "many" is not a whole number; set it`}},
		{name: "max_connections too low", yaml: base + "  parameters: {max_connections: 3}\n",
			want: []string{"postgresql.parameters.max_connections: 3 is not above superuser_reserved_connections (3)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, warns, err := Parse([]byte(tt.yaml), []string{})
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(warns) != len(tt.want) {
				t.Fatalf("warnings %q, want %d: %q", warns, len(tt.want), tt.want)
			}
			for i, want := range tt.want {
				if !strings.Contains(warns[i], want) {
					t.Errorf("warning %d = %q, want it to contain %q", i, warns[i], want)
				}
			}
		})
	}
}
