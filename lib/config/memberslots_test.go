package config

import (
	"strings"
	"testing"
	"time"
)

func TestMemberSlotsTTL(t *testing.T) {
	if got := (&Config{}).Dynamic().MemberSlotsTTL; got != 30*time.Minute {
		t.Errorf("default = %s, want 30m", got)
	}
	cfg, _, err := Parse([]byte("scope: demo\nname: n1\netcd3:\n  hosts: [127.0.0.1:2379]\nbootstrap:\n  dcs:\n    member_slots_ttl: 10min\n"), []string{})
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Dynamic().MemberSlotsTTL; got != 10*time.Minute {
		t.Errorf("bootstrap.dcs.member_slots_ttl 10min = %s", got)
	}
	for in, want := range map[string]time.Duration{`0`: 0, `5`: 5 * time.Second, `"30min"`: 30 * time.Minute, `"90s"`: 90 * time.Second} {
		d, err := cfg.Dynamic().WithJSON([]byte(`{"member_slots_ttl":`+in+`}`), cfg)
		if err != nil || d.MemberSlotsTTL != want || len(d.Problems) != 0 {
			t.Errorf("config key member_slots_ttl %s = %s, %v, %q; want %s", in, d.MemberSlotsTTL, err, d.Problems, want)
		}
	}
	d, err := cfg.Dynamic().WithJSON([]byte(`{"member_slots_ttl":"soon"}`), cfg)
	if err != nil || d.MemberSlotsTTL != 10*time.Minute || len(d.Problems) != 1 || !strings.Contains(d.Problems[0], "member_slots_ttl") {
		t.Errorf("config key member_slots_ttl soon = %s, %v, %q; want it ignored with a problem naming the key", d.MemberSlotsTTL, err, d.Problems)
	}
	if _, _, err := Parse([]byte("scope: demo\nname: n1\nbootstrap:\n  dcs:\n    member_slots_ttl: -1\n"), []string{}); err == nil || !strings.Contains(err.Error(), "member_slots_ttl") {
		t.Errorf("bootstrap.dcs.member_slots_ttl -1: %v, want an error naming the key", err)
	}
}
