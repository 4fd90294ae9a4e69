package health

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/pg-ha/pg-ha/lib/clock"
	"github.com/pg-ha/pg-ha/lib/state"
)

// FailsafeRequest is the body of POST /failsafe: the leader that lost etcd
// announces itself (Patroni's fields), and TTL (a pg-ha extension) is how
// long, in seconds, it asks this member not to take the leader key. A
// Patroni leader sends no TTL; the member's own ttl is promised then.
type FailsafeRequest struct {
	Name    string  `json:"name"`
	ConnURL string  `json:"conn_url,omitempty"`
	APIURL  string  `json:"api_url,omitempty"`
	TTL     float64 `json:"ttl,omitempty"`
}

// failsafe answers POST /failsafe: unless this node leads (its pg-lockd
// holds the leader key, or its PostgreSQL runs as a primary), it records
// the promise not to take the leader key for the requested ttl from now in
// the runtime directory — pg-lockd reads it before every attempt — and only
// then answers 200 "Accepted". The leader counts a member's promise only
// when the answer came back before its own deadline, so the promise always
// begins before the leader key could have expired.
func (w *Writer) failsafe(body []byte) answer {
	if w.o.RuntimeDir == "" {
		return answer{fasthttp.StatusServiceUnavailable, "failsafe: no runtime directory", false}
	}
	var req FailsafeRequest
	if err := json.Unmarshal(body, &req); err != nil || req.Name == "" {
		return answer{fasthttp.StatusBadRequest, "failsafe: the body must be JSON with the leader's name", false}
	}
	if req.Name == w.name {
		return answer{fasthttp.StatusInternalServerError, "Running as a leader", false}
	}
	ttl := w.o.Cfg.Dynamic().TTL
	if req.TTL > 0 {
		ttl = time.Duration(req.TTL * float64(time.Second))
	}
	if ttl <= 0 || ttl > state.MaxFailsafePromise {
		return answer{fasthttp.StatusBadRequest, fmt.Sprintf("failsafe: ttl %s is out of range", ttl), false}
	}
	now := clock.Now()
	if hb, err := state.ReadLockd(w.o.RuntimeDir); err == nil && hb.Token != 0 && state.Fresh(hb.Updated, now, ttl) {
		return answer{fasthttp.StatusInternalServerError, "Running as a leader", false}
	}
	if sup, err := state.ReadSupervise(w.o.RuntimeDir); err == nil && sup.Role == "primary" && sup.PID != 0 {
		return answer{fasthttp.StatusInternalServerError, "Running as a leader", false}
	}
	// A promise never shortens: an earlier, longer one stays in force.
	until := now.Add(ttl)
	if old, err := state.ReadFailsafe(w.o.RuntimeDir); err == nil && old.Until > until {
		until = old.Until
	} else if err != nil && !errors.Is(err, state.ErrNotExist) {
		return answer{fasthttp.StatusServiceUnavailable, "failsafe: " + oneLine(err.Error()), false}
	}
	f := state.Failsafe{Leader: req.Name, Received: now, Until: until, At: w.o.Now()}
	if err := state.Write(w.o.RuntimeDir, state.FailsafeFile, f); err != nil {
		return answer{fasthttp.StatusServiceUnavailable, "failsafe: " + oneLine(err.Error()), false}
	}
	return answer{fasthttp.StatusOK, "Accepted", false}
}
