package decide

import "time"

// Silence is what the leader knows about its own PostgreSQL not answering.
type Silence struct {
	// Answering: the last status query got an answer.
	Answering bool
	// SupervisedRunning: pg-supervise reports the server running (not
	// starting, stopping, stopped or fenced), so silence is not a start
	// or a stop in progress.
	SupervisedRunning bool
	// Paused: maintenance mode, nothing is done automatically.
	Paused bool
	// For is how long no status query has been answered.
	For time.Duration
	// Timeout is primary_hang_timeout (0: off).
	Timeout time.Duration
}

// Unresponsive reports whether the leader's PostgreSQL is to be killed as
// hung: it has answered no query for Timeout while pg-supervise runs it,
// outside maintenance mode. A slow server answers now and then and never
// qualifies. It is pure.
func Unresponsive(s Silence) bool {
	return !s.Answering && s.SupervisedRunning && !s.Paused && s.Timeout > 0 && s.For >= s.Timeout
}
