// Package clock reads the host's boot-time clock, the one clock pg-lockd and
// pg-supervise share: CLOCK_BOOTTIME is monotonic, is the same for every
// process on the host, and keeps counting while the host is suspended, so a
// deadline on it is never trusted longer than real time allows.
//
// Time is injected through the Clock interface; Fake is for tests.
package clock

import (
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Time is a point on CLOCK_BOOTTIME in nanoseconds.
type Time int64

// Add returns t+d.
func (t Time) Add(d time.Duration) Time { return t + Time(d) }

// Sub returns t-u.
func (t Time) Sub(u Time) time.Duration { return time.Duration(t - u) }

// Before reports whether t is before u.
func (t Time) Before(u Time) bool { return t < u }

// Clock tells the time on CLOCK_BOOTTIME.
type Clock interface {
	Now() Time
}

// System is the host's CLOCK_BOOTTIME.
type System struct{}

// Now reads CLOCK_BOOTTIME. It never blocks.
func (System) Now() Time { return Now() }

// Now reads CLOCK_BOOTTIME. It never blocks.
func Now() Time {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		panic("clock_gettime(CLOCK_BOOTTIME): " + err.Error())
	}
	return Time(ts.Nano())
}

// Fake is a Clock that moves only when told to.
type Fake struct {
	mu  sync.Mutex
	now Time
}

// NewFake returns a Fake clock reading start.
func NewFake(start Time) *Fake { return &Fake{now: start} }

// Now returns the fake time.
func (f *Fake) Now() Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// Advance moves the fake time forward by d.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}
