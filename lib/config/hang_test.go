package config

import (
	"strings"
	"testing"
	"time"
)

func TestPrimaryHangTimeout(t *testing.T) {
	cfg, _, err := Parse([]byte("scope: demo\nname: n1\netcd3:\n  hosts: [127.0.0.1:2379]\nbootstrap:\n  dcs:\n    primary_hang_timeout: 12\n"), []string{})
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Dynamic().PrimaryHangTimeout; got != 12*time.Second {
		t.Errorf("bootstrap.dcs.primary_hang_timeout 12 = %s", got)
	}
	if got := (&Config{}).Dynamic().PrimaryHangTimeout; got != DefaultPrimaryHangTimeout {
		t.Errorf("default = %s, want %s", got, DefaultPrimaryHangTimeout)
	}
	d, err := cfg.Dynamic().WithJSON([]byte(`{"primary_hang_timeout":0}`), cfg)
	if err != nil || d.PrimaryHangTimeout != 0 {
		t.Errorf("config key primary_hang_timeout 0 = %s, %v", d.PrimaryHangTimeout, err)
	}
	for _, tt := range []struct {
		v  time.Duration
		ok bool
	}{{0, true}, {5 * time.Second, true}, {30 * time.Second, true}, {2 * time.Second, false}, {-time.Second, false}} {
		err := Dynamic{PrimaryHangTimeout: tt.v}.CheckHangTimeout()
		if (err == nil) != tt.ok || (err != nil && !strings.Contains(err.Error(), "primary_hang_timeout")) {
			t.Errorf("CheckHangTimeout(%s) = %v, want ok=%v", tt.v, err, tt.ok)
		}
	}
	bad, _, err := Parse([]byte("scope: demo\nname: n1\netcd3:\n  hosts: [127.0.0.1:2379]\nbootstrap:\n  dcs:\n    primary_hang_timeout: 2\n"), []string{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range bad.Validate(Need{}) {
		found = found || strings.Contains(e.Error(), "bootstrap.dcs.primary_hang_timeout")
	}
	if !found {
		t.Errorf("Validate with primary_hang_timeout 2: %v, want an error naming the key", bad.Validate(Need{}))
	}
}
