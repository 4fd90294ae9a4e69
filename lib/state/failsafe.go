package state

import (
	"time"

	"github.com/pg-ha/pg-ha/lib/clock"
)

// FailsafeFile is where pg-healthd records the promise it gave a leader
// that asked over POST /failsafe (failsafe_mode): this node takes no
// leader key until Until. pg-lockd reads it before every attempt.
const FailsafeFile = "failsafe.json"

// MaxFailsafePromise bounds how long one POST /failsafe may ask for.
const MaxFailsafePromise = 10 * time.Minute

// Failsafe is a promise given to a leader cut off from etcd.
type Failsafe struct {
	// Leader is the member that asked.
	Leader string `json:"leader"`
	// Received is when the request arrived and Until when the promise
	// ends (CLOCK_BOOTTIME ns): Received plus the ttl the leader asked for.
	Received clock.Time `json:"received"`
	Until    clock.Time `json:"until"`
	// At is Received on the wall clock, for humans.
	At time.Time `json:"at"`
}

// ReadFailsafe reads the promise file; a missing file is ErrNotExist.
func ReadFailsafe(dir string) (Failsafe, error) {
	var f Failsafe
	err := Read(dir, FailsafeFile, &f)
	return f, err
}

// Active says whether the promise still binds at now.
func (f Failsafe) Active(now clock.Time) bool { return f.Leader != "" && now.Before(f.Until) }
