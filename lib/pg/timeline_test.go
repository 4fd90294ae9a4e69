package pg

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseHistory(t *testing.T) {
	real, err := os.ReadFile(filepath.Join("testdata", "00000002.history"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		in      string
		want    []HistoryEntry
		wantErr string
	}{
		{name: "real file from a promotion", in: string(real),
			want: []HistoryEntry{{1, 0x30129B0, "no recovery target specified"}}},
		{name: "empty", in: "", want: nil},
		{name: "comments and blanks", in: "# a comment\n\n   \n", want: nil},
		{name: "three timelines", in: "1\t0/5000000\tno recovery target specified\n\n" +
			"2\t0/6000A28\tbefore 2024-01-01 00:00:00+00\n3\t1/0\tat restore point \"x\"\n",
			want: []HistoryEntry{
				{1, 0x5000000, "no recovery target specified"},
				{2, 0x6000A28, "before 2024-01-01 00:00:00+00"},
				{3, 1 << 32, `at restore point "x"`},
			}},
		{name: "spaces instead of tabs, no reason, no final newline", in: "1 0/10\n  4   0/20  ",
			want: []HistoryEntry{{1, 0x10, ""}, {4, 0x20, ""}}},
		{name: "crlf", in: "1\t0/10\treason\r\n",
			want: []HistoryEntry{{1, 0x10, "reason"}}},
		{name: "not a timeline", in: "x\t0/10\tr\n", wantErr: "numeric timeline"},
		{name: "negative timeline", in: "-1\t0/10\tr\n", wantErr: "numeric timeline"},
		{name: "missing lsn", in: "1\n", wantErr: "LSN"},
		{name: "bad lsn", in: "1\t0:10\tr\n", wantErr: "LSN"},
		{name: "decreasing", in: "2\t0/10\tr\n1\t0/20\tr\n", wantErr: "increase"},
		{name: "repeated", in: "2\t0/10\tr\n2\t0/20\tr\n", wantErr: "line 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseHistory(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseHistory error = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseHistory: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseHistory = %+v, want %+v", got, tt.want)
			}
		})
	}
}
