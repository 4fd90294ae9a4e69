package pgdata

import "testing"

// TestParseProgress: pg_basebackup's report and a method's percentage are
// read; other lines are not progress.
func TestParseProgress(t *testing.T) {
	for _, tc := range []struct {
		line string
		want Progress
		ok   bool
	}{
		{"  1024/2048 kB (50%), 0/1 tablespace", Progress{Done: 1 << 20, Total: 2 << 20}, true},
		{"30720/30720 kB (100%), 1/1 tablespace (...ata/base/1/1259)", Progress{Done: 30 << 20, Total: 30 << 20}, true},
		{"restored 43% of the backup", Progress{Done: 43, Total: 100}, true},
		{"progress: 99.5 %", Progress{Done: 99, Total: 100}, true},
		{"pg_basebackup: base backup completed", Progress{}, false},
		{"version 1.2%3", Progress{}, false},
		{"350%", Progress{}, false},
	} {
		got, ok := ParseProgress(tc.line)
		if ok != tc.ok || got != tc.want {
			t.Errorf("ParseProgress(%q) = %+v, %v; want %+v, %v", tc.line, got, ok, tc.want, tc.ok)
		}
	}
	if s := (Progress{Done: 43, Total: 100}).String(); s != "43 %" {
		t.Errorf("String = %q", s)
	}
}
