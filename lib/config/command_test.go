package config

import (
	"slices"
	"testing"
)

// TestSplitCommand: the cases are what Python's shlex.split returns for
// the same input.
func TestSplitCommand(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		bad  bool
	}{
		{in: "/usr/local/bin/cb.sh", want: []string{"/usr/local/bin/cb.sh"}},
		{in: "  /bin/cb  a   b\t", want: []string{"/bin/cb", "a", "b"}},
		{in: `python3 /opt/cb.py --name 'node 1'`, want: []string{"python3", "/opt/cb.py", "--name", "node 1"}},
		{in: `cb "a \"b\" \\c \d" e`, want: []string{"cb", `a "b" \c \d`, "e"}},
		{in: `cb a\ b \$HOME`, want: []string{"cb", "a b", "$HOME"}},
		{in: `cb 'it''s' x"y"z`, want: []string{"cb", "its", "xyz"}},
		{in: `cb ''`, want: []string{"cb", ""}},
		{in: `cb $HOME *`, want: []string{"cb", "$HOME", "*"}},
		{in: `cb 'a\b'`, want: []string{"cb", `a\b`}},
		{in: `cb 'open`, bad: true},
		{in: `cb "open`, bad: true},
		{in: `cb trailing\`, bad: true},
		{in: "   ", bad: true},
		{in: "", bad: true},
	}
	for _, tt := range tests {
		got, err := SplitCommand(tt.in)
		if tt.bad {
			if err == nil {
				t.Errorf("SplitCommand(%q) = %q, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("SplitCommand(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}
