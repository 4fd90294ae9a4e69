package health

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/pg-ha/pg-ha/lib/clusterctl"
	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/dcs"
	"github.com/pg-ha/pg-ha/lib/pg"
)

// pgWriteTimeout bounds the write endpoints' own PostgreSQL sessions.
const pgWriteTimeout = 5 * time.Second

// RestartRequest is a checked POST /restart body: the conditions under
// which the restart is carried out, and how long to wait for it.
type RestartRequest struct {
	// Role is "primary" or "replica" ("" for any): restart only in it.
	Role string
	// PostgresVersion, as a number like 150004 (0 for any): restart only if
	// the running server is older.
	PostgresVersion int
	// RestartPending: restart only if a restart is pending.
	RestartPending bool
	// Timeout bounds the wait (0: the Writer's default).
	Timeout time.Duration
	// Schedule is when to restart; zero: at once.
	Schedule time.Time
}

var pgVersionRE = regexp.MustCompile(`^(\d+)(?:\.(\d+))?(?:\.(\d+))?$`)

// postgresVersionNum turns "15.4" or "9.6.24" into server_version_num
// (150004, 90624), as Patroni's postgres_version_to_int.
func postgresVersionNum(s string) (int, bool) {
	m := pgVersionRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil || m[2] == "" {
		return 0, false
	}
	part := func(i int) int { n, _ := strconv.Atoi(m[i]); return n }
	major := part(1)
	if major >= 10 {
		if m[3] != "" {
			return 0, false
		}
		return major*10000 + part(2), true
	}
	if m[3] == "" {
		return 0, false
	}
	return major*10000 + part(2)*100 + part(3), true
}

// ParseRestartBody checks a POST /restart body as Patroni does: the keys
// schedule (an ISO 8601 time with a zone, not in the past: ParseSchedule),
// role (primary, master, replica), postgres_version, restart_pending and
// timeout (a positive number of seconds); any other key is 400. schedule is
// 500 in a paused cluster, as in Patroni. code is 0 when r is good. It is
// pure.
func ParseRestartBody(body map[string]any, paused bool, now time.Time) (r RestartRequest, code int, msg string) {
	if _, ok := body["schedule"]; ok && paused {
		return r, fasthttp.StatusInternalServerError, "Can't schedule restart in the paused state"
	}
	for k, v := range body {
		switch k {
		case "schedule":
			s, _ := v.(string)
			t, code, msg := ParseSchedule(s, "restart", now)
			if code != 0 {
				return r, code, msg
			}
			r.Schedule = t
		case "role":
			switch s, _ := v.(string); s {
			case "master", "primary":
				r.Role = "primary"
			case "replica":
				r.Role = "replica"
			default:
				return r, fasthttp.StatusBadRequest, "PostgreSQL role should be either primary or replica"
			}
		case "postgres_version":
			s, _ := v.(string)
			n, ok := postgresVersionNum(s)
			if !ok {
				return r, fasthttp.StatusBadRequest, fmt.Sprintf("%v is not a valid PostgreSQL version", v)
			}
			r.PostgresVersion = n
		case "timeout":
			d, ok := parseSeconds(v)
			if !ok || d <= 0 {
				return r, fasthttp.StatusBadRequest, "Timeout should be a positive number of seconds"
			}
			r.Timeout = d
		case "restart_pending":
			r.RestartPending = truthy(v)
		default:
			return r, fasthttp.StatusBadRequest, "Unknown filter for the scheduled restart: " + k
		}
	}
	return r, 0, ""
}

// parseSeconds reads a timeout: a number of seconds, or a string with an
// optional unit ("30", "30s", "2min", "1h"), as Patroni's parse_int with
// the base unit s.
func parseSeconds(v any) (time.Duration, bool) {
	switch x := v.(type) {
	case json.Number:
		f, err := x.Float64()
		return time.Duration(f * float64(time.Second)), err == nil
	case float64:
		return time.Duration(x * float64(time.Second)), true
	case string:
		s := strings.TrimSpace(x)
		units := []struct {
			suffix string
			d      time.Duration
		}{{"ms", time.Millisecond}, {"min", time.Minute}, {"s", time.Second}, {"h", time.Hour}, {"d", 24 * time.Hour}}
		unit := time.Second
		for _, u := range units {
			if strings.HasSuffix(s, u.suffix) {
				s, unit = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.d
				break
			}
		}
		n, err := strconv.ParseFloat(s, 64)
		return time.Duration(n * float64(unit)), err == nil
	}
	return 0, false
}

func truthy(v any) bool {
	if n, ok := v.(json.Number); ok {
		v = n.String()
	}
	b, ok := config.ParseBool(v)
	return ok && b
}

// RestartConditionsMet says whether this member, as its member key and
// its PostgreSQL version describe it, satisfies r's conditions. It is pure.
func RestartConditionsMet(r RestartRequest, m *dcs.Member, serverVersionNum int) bool {
	if r.Role != "" {
		primary := clusterctl.IsPrimary(m)
		if (r.Role == "primary") != primary {
			return false
		}
	}
	if r.PostgresVersion != 0 && (serverVersionNum == 0 || serverVersionNum >= r.PostgresVersion) {
		return false
	}
	if r.RestartPending && (m == nil || !m.Data.PendingRestart) {
		return false
	}
	return true
}

// restart serves POST /restart: this member's pg-lockd restarts
// PostgreSQL in place (the restart request in etcd, as pg-failover restart
// writes it); the answer waits until PostgreSQL runs again: 200 "restarted
// successfully", else 503 with the reason.
func (w *Writer) restart(ctx context.Context, raw []byte) answer {
	body := map[string]any{}
	if code, msg := readJSONObject(raw, len(raw) > 0, true, &body); code != 0 {
		return answer{code, msg, false}
	}
	cl, st, err := w.ctl.Read(ctx)
	if err != nil {
		return etcdFailure("cannot read the cluster from etcd", err)
	}
	r, code, msg := ParseRestartBody(body, st.Paused, w.o.Now())
	if code != 0 {
		return answer{code, msg, false}
	}
	if !r.Schedule.IsZero() {
		if !w.scheduleRestart(r) {
			return answer{fasthttp.StatusConflict, "Another restart is already scheduled", false}
		}
		return answer{fasthttp.StatusAccepted, "Restart scheduled", false}
	}
	if msg := w.restartNow(ctx, r, cl); msg != "" {
		return answer{fasthttp.StatusServiceUnavailable, msg, false}
	}
	return answer{fasthttp.StatusOK, "restarted successfully", false}
}

// restartNow restarts this member's PostgreSQL if r's conditions hold for
// it in cl, and waits until it runs again; it returns why not ("" when
// restarted).
func (w *Writer) restartNow(ctx context.Context, r RestartRequest, cl *dcs.Cluster) string {
	version := 0
	if r.PostgresVersion != 0 {
		var err error
		if version, err = w.serverVersion(ctx); err != nil {
			return "cannot read the PostgreSQL version: " + oneLine(err.Error())
		}
	}
	if !RestartConditionsMet(r, cl.Member(w.name), version) {
		return "restart conditions are not satisfied"
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = w.o.RestartTimeout
	}
	if err := w.ctl.Request(ctx, w.name, dcs.ActionRestart, timeout); err != nil {
		return "restart failed: " + oneLine(err.Error())
	}
	return ""
}

// scheduledRestart is a restart POST /restart asked for later.
type scheduledRestart struct {
	req   RestartRequest
	timer *time.Timer
}

// scheduleRestart arms r to run at r.Schedule, unless a restart is
// scheduled already (false). Like Patroni, pg-healthd keeps the schedule in
// memory: it is gone if pg-healthd restarts before the time comes.
func (w *Writer) scheduleRestart(r RestartRequest) bool {
	w.schedMu.Lock()
	defer w.schedMu.Unlock()
	if w.sched != nil {
		return false
	}
	s := &scheduledRestart{req: r}
	s.timer = time.AfterFunc(max(r.Schedule.Sub(w.o.Now()), 0), func() { w.runScheduled(s) })
	w.sched = s
	w.o.Log.Info().Time("schedule", r.Schedule).Str("role", r.Role).Bool("restart_pending", r.RestartPending).
		Int("postgres_version", r.PostgresVersion).Msg("restart scheduled")
	return true
}

// ScheduledRestart returns when the scheduled restart is due, and whether
// one is scheduled.
func (w *Writer) ScheduledRestart() (time.Time, bool) {
	w.schedMu.Lock()
	defer w.schedMu.Unlock()
	if w.sched == nil {
		return time.Time{}, false
	}
	return w.sched.req.Schedule, true
}

// cancelRestart serves DELETE /restart: the scheduled restart, if any, is
// dropped (200), else 404, with Patroni's messages.
func (w *Writer) cancelRestart() answer {
	w.schedMu.Lock()
	defer w.schedMu.Unlock()
	if w.sched == nil {
		return answer{fasthttp.StatusNotFound, "no restarts are scheduled", false}
	}
	w.sched.timer.Stop()
	w.o.Log.Info().Time("schedule", w.sched.req.Schedule).Msg("scheduled restart deleted")
	w.sched = nil
	return answer{fasthttp.StatusOK, "scheduled restart deleted", false}
}

// runScheduled carries out s when its time has come, unless it was
// cancelled meanwhile. The conditions (role, pending restart, version) are
// checked now, not when it was scheduled, as Patroni does; in maintenance
// mode it is dropped. It blocks until the restart is done or its timeout
// passes, on the timer's goroutine.
func (w *Writer) runScheduled(s *scheduledRestart) {
	w.schedMu.Lock()
	if w.sched != s {
		w.schedMu.Unlock()
		return
	}
	w.sched = nil
	w.schedMu.Unlock()
	timeout := s.req.Timeout
	if timeout <= 0 {
		timeout = w.o.RestartTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout+pgWriteTimeout)
	defer cancel()
	log := w.o.Log.With().Time("schedule", s.req.Schedule).Logger()
	cl, st, err := w.ctl.Read(ctx)
	switch {
	case err != nil:
		log.Error().Err(err).Msg("scheduled restart not carried out: cannot read the cluster from etcd")
		return
	case st.Paused:
		log.Warn().Msg("scheduled restart dropped: the cluster is in maintenance mode")
		return
	}
	if msg := w.restartNow(ctx, s.req, cl); msg != "" {
		log.Warn().Str("reason", msg).Msg("scheduled restart not carried out")
		return
	}
	log.Info().Msg("scheduled restart done")
}

// reinit serves POST /reinitialize: this member's pg-lockd rebuilds it
// from the leader (the reinit request in etcd). Like Patroni it answers
// once the rebuild is started: 200 "reinitialize started", 503 with the
// reason otherwise (the leader cannot be rebuilt; a request is pending).
func (w *Writer) reinit(ctx context.Context, raw []byte) answer {
	body := map[string]any{}
	if code, msg := readJSONObject(raw, len(raw) > 0, true, &body); code != 0 {
		return answer{code, msg, false}
	}
	err := w.ctl.Request(ctx, w.name, dcs.ActionReinit, 0)
	switch clusterctl.ReasonOf(err) {
	case clusterctl.Unknown:
		if err != nil {
			return etcdFailure("cannot write the reinitialize request", err)
		}
		return answer{fasthttp.StatusOK, "reinitialize started", false}
	case clusterctl.NotEligible:
		return answer{fasthttp.StatusServiceUnavailable, "I am the leader, can not reinitialize", false}
	case clusterctl.Pending:
		// patronictl reinit recognises this ending.
		return answer{fasthttp.StatusServiceUnavailable, oneLine(err.Error()) + ": reinitialize already in progress", false}
	}
	return answer{fasthttp.StatusServiceUnavailable, oneLine(err.Error()), false}
}

// reload serves POST /reload: PostgreSQL re-reads its configuration files
// (pg_reload_conf). pg-ha's daemons read the YAML at start only. It answers
// 202 "reload scheduled", as Patroni does; 503 when PostgreSQL does not
// answer.
func (w *Writer) reload(ctx context.Context) answer {
	ctx, cancel := context.WithTimeout(ctx, pgWriteTimeout)
	defer cancel()
	conn, err := pg.Connect(ctx, w.o.PG)
	if err != nil {
		return answer{fasthttp.StatusServiceUnavailable, "reload failed: " + oneLine(err.Error()), false}
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "SELECT pg_catalog.pg_reload_conf()"); err != nil {
		return answer{fasthttp.StatusServiceUnavailable, "reload failed: " + oneLine(err.Error()), false}
	}
	return answer{fasthttp.StatusAccepted, "reload scheduled", false}
}

// serverVersion is the local PostgreSQL's server_version_num.
func (w *Writer) serverVersion(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, pgWriteTimeout)
	defer cancel()
	conn, err := pg.Connect(ctx, w.o.PG)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	var n int
	err = conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&n)
	return n, err
}
