package clusterctl

import (
	"strings"
	"time"
)

// localLayouts are the zone-less spellings patronictl's --scheduled
// accepts ("2026-01-02T03:04"), read in the local time zone as it does.
var localLayouts = []string{"2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02 15:04:05", "2006-01-02 15:04"}

// ParseSchedule parses --at (or patronictl's --scheduled): "" or "now"
// mean at once (nil); otherwise an RFC 3339 time, or one of patronictl's
// zone-less forms in the local time zone loc. A time not after now, or one
// that cannot be read, is a Usage failure (see ParseAt). It is pure.
func ParseSchedule(s string, now time.Time, loc *time.Location) (*time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" || strings.EqualFold(s, "now") {
		return nil, nil
	}
	for _, l := range localLayouts {
		if t, err := time.ParseInLocation(l, s, loc); err == nil {
			s = t.Format(time.RFC3339)
			break
		}
	}
	t, err := ParseAt(s, now)
	if err != nil {
		return nil, err
	}
	return &t, nil
}
