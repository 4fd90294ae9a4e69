package health

import (
	"bytes"
	"compress/gzip"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/valyala/fasthttp"

	"github.com/pg-ha/pg-ha/lib/state"
)

// The /metrics body is Prometheus's text exposition format 0.0.4, written
// here by hand: Patroni's patroni_* metrics under the same names (so
// existing dashboards keep working), pg-ha's own pgha_*, and the Go runtime's
// go_* and the process's process_* that Prometheus's Go client exports by
// default, under its names, help texts and types. Families are sorted by
// name, as that client's registry sorts them.

type metricDef struct {
	name, help string
	counter    bool
}

var metricDefs = []metricDef{
	{"patroni_version", "Version without periods, two digits per component (pg-ha's version).", false},
	{"patroni_postgres_running", "Value is 1 if Postgres is running, 0 otherwise.", false},
	{"patroni_postmaster_start_time", "Epoch seconds since Postgres started.", false},
	{"patroni_master", "Value is 1 if this node is the leader, 0 otherwise.", false},
	{"patroni_primary", "Value is 1 if this node is the leader, 0 otherwise.", false},
	{"patroni_xlog_location", "Current location of the Postgres transaction log, 0 if this node is not the leader.", true},
	{"patroni_standby_leader", "Value is 1 if this node is the standby_leader, 0 otherwise.", false},
	{"patroni_replica", "Value is 1 if this node is a replica, 0 otherwise.", false},
	{"patroni_sync_standby", "Value is 1 if this node is a sync standby replica, 0 otherwise.", false},
	{"patroni_quorum_standby", "Value is 1 if this node is a quorum standby replica, 0 otherwise.", false},
	{"patroni_xlog_received_location", "Current location of the received Postgres transaction log, 0 if this node is not a replica.", true},
	{"patroni_xlog_replayed_location", "Current location of the replayed Postgres transaction log, 0 if this node is not a replica.", true},
	{"patroni_xlog_replayed_timestamp", "Current timestamp of the replayed Postgres transaction log, 0 if null.", false},
	{"patroni_xlog_paused", "Value is 1 if the Postgres xlog is paused, 0 otherwise.", false},
	{"patroni_postgres_server_version", "Version of Postgres (if running), 0 otherwise.", false},
	{"patroni_cluster_unlocked", "Value is 1 if the cluster is unlocked, 0 if locked.", false},
	{"patroni_failsafe_mode_is_active", "Value is 1 if failsafe mode is active, 0 if inactive.", false},
	{"patroni_postgres_timeline", "Postgres timeline of this node (if running), 0 otherwise.", true},
	{"patroni_dcs_last_seen", "Epoch timestamp when DCS was last contacted successfully.", false},
	{"patroni_pending_restart", "Value is 1 if the node needs a restart, 0 otherwise.", false},
	{"patroni_is_paused", "Value is 1 if auto failover is disabled, 0 otherwise.", false},

	{"pgha_primary_check", "Value is 1 if /primary answers 200 now, 0 otherwise.", false},
	{"pgha_replica_check", "Value is 1 if /replica (no filters) answers 200 now, 0 otherwise.", false},
	{"pgha_leader_confirmed", "Value is 1 if the etcd view was confirmed within the staleness bound, 0 otherwise.", false},
	{"pgha_replication_lag_bytes", "Bytes the replayed position is behind the leader's optime in etcd (replicas with a known optime only).", false},
	{"pgha_lease_valid_seconds", "Seconds until pg-lockd's lease validity runs out (negative: ran out), when lockd.json exists.", false},
	{"pgha_lockd_heartbeat_age_seconds", "Age of pg-lockd's heartbeat file, when it exists.", false},
	{"pgha_postgres_observation_age_seconds", "Age of the last successful PostgreSQL status query.", false},
	{"pgha_etcd_observation_age_seconds", "Age of the last successful etcd read.", false},
}

// superviseStates are exported one-hot by pgha_supervise_state.
var superviseStates = []string{state.Starting, state.Running, state.Stopped, state.Crashed, state.Promoting,
	state.Demoting, state.Fenced, state.Rewinding, state.Cloning, state.Stopping, state.RewindFailed, state.Diverged}

const superviseStateHelp = "pg-supervise's state from supervise.json (1 for the current one), when it exists."

// Metric types of the text format.
const (
	typeGauge   = "gauge"
	typeCounter = "counter"
	typeSummary = "summary"
)

// family is one metric family of the exposition.
type family struct {
	name, help, typ string
	samples         []sample
}

// sample is one line of a family: suffix is appended to the family's name
// (a summary's _sum and _count), labels is the rendered label set without
// braces.
type sample struct {
	suffix, labels string
	value          float64
}

// exposition collects the families of one scrape.
type exposition struct {
	fams  []*family
	index map[string]*family
}

// add appends a sample to family name, creating the family on first use.
func (e *exposition) add(name, help, typ, suffix, labels string, v float64) {
	f := e.index[name]
	if f == nil {
		if e.index == nil {
			e.index = map[string]*family{}
		}
		f = &family{name: name, help: help, typ: typ}
		e.index[name] = f
		e.fams = append(e.fams, f)
	}
	f.samples = append(f.samples, sample{suffix, labels, v})
}

// gauge adds an unlabelled gauge.
func (e *exposition) gauge(name, help string, v float64) { e.add(name, help, typeGauge, "", "", v) }

// counter adds an unlabelled counter.
func (e *exposition) counter(name, help string, v float64) { e.add(name, help, typeCounter, "", "", v) }

// write renders the families sorted by name, each one's samples in the
// order they were added, in the text format 0.0.4.
func (e *exposition) write(w *bytes.Buffer) {
	sort.Slice(e.fams, func(i, j int) bool { return e.fams[i].name < e.fams[j].name })
	for _, f := range e.fams {
		w.WriteString("# HELP ")
		w.WriteString(f.name)
		w.WriteByte(' ')
		helpEscaper.WriteString(w, f.help)
		w.WriteString("\n# TYPE ")
		w.WriteString(f.name)
		w.WriteByte(' ')
		w.WriteString(f.typ)
		w.WriteByte('\n')
		for _, s := range f.samples {
			w.WriteString(f.name)
			w.WriteString(s.suffix)
			if s.labels != "" {
				w.WriteByte('{')
				w.WriteString(s.labels)
				w.WriteByte('}')
			}
			w.WriteByte(' ')
			w.Write(appendFloat(w.AvailableBuffer(), s.value))
			w.WriteByte('\n')
		}
	}
}

var (
	helpEscaper  = strings.NewReplacer("\\", `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer("\\", `\\`, "\n", `\n`, "\"", `\"`)
)

// label renders name="value" with the value escaped.
func label(name, value string) string {
	return name + `="` + labelEscaper.Replace(value) + `"`
}

// appendFloat formats v as the Prometheus Go client does.
func appendFloat(b []byte, v float64) []byte {
	switch {
	case v == 1:
		return append(b, '1')
	case v == 0:
		return append(b, '0')
	case v == -1:
		return append(b, "-1"...)
	case math.IsNaN(v):
		return append(b, "NaN"...)
	case math.IsInf(v, +1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

// Response headers of /metrics.
var (
	hdrEncoding = []byte("Content-Encoding")
	hdrGzip     = []byte("gzip")
)

// serveMetrics answers /metrics with the text exposition, gzipped when the
// request's Accept-Encoding prefers gzip to identity. It does no I/O but
// reading /proc/self.
func (s *Service) serveMetrics(ctx *fasthttp.RequestCtx) {
	var e exposition
	s.collect(&e)
	collectRuntime(&e)
	s.collectProcess(&e)
	var buf bytes.Buffer
	e.write(&buf)

	h := &ctx.Response.Header
	h.Add("Vary", "Accept")
	h.Add("Vary", "Accept-Encoding")
	h.SetContentType(metricsContentType(ctx.Request.Header.Peek("Accept")))
	ctx.SetStatusCode(fasthttp.StatusOK)
	if !preferGzip(ctx.Request.Header.Peek("Accept-Encoding")) {
		ctx.Response.SetBody(buf.Bytes())
		return
	}
	var z bytes.Buffer
	gz := gzipPool.Get().(*gzip.Writer)
	gz.Reset(&z)
	gz.Write(buf.Bytes())
	gz.Close()
	gzipPool.Put(gz)
	h.SetCanonical(hdrEncoding, hdrGzip)
	ctx.Response.SetBody(z.Bytes())
}

// metricsContentType is the Content-Type of the text format with the name
// escaping scheme a request's Accept header asks for, as the Prometheus Go
// client negotiates it: the escaping parameter of the clauses up to the
// first one that accepts text/plain, in decreasing quality; underscores
// unless one names another scheme. (All names here are valid under every
// scheme: the body does not change.)
func metricsContentType(accept []byte) string {
	type clause struct {
		typ, escaping string
		q             float64
	}
	var clauses []clause
	for part := range strings.SplitSeq(string(accept), ",") {
		params := strings.Split(part, ";")
		c := clause{typ: strings.ToLower(strings.TrimSpace(params[0])), q: 1}
		if c.typ == "" {
			continue
		}
		for _, p := range params[1:] {
			k, v, _ := strings.Cut(p, "=")
			switch strings.TrimSpace(k) {
			case "q":
				if q, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
					c.q = q
				}
			case "escaping":
				c.escaping = strings.TrimSpace(v)
			}
		}
		clauses = append(clauses, c)
	}
	sort.SliceStable(clauses, func(i, j int) bool { return clauses[i].q > clauses[j].q })
	escaping := "underscores"
	for _, c := range clauses {
		switch c.escaping {
		case "allow-utf-8", "underscores", "dots", "values":
			escaping = c.escaping
		}
		if c.typ == "text/plain" || c.typ == "text/*" || c.typ == "*/*" {
			break
		}
	}
	return "text/plain; version=0.0.4; charset=utf-8; escaping=" + escaping
}

var gzipPool = sync.Pool{New: func() any { return gzip.NewWriter(nil) }}

// preferGzip negotiates the content coding between identity and gzip as the
// Prometheus Go client does: the highest quality wins, identity on a tie
// or when nothing matches.
func preferGzip(header []byte) bool {
	best, bestQ := "identity", -1.0
	for _, offer := range []string{"identity", "gzip"} {
		for part := range strings.SplitSeq(string(header), ",") {
			value, params, _ := strings.Cut(part, ";")
			value = strings.TrimSpace(value)
			if value == "" {
				continue
			}
			q := 1.0
			if params = strings.TrimSpace(params); params != "" {
				qs, ok := strings.CutPrefix(params, "q=")
				if !ok {
					continue
				}
				v, err := strconv.ParseFloat(strings.TrimSpace(qs), 64)
				if err != nil || v < 0 || v > 1 {
					continue
				}
				q = v
			}
			if q > bestQ && (value == "*" || strings.EqualFold(value, offer)) {
				best, bestQ = offer, q
			}
		}
	}
	return best == "gzip" && bestQ > 0
}

// collect adds the patroni_* and pgha_* families of the latest snapshot.
func (s *Service) collect(e *exposition) {
	v := s.view.Load()
	snap := v.snap
	now := s.clock.Now()
	f := Evaluate(snap, s.bounds, now)
	st := &snap.PG.Status
	scope := label("scope", s.o.Scope)
	emit := func(name string, val float64) {
		for _, d := range metricDefs {
			if d.name == name {
				typ := typeGauge
				if d.counter {
					typ = typeCounter
				}
				e.add(name, d.help, typ, "", scope, val)
				return
			}
		}
		panic("health: undefined metric " + name)
	}
	b := func(x bool) float64 {
		if x {
			return 1
		}
		return 0
	}
	emit("patroni_version", paddedVersion(snap.Version))
	emit("patroni_postgres_running", b(f.Running))
	var start, location, received, replayed, version, timeline float64
	if f.Running {
		start = float64(st.PostmasterStart.UnixNano()) / 1e9
		version, timeline = float64(st.ServerVersion), float64(st.Timeline)
		if st.InRecovery {
			received, replayed = float64(f.Received), float64(f.Replayed)
		} else {
			location = float64(st.WriteLSN)
		}
	}
	emit("patroni_postmaster_start_time", start)
	emit("patroni_master", b(f.Role == "master"))
	emit("patroni_primary", b(f.Role == "master"))
	emit("patroni_xlog_location", location)
	emit("patroni_standby_leader", b(f.Role == "standby_leader"))
	emit("patroni_replica", b(f.Role == "replica"))
	emit("patroni_sync_standby", b(f.SyncStandby))
	emit("patroni_quorum_standby", b(f.QuorumStandby))
	emit("patroni_xlog_received_location", received)
	emit("patroni_xlog_replayed_location", replayed)
	emit("patroni_xlog_replayed_timestamp", 0)
	emit("patroni_xlog_paused", b(f.Running && st.InRecovery && st.ReplayPaused))
	emit("patroni_postgres_server_version", version)
	emit("patroni_cluster_unlocked", b(!snap.Standalone && (snap.DCS.Cluster == nil || snap.DCS.Cluster.Leader == nil)))
	emit("patroni_failsafe_mode_is_active", b(f.FailsafeActive))
	emit("patroni_postgres_timeline", timeline)
	var seen float64
	if !snap.DCS.LastSeen.IsZero() {
		seen = float64(snap.DCS.LastSeen.Unix())
	}
	emit("patroni_dcs_last_seen", seen)
	emit("patroni_pending_restart", b(f.Running && st.PendingRestart))
	emit("patroni_is_paused", b(f.Paused))

	emit("pgha_primary_check", b(f.Primary))
	emit("pgha_replica_check", b(f.Replica))
	emit("pgha_leader_confirmed", b(f.LeaderConfirmed))
	if f.Running && f.InRecovery && f.LeaderOptime != 0 {
		emit("pgha_replication_lag_bytes", float64(max(f.LeaderOptime-f.Replayed, 0)))
	}
	if l := snap.Lockd; l != nil {
		emit("pgha_lease_valid_seconds", l.ValidUntil.Sub(now).Seconds())
		emit("pgha_lockd_heartbeat_age_seconds", now.Sub(l.Updated).Seconds())
	}
	if snap.PG.OK != 0 {
		emit("pgha_postgres_observation_age_seconds", now.Sub(snap.PG.OK).Seconds())
	}
	if snap.DCS.Confirmed != 0 {
		emit("pgha_etcd_observation_age_seconds", now.Sub(snap.DCS.Confirmed).Seconds())
	}
	if sup := snap.Supervise; sup != nil {
		// Sorted by label value, as the Go client's registry sorts them.
		names := slices.Sorted(slices.Values(superviseStates))
		for _, name := range names {
			e.add("pgha_supervise_state", superviseStateHelp, typeGauge, "", scope+","+label("state", name), b(sup.State == name))
		}
	}
}

// paddedVersion turns "1.2.3-dev" into 010203, as Patroni reports its own.
func paddedVersion(v string) float64 {
	v, _, _ = strings.Cut(v, "-")
	var s strings.Builder
	for _, part := range strings.Split(v, ".") {
		n, err := strconv.Atoi(part)
		if err != nil || n < 0 || n > 99 {
			return 0
		}
		if n < 10 {
			s.WriteByte('0')
		}
		s.WriteString(strconv.Itoa(n))
	}
	f, _ := strconv.ParseFloat(s.String(), 64)
	return f
}
