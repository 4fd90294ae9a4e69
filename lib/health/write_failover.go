package health

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/pg-ha/pg-ha/lib/clusterctl"
	"github.com/pg-ha/pg-ha/lib/dcs"
)

// FailoverBody is the body of POST /switchover and POST /failover, as
// patronictl sends it: {"leader", "candidate", "scheduled_at"}; "member" is
// the older name of "candidate". null counts as absent.
type FailoverBody struct {
	Leader      string  `json:"leader"`
	Candidate   string  `json:"candidate"`
	Member      string  `json:"member"`
	ScheduledAt *string `json:"scheduled_at"`
}

// readJSONObject decodes a request body that must be a JSON object, as
// Patroni's _read_json_content: without a Content-Length 411 (unless the
// body is optional), an empty object 400 (unless optional), anything that
// is not a JSON object 400. code is 0 when v was filled.
func readJSONObject(body []byte, hasLength, optional bool, v any) (code int, msg string) {
	if !hasLength {
		if optional {
			return 0, ""
		}
		return fasthttp.StatusLengthRequired, "Length Required"
	}
	if optional && len(bytes.TrimSpace(body)) == 0 {
		return 0, ""
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(body, &probe); err != nil || probe == nil {
		return fasthttp.StatusBadRequest, "Bad Request: the body is not a JSON object"
	}
	if len(probe) == 0 && !optional {
		return fasthttp.StatusBadRequest, "Bad Request: the body is an empty JSON object"
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return fasthttp.StatusBadRequest, "Bad Request: " + oneLine(err.Error())
	}
	return 0, ""
}

// scheduleLayouts are the ISO 8601 forms accepted for scheduled_at and
// schedule (patronictl sends Python's isoformat(): 2026-01-02T03:04:05+00:00,
// with microseconds when there are any).
var scheduleLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02T15:04Z07:00",
	"2006-01-02 15:04Z07:00",
}

var scheduleLayoutsNoZone = []string{
	"2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02",
}

// ParseSchedule parses a scheduled time as Patroni's parse_schedule does:
// a time without a time zone is 400, an unparsable one 422, one in the past
// 422. code is 0 when t is good. It is pure.
func ParseSchedule(s, action string, now time.Time) (t time.Time, code int, msg string) {
	s = strings.TrimSpace(s)
	for _, l := range scheduleLayouts {
		if t, err := time.Parse(l, s); err == nil {
			if t.Before(now) {
				return time.Time{}, fasthttp.StatusUnprocessableEntity, "Cannot schedule " + action + " in the past"
			}
			return t, 0, ""
		}
	}
	for _, l := range scheduleLayoutsNoZone {
		if _, err := time.Parse(l, s); err == nil {
			return time.Time{}, fasthttp.StatusBadRequest, "Timezone information is mandatory for the scheduled " + action
		}
	}
	return time.Time{}, fasthttp.StatusUnprocessableEntity,
		"Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. ISO 8601"
}

// FailoverRequest checks a switchover or failover body in Patroni's order
// and turns it into pg-failover's request. action is "switchover" or
// "failover"; paused is the cluster's maintenance mode. A failover with a
// live leader is the switchover Patroni makes of it. code is 0 when req is
// good, else the status and message to answer. It is pure.
func FailoverRequest(action string, b FailoverBody, paused bool, now time.Time) (req clusterctl.Request, code int, msg string) {
	candidate := b.Candidate
	if candidate == "" {
		candidate = b.Member
	}
	switch {
	case action == "failover" && candidate == "":
		return req, fasthttp.StatusBadRequest, "Failover could be performed only to a specific candidate"
	case action == "switchover" && b.Leader == "":
		return req, fasthttp.StatusBadRequest, "Switchover could be performed only from a specific leader"
	}
	req = clusterctl.Request{Candidate: candidate, From: b.Leader}
	if b.ScheduledAt != nil && *b.ScheduledAt != "" {
		switch {
		case b.Leader == "":
			return req, fasthttp.StatusBadRequest, "Scheduled " + action + " is possible only from a specific leader"
		case paused:
			return req, fasthttp.StatusBadRequest, "Can't schedule " + action + " in the paused state"
		}
		at, code, msg := ParseSchedule(*b.ScheduledAt, action, now)
		if code != 0 {
			return req, code, msg
		}
		req.At = &at
	}
	if paused && candidate == "" {
		return req, fasthttp.StatusBadRequest, title(action) + " is possible only to a specific candidate in a paused state"
	}
	if action == "failover" {
		// With a leader MakePlan makes it a switchover (Force), as
		// Patroni's leader honours a failover key naming a candidate;
		// without one it is a failover that respects
		// maximum_lag_on_failover.
		req.Failover = true
	}
	return req, 0, ""
}

// FailoverAnswer maps the outcome of pg-failover's Switchover to Patroni's
// answer: 200 'Successfully switched over to "X"' when done, 202 when
// scheduled, 412 when the request is not possible (no such member, not
// eligible, no leader, leader mismatch, another request pending, the
// candidate leads already), 503 when it failed, timed out or etcd failed.
// newLeader is who leads after a Diverted outcome ("" if unknown): Patroni
// answers 200 'Switched over to "Z" instead of "Y"' then. It is pure.
func FailoverAnswer(action string, r clusterctl.Result, err error, newLeader string) (int, string) {
	past := strings.TrimSuffix(action, "over") + "ed over" // "switched over", "failed over"
	if err == nil {
		switch r.Result {
		case "done":
			return fasthttp.StatusOK, fmt.Sprintf("Successfully %s to %q", past, r.Candidate)
		case "scheduled", "requested":
			return fasthttp.StatusAccepted, title(action) + " scheduled"
		case "noop":
			return fasthttp.StatusPreconditionFailed, title(action) + " is not possible: " + r.Message
		}
		return fasthttp.StatusOK, r.Message
	}
	msg := oneLine(err.Error())
	switch clusterctl.ReasonOf(err) {
	case clusterctl.NoSuchMember, clusterctl.NotEligible, clusterctl.NoLeader, clusterctl.NotFromLeader,
		clusterctl.LeaderAlive, clusterctl.Pending:
		return fasthttp.StatusPreconditionFailed, title(action) + " is not possible: " + msg
	case clusterctl.Usage:
		return fasthttp.StatusBadRequest, msg
	case clusterctl.TimedOut:
		return fasthttp.StatusServiceUnavailable, title(action) + " status unknown: " + msg
	case clusterctl.Refused:
		return fasthttp.StatusServiceUnavailable, title(action) + " failed: " + msg
	case clusterctl.Diverted:
		if newLeader != "" && newLeader != r.Leader && newLeader != r.Candidate {
			return fasthttp.StatusOK, fmt.Sprintf("%s to %q instead of %q", title(past), newLeader, r.Candidate)
		}
		return fasthttp.StatusServiceUnavailable, title(action) + " failed: " + msg
	}
	return fasthttp.StatusServiceUnavailable, "failed to carry out the " + action + ": " + msg
}

func title(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// failover serves POST /switchover and POST /failover: it checks the body,
// writes the failover key through pg-failover's plan (clusterctl) and
// follows the outcome for at most FailoverTimeout, as Patroni polls it.
func (w *Writer) failover(ctx context.Context, action string, body []byte, hasLength bool) answer {
	var b FailoverBody
	if code, msg := readJSONObject(body, hasLength, false, &b); code != 0 {
		return answer{code, msg, false}
	}
	cl, s, err := w.ctl.Read(ctx)
	if err != nil {
		return etcdFailure("cannot read the cluster from etcd", err)
	}
	req, code, msg := FailoverRequest(action, b, s.Paused, w.o.Now())
	if code != 0 {
		return answer{code, msg, false}
	}
	if req.Failover && cl.Leader != nil {
		req.Force = true
	}
	w.o.Log.Info().Str("action", action).Str("leader", b.Leader).Str("candidate", req.Candidate).
		Msg("switchover requested over the REST API")
	r, err := w.ctl.Switchover(ctx, req, clusterctl.SwitchoverOptions{Timeout: w.o.FailoverTimeout, NoWait: req.At != nil})
	newLeader := ""
	if clusterctl.ReasonOf(err) == clusterctl.Diverted {
		if cl, err := w.o.DCS.Get(ctx); err == nil && cl.Leader != nil {
			newLeader = cl.Leader.Name
		}
	}
	code, msg = FailoverAnswer(action, r, err, newLeader)
	return answer{code, msg, false}
}

// cancelSwitchover serves DELETE /switchover: it deletes a scheduled
// switchover (200), answers 404 when none is scheduled, and 409 when the
// key changed meanwhile.
func (w *Writer) cancelSwitchover(ctx context.Context) answer {
	cl, err := w.o.DCS.Get(ctx)
	if err != nil {
		return etcdFailure("cannot read the cluster from etcd", err)
	}
	if cl.Failover == nil || cl.Failover.ScheduledAt == nil {
		return answer{fasthttp.StatusNotFound, "no switchover is scheduled", false}
	}
	// Deleted at the revision read, so a request written meanwhile (one
	// that may not be scheduled) is left alone.
	err = w.o.DCS.DeleteFailoverAt(ctx, cl.FailoverRev)
	switch {
	case errors.Is(err, dcs.ErrConflict):
		return answer{fasthttp.StatusConflict, "the failover key changed meanwhile; nothing was deleted", false}
	case err != nil:
		return etcdFailure("cannot delete the failover key", err)
	}
	return answer{fasthttp.StatusOK, "scheduled switchover deleted", false}
}
