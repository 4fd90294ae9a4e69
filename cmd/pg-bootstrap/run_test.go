package main

import "testing"

// TestSize: sizes are read like PostgreSQL's memory settings; a bad one is
// a one-line error.
func TestSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "512": 512, "10GB": 10 << 30, "512 MB": 512 << 20, "1TB": 1 << 40, "64kB": 64 << 10, "2GiB": 2 << 30} {
		var s Size
		if err := s.UnmarshalText([]byte(in)); err != nil || int64(s) != want {
			t.Errorf("%q → %d, %v; want %d", in, s, err, want)
		}
	}
	for _, in := range []string{"", "ten", "-1GB", "10XB"} {
		var s Size
		if err := s.UnmarshalText([]byte(in)); err == nil {
			t.Errorf("%q accepted as %d", in, s)
		}
	}
}
