package elector

import (
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/clock"
	"github.com/pg-ha/pg-ha/lib/dcs"
)

// TestLeadUntil: a lead deadline is the lease validity minus the fence
// margin, never longer than the configured ttl from the renewal's send time
// (etcd may grant more, e.g. its minimum TTL, or after rounding up), and no
// later than an early fence; a failsafe round's validity (its send time plus
// ttl, minus the margin) counts when later, also without a lease.
func TestLeadUntil(t *testing.T) {
	const s = time.Second
	sent := clock.Time(1000 * s)
	for _, c := range []struct {
		name string
		k    *keeper
		want clock.Time
	}{
		{name: "granted as configured", k: &keeper{ttl: 8 * s, lease: dcs.Lease{ID: 1, TTL: 8 * s, ValidUntil: sent.Add(8 * s)}}, want: sent.Add(7 * s)},
		{name: "granted more than ttl", k: &keeper{ttl: 8 * s, lease: dcs.Lease{ID: 1, TTL: 30 * s, ValidUntil: sent.Add(30 * s)}}, want: sent.Add(7 * s)},
		{name: "fractional ttl rounded up by etcd", k: &keeper{ttl: 2500 * time.Millisecond, lease: dcs.Lease{ID: 1, TTL: 3 * s, ValidUntil: sent.Add(3 * s)}}, want: sent.Add(1500 * time.Millisecond)},
		{name: "fenced early", k: &keeper{ttl: 8 * s, fencedAt: sent.Add(4 * s), lease: dcs.Lease{ID: 1, TTL: 8 * s, ValidUntil: sent.Add(8 * s)}}, want: sent.Add(4 * s)},
		{name: "no lease", k: &keeper{ttl: 8 * s}, want: 0},
		{name: "failsafe round later than the lease", k: &keeper{ttl: 8 * s, fs: failsafeState{until: sent.Add(12 * s)}, lease: dcs.Lease{ID: 1, TTL: 8 * s, ValidUntil: sent.Add(8 * s)}}, want: sent.Add(11 * s)},
		{name: "failsafe round earlier than the lease", k: &keeper{ttl: 8 * s, fs: failsafeState{until: sent.Add(5 * s)}, lease: dcs.Lease{ID: 1, TTL: 8 * s, ValidUntil: sent.Add(8 * s)}}, want: sent.Add(7 * s)},
		{name: "failsafe round without a lease", k: &keeper{ttl: 8 * s, fs: failsafeState{until: sent.Add(12 * s)}}, want: sent.Add(11 * s)},
		{name: "failsafe round, fenced early", k: &keeper{ttl: 8 * s, fencedAt: sent.Add(4 * s), fs: failsafeState{until: sent.Add(12 * s)}}, want: sent.Add(4 * s)},
	} {
		if got := c.k.untilLocked(); got != c.want {
			t.Errorf("%s: until %v after the send, want %v", c.name, got.Sub(sent), c.want.Sub(sent))
		}
	}
}
