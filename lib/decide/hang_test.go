package decide

import (
	"testing"
	"time"
)

func TestUnresponsive(t *testing.T) {
	hung := Silence{SupervisedRunning: true, For: 31 * time.Second, Timeout: 30 * time.Second}
	with := func(f func(*Silence)) Silence { s := hung; f(&s); return s }
	tests := []struct {
		name string
		s    Silence
		want bool
	}{
		{"silent longer than the timeout", hung, true},
		{"silent exactly the timeout", with(func(s *Silence) { s.For = s.Timeout }), true},
		{"silent shorter", with(func(s *Silence) { s.For = 29 * time.Second }), false},
		{"answering", with(func(s *Silence) { s.Answering = true }), false},
		{"starting or stopped", with(func(s *Silence) { s.SupervisedRunning = false }), false},
		{"paused", with(func(s *Silence) { s.Paused = true }), false},
		{"off", with(func(s *Silence) { s.Timeout = 0 }), false},
	}
	for _, tt := range tests {
		if got := Unresponsive(tt.s); got != tt.want {
			t.Errorf("%s: Unresponsive = %v, want %v", tt.name, got, tt.want)
		}
	}
}
