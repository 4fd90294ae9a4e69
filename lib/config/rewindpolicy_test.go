package config

import (
	"strings"
	"testing"
)

// TestRemoveDataKeys: remove_data_directory_on_rewind_failure and
// remove_data_directory_on_diverged_timelines are off by default, are read
// from the local postgresql section, bootstrap.dcs and the config key (the
// local section wins, as in Patroni), follow a reload, and draw no "not
// implemented" warning.
func TestRemoveDataKeys(t *testing.T) {
	type want struct{ fail, diverged bool }
	for _, tc := range []struct {
		name, yaml, key string
		want            want
	}{
		{name: "default", want: want{}},
		{name: "local", yaml: "postgresql:\n  remove_data_directory_on_rewind_failure: yes\n  remove_data_directory_on_diverged_timelines: on\n",
			want: want{true, true}},
		{name: "bootstrap.dcs", yaml: "bootstrap:\n  dcs:\n    postgresql: {remove_data_directory_on_rewind_failure: true}\n",
			want: want{fail: true}},
		{name: "config key", key: `{"postgresql":{"remove_data_directory_on_diverged_timelines":"true"}}`,
			want: want{diverged: true}},
		{name: "local wins over the config key",
			yaml: "postgresql:\n  remove_data_directory_on_rewind_failure: false\n",
			key:  `{"postgresql":{"remove_data_directory_on_rewind_failure":true,"remove_data_directory_on_diverged_timelines":true}}`,
			want: want{diverged: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, warns, err := Parse([]byte(baseYAML+tc.yaml), []string{})
			if err != nil {
				t.Fatal(err)
			}
			if w := strings.Join(warns, "\n"); strings.Contains(w, "remove_data_directory") {
				t.Errorf("warnings name the key: %s", w)
			}
			d := c.Dynamic()
			if tc.key != "" {
				if d, err = d.WithJSON([]byte(tc.key), c); err != nil {
					t.Fatal(err)
				}
				if w := strings.Join(d.Warnings(), "\n"); w != "" {
					t.Errorf("config key warnings: %s", w)
				}
			}
			if got := (want{d.RemoveDataOnRewindFail, d.RemoveDataOnDiverged}); got != tc.want {
				t.Errorf("rewind_failure, diverged_timelines = %v, want %v", got, tc.want)
			}
		})
	}

	old, _, err := Parse([]byte(baseYAML), []string{})
	if err != nil {
		t.Fatal(err)
	}
	next, _, err := Parse([]byte(baseYAML+"postgresql:\n  remove_data_directory_on_rewind_failure: true\n"), []string{})
	if err != nil {
		t.Fatal(err)
	}
	got, restart := Reloaded(old, next)
	if len(restart) > 0 || !got.Dynamic().RemoveDataOnRewindFail {
		t.Errorf("after a reload: restart %v, remove_data_directory_on_rewind_failure %v; want it in force at once",
			restart, got.Dynamic().RemoveDataOnRewindFail)
	}
}
