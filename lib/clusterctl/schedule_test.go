package clusterctl

import (
	"testing"
	"time"
)

func TestParseSchedule(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	cet := time.FixedZone("CET", 3600)
	for _, tc := range []struct {
		in     string
		want   string // RFC 3339 in UTC; "" for at once
		reason Reason // Unknown for success
	}{
		{"", "", Unknown},
		{"now", "", Unknown},
		{" NOW ", "", Unknown},
		{"2026-06-01T13:00:00Z", "2026-06-01T13:00:00Z", Unknown},
		{"2026-06-01T15:00:00+02:00", "2026-06-01T13:00:00Z", Unknown},
		{"2026-06-01T14:30", "2026-06-01T13:30:00Z", Unknown}, // patronictl's zone-less form, local time (CET)
		{"2026-06-01 14:30:15", "2026-06-01T13:30:15Z", Unknown},
		{"2026-06-01T12:30", "", Usage}, // 11:30 UTC: past
		{"tomorrow", "", Usage},
	} {
		got, err := ParseSchedule(tc.in, now, cet)
		if tc.reason != Unknown {
			if ReasonOf(err) != tc.reason {
				t.Errorf("%q: %v, want a %v failure", tc.in, err, tc.reason)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		s := ""
		if got != nil {
			s = got.UTC().Format(time.RFC3339)
		}
		if s != tc.want {
			t.Errorf("%q = %q, want %q", tc.in, s, tc.want)
		}
	}
}
