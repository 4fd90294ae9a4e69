package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Defaults of the dynamic settings. They are shorter than Patroni's (30/10/10)
// because pg-supervise fences a primary whose lease validity ran out, so a
// short ttl cannot leave two writable primaries; see the README.
const (
	DefaultTTL                  = 8 * time.Second
	DefaultLoopWait             = 1 * time.Second
	DefaultRetryTimeout         = 3 * time.Second
	DefaultMaximumLagOnFailover = 1 << 20
	DefaultPrimaryStartTimeout  = 300 * time.Second
	// DefaultPrimaryHangTimeout (primary_hang_timeout, pg-ha only): how
	// long a leader's PostgreSQL may answer no query before it is killed
	// and the key handed on. A saturated CPU or a checkpoint's I/O burst
	// slows queries down but still lets one through within seconds; 30 s
	// of total silence means the server's processes do not run.
	DefaultPrimaryHangTimeout = 30 * time.Second
	// DefaultMemberSlotsTTL is Patroni 4's member_slots_ttl: a member's
	// physical slot outlives its member key by this long, so that a node
	// that is only restarting or being rebuilt keeps its WAL.
	DefaultMemberSlotsTTL = 30 * time.Minute

	// FenceMargin is subtracted from the lease validity before it is handed
	// to pg-supervise: the time a fence (SIGKILL of the postmaster's process
	// group and reaping it) may take, with room to spare.
	FenceMargin = 1 * time.Second

	// MinTTL is the shortest lease etcd grants with its default election
	// settings.
	MinTTL = 2 * time.Second
)

// Dynamic is the resolved cluster-wide configuration: what the config key in
// etcd holds, with defaults filled in.
type Dynamic struct {
	TTL                  time.Duration
	LoopWait             time.Duration
	RetryTimeout         time.Duration
	MaximumLagOnFailover int64
	PrimaryStartTimeout  time.Duration
	PrimaryHangTimeout   time.Duration // 0: off
	CheckTimeline        bool
	// SyncMode is synchronous_mode (off, on, quorum); SyncStrict
	// synchronous_mode_strict; SyncNodeCount synchronous_node_count (at
	// least 1); MaxLagOnSyncNode maximum_lag_on_syncnode in bytes (0 or
	// less: no limit).
	SyncMode         SyncMode
	SyncStrict       bool
	SyncNodeCount    int
	MaxLagOnSyncNode int64
	FailsafeMode     bool
	Pause            bool
	UsePgRewind      bool
	UseSlots         bool
	// StandbyCluster is standby_cluster; nil: the cluster runs its own
	// primary. Only the config key's says so once the key exists, so that
	// removing it there promotes the standby leader.
	StandbyCluster *StandbyCluster
	// PermanentSlots are the physical slots of slots: (permanent slots),
	// kept on the leader and, advanced, on every member that may lead.
	PermanentSlots []string
	// LogicalSlots are the logical slots of slots:, kept on the leader
	// and, copied and advanced, on every member that may lead.
	LogicalSlots []LogicalSlot
	// MaxTimelinesHistory (max_timelines_history) is how many entries the
	// history key keeps, the newest; 0 keeps every one.
	MaxTimelinesHistory int
	// PrimaryStopTimeout (primary_stop_timeout) is how long a primary's
	// fast shutdown may take before it is escalated; 0: pg-ha's 30 s.
	PrimaryStopTimeout time.Duration
	// IgnoreSlots is ignore_slots: slots pg-ha must never drop (see
	// SlotIgnored).
	IgnoreSlots []map[string]any
	// MemberSlotsTTL (member_slots_ttl) is how long the leader keeps the
	// physical slot of a member whose key is gone; 0 drops it at once.
	MemberSlotsTTL time.Duration
	// RemoveDataOnRewindFail (remove_data_directory_on_rewind_failure) lets
	// pg-supervise re-create a replica whose pg_rewind failed;
	// RemoveDataOnDiverged (remove_data_directory_on_diverged_timelines) one
	// whose timeline diverged and that pg_rewind may not or cannot rewind.
	// Both off: such a replica stays down until an operator rebuilds it.
	RemoveDataOnRewindFail bool
	RemoveDataOnDiverged   bool
	Parameters             map[string]string
	PgHBA                  []string
	// PgIdent are pg_ident.conf lines; none: pg-ha keeps only its own.
	PgIdent []string
	// Problems are the fields of the config key that were left out because
	// their value did not fit, one line each (see ParseDCSJSON).
	Problems []string
	// Unimplemented are the config key's fields pg-ha accepts but does not
	// act on yet, one line each naming what it does instead.
	Unimplemented []string
}

// Dynamic resolves the dynamic settings from defaults, bootstrap.dcs and
// the top-level keys of the local file, in that order.
func (c *Config) Dynamic() Dynamic {
	d := Dynamic{
		TTL: DefaultTTL, LoopWait: DefaultLoopWait, RetryTimeout: DefaultRetryTimeout,
		MaximumLagOnFailover: DefaultMaximumLagOnFailover, PrimaryStartTimeout: DefaultPrimaryStartTimeout,
		PrimaryHangTimeout: DefaultPrimaryHangTimeout,
		SyncMode:           SyncOff, SyncNodeCount: 1, MaxLagOnSyncNode: -1,
		UseSlots: true, MemberSlotsTTL: DefaultMemberSlotsTTL, Parameters: map[string]string{},
	}
	d.apply(&c.Bootstrap.DCS)
	d.apply(&DCS{DCSCore: c.DCSCore})
	d.localPostgres(&c.Postgres)
	for k, v := range c.Postgres.Parameters.Strings() {
		d.Parameters[k] = v
	}
	if len(c.Postgres.PgHBA) > 0 {
		d.PgHBA = c.Postgres.PgHBA
	} else if len(d.PgHBA) == 0 {
		d.PgHBA = c.Bootstrap.PgHBA
	}
	if len(c.Postgres.PgIdent) > 0 {
		d.PgIdent = c.Postgres.PgIdent
	}
	return d
}

func (d *Dynamic) apply(s *DCS) {
	if s.TTL != nil {
		d.TTL = s.TTL.D()
	}
	if s.LoopWait != nil {
		d.LoopWait = s.LoopWait.D()
	}
	if s.RetryTimeout != nil {
		d.RetryTimeout = s.RetryTimeout.D()
	}
	if s.MaximumLagOnFailover != nil {
		d.MaximumLagOnFailover = *s.MaximumLagOnFailover
	}
	if s.MasterStartTimeout != nil {
		d.PrimaryStartTimeout = s.MasterStartTimeout.D()
	}
	if s.PrimaryStartTimeout != nil {
		d.PrimaryStartTimeout = s.PrimaryStartTimeout.D()
	}
	if s.PrimaryHangTimeout != nil {
		d.PrimaryHangTimeout = s.PrimaryHangTimeout.D()
	}
	if s.CheckTimeline != nil {
		d.CheckTimeline = *s.CheckTimeline
	}
	if s.SynchronousMode != nil {
		d.SyncMode = *s.SynchronousMode
	}
	if s.SynchronousModeStrict != nil {
		d.SyncStrict = *s.SynchronousModeStrict
	}
	if s.SynchronousNodeCount != nil && *s.SynchronousNodeCount >= 1 {
		d.SyncNodeCount = *s.SynchronousNodeCount
	}
	if s.MaximumLagOnSyncnode != nil {
		d.MaxLagOnSyncNode = *s.MaximumLagOnSyncnode
	}
	if s.FailsafeMode != nil {
		d.FailsafeMode = *s.FailsafeMode
	}
	if s.Pause != nil {
		d.Pause = *s.Pause
	}
	if s.MemberSlotsTTL != nil {
		d.MemberSlotsTTL = s.MemberSlotsTTL.D()
	}
	if s.Slots != nil {
		d.PermanentSlots, d.LogicalSlots, _ = PermanentSlots(s.Slots)
	}
	if s.MaxTimelinesHistory != nil && *s.MaxTimelinesHistory >= 0 {
		d.MaxTimelinesHistory = *s.MaxTimelinesHistory
	}
	if s.MasterStopTimeout != nil {
		d.PrimaryStopTimeout = s.MasterStopTimeout.D()
	}
	if s.PrimaryStopTimeout != nil {
		d.PrimaryStopTimeout = s.PrimaryStopTimeout.D()
	}
	if s.IgnoreSlots != nil {
		d.IgnoreSlots = s.IgnoreSlots
	}
	if s.StandbyCluster != nil {
		sc, err := ParseStandbyCluster(s.StandbyCluster)
		if err != nil {
			// Validate refuses it in a YAML; in the config key it is a
			// problem, and the cluster stays what it was told last.
			d.Problems = append(d.Problems, err.Error()+"; ignored")
		} else {
			d.StandbyCluster = sc
		}
	}
	if p := s.Postgres; p != nil {
		if p.UsePgRewind != nil {
			d.UsePgRewind = *p.UsePgRewind
		}
		if p.UseSlots != nil {
			d.UseSlots = *p.UseSlots
		}
		if p.RemoveDataOnRewindFail != nil {
			d.RemoveDataOnRewindFail = *p.RemoveDataOnRewindFail
		}
		if p.RemoveDataOnDiverged != nil {
			d.RemoveDataOnDiverged = *p.RemoveDataOnDiverged
		}
		for k, v := range p.Parameters.Strings() {
			d.Parameters[k] = v
		}
		if len(p.PgHBA) > 0 {
			d.PgHBA = p.PgHBA
		}
		if len(p.PgIdent) > 0 {
			d.PgIdent = p.PgIdent
		}
	}
}

// localPostgres applies the local postgresql section's keys that win over
// the dynamic settings, as in Patroni: use_pg_rewind and the two
// remove_data_directory_on_* keys, when set.
func (d *Dynamic) localPostgres(p *Postgres) {
	if p.UsePgRewind != nil {
		d.UsePgRewind = *p.UsePgRewind
	}
	if p.RemoveDataOnRewindFail != nil {
		d.RemoveDataOnRewindFail = *p.RemoveDataOnRewindFail
	}
	if p.RemoveDataOnDiverged != nil {
		d.RemoveDataOnDiverged = *p.RemoveDataOnDiverged
	}
}

// WithJSON overlays the config key's JSON on d. Local postgresql parameters,
// use_pg_rewind, remove_data_directory_on_*, pg_hba and pg_ident given in local keep precedence, as in
// Patroni. A field of the wrong type
// (written by another tool or a newer Patroni) is left out and described in
// the result's Problems; every other field still applies. The error is
// only for a value that is not a JSON object at all.
func (d Dynamic) WithJSON(raw []byte, local *Config) (Dynamic, error) {
	s, problems, err := ParseDCSJSON(raw)
	if err != nil {
		return d, err
	}
	out := d
	out.Parameters = map[string]string{}
	for k, v := range d.Parameters {
		out.Parameters[k] = v
	}
	out.Problems = append([]string(nil), problems...)
	out.Unimplemented = s.unimplemented("config key: ")
	if s.StandbyCluster == nil {
		out.StandbyCluster = nil
	}
	out.apply(&s)
	if local != nil {
		for k, v := range local.Postgres.Parameters.Strings() {
			out.Parameters[k] = v
		}
		out.localPostgres(&local.Postgres)
		// As in Patroni, the local postgresql section wins for the
		// authentication files too.
		if len(local.Postgres.PgHBA) > 0 {
			out.PgHBA = local.Postgres.PgHBA
		}
		if len(local.Postgres.PgIdent) > 0 {
			out.PgIdent = local.Postgres.PgIdent
		}
	}
	return out, nil
}

// Warnings are the lines to log about d: each of Problems and of
// Unimplemented.
func (d Dynamic) Warnings() []string {
	return append(append([]string(nil), d.Problems...), d.Unimplemented...)
}

// Synchronous reports whether synchronous replication is asked for.
func (d Dynamic) Synchronous() bool { return d.SyncMode == SyncOn || d.SyncMode == SyncQuorum }

// ParseDCSJSON reads the config key's JSON field by field, as Patroni
// tolerates it: booleans any way ParseBool accepts, integers as numbers or
// digit strings, durations as numbers of seconds or duration strings, and
// synchronous_mode also as "quorum". A field whose value does not fit is
// left unset and described in problems (one line each, naming the field,
// the value and what was expected); unknown fields are ignored. err is set
// only when raw is not a JSON object.
func ParseDCSJSON(raw []byte) (s DCS, problems []string, err error) {
	if err := decodeFields(raw, reflect.ValueOf(&s).Elem(), "", &problems); err != nil {
		return DCS{}, nil, fmt.Errorf("parse dynamic config: %w", err)
	}
	return s, problems, nil
}

// decodeFields decodes the JSON object raw into the struct dst field by
// field (by json tag, through embedded structs).
func decodeFields(raw []byte, dst reflect.Value, path string, problems *[]string) error {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return err
	}
	if obj == nil {
		return errors.New("not a JSON object")
	}
	fields := map[string][]int{}
	jsonFields(dst.Type(), nil, fields)
	names := make([]string, 0, len(obj))
	for k := range obj {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, name := range names {
		idx, ok := fields[name]
		v := obj[name]
		if !ok || string(v) == "null" {
			continue
		}
		key := joinPath(path, name)
		f := dst.FieldByIndex(idx)
		if f.Kind() == reflect.Pointer && f.Type().Elem().Kind() == reflect.Struct {
			nv := reflect.New(f.Type().Elem())
			if err := decodeFields(v, nv.Elem(), key, problems); err != nil {
				*problems = append(*problems, fmt.Sprintf("config key: %s: %s is not an object; ignored", key, short(v)))
				continue
			}
			f.Set(nv)
			continue
		}
		nv := reflect.New(f.Type())
		if want := decodeValue(v, nv.Interface()); want != "" {
			*problems = append(*problems, fmt.Sprintf("config key: %s: %s is not %s; ignored", key, short(v), want))
			continue
		}
		f.Set(nv.Elem())
	}
	return nil
}

// decodeValue decodes v into ptr and returns "" or what was expected.
func decodeValue(v json.RawMessage, ptr any) string {
	var x any
	d := json.NewDecoder(bytes.NewReader(v))
	d.UseNumber()
	if err := d.Decode(&x); err != nil {
		return "valid JSON"
	}
	switch p := ptr.(type) {
	case **bool:
		b, ok := ParseBool(jsonScalar(x))
		if !ok {
			return "a boolean (true/false, on/off, yes/no, 1/0)"
		}
		*p = &b
	case **int:
		n, ok := jsonInteger(x)
		if !ok || n != int64(int(n)) {
			return "an integer"
		}
		i := int(n)
		*p = &i
	case **int64:
		n, ok := jsonInteger(x)
		if !ok {
			return "an integer"
		}
		*p = &n
	case **Seconds:
		var sec Seconds
		if err := sec.UnmarshalJSON(v); err != nil {
			return "a non-negative number of seconds"
		}
		*p = &sec
	case **SyncMode:
		m, ok := ParseSyncMode(jsonScalar(x))
		if !ok {
			return "a synchronous mode (false, true or quorum)"
		}
		*p = &m
	default:
		if err := json.Unmarshal(v, ptr); err != nil {
			switch reflect.TypeOf(ptr).Elem().Kind() {
			case reflect.Slice:
				return "a list"
			case reflect.Map:
				return "an object"
			}
			return "of the expected type"
		}
	}
	return ""
}

// jsonScalar turns a json.Number into an int64 or float64 for ParseBool.
func jsonScalar(x any) any {
	if n, ok := x.(json.Number); ok {
		if i, err := n.Int64(); err == nil {
			return i
		}
		if f, err := n.Float64(); err == nil {
			return f
		}
	}
	return x
}

// jsonInteger reads a JSON number without a fraction (1, 1.0) or a string
// of digits.
func jsonInteger(x any) (int64, bool) {
	var s string
	switch v := x.(type) {
	case json.Number:
		s = v.String()
	case string:
		s = strings.TrimSpace(v)
	default:
		return 0, false
	}
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return i, true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<62 {
		return 0, false
	}
	return int64(f), true
}

// jsonFields maps each json field name of t to its index path.
func jsonFields(t reflect.Type, prefix []int, out map[string][]int) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		idx := append(append([]int(nil), prefix...), i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Anonymous && name == "" {
			jsonFields(f.Type, idx, out)
			continue
		}
		if name == "" || name == "-" {
			continue
		}
		out[name] = idx
	}
}

// short renders a JSON value for a log line, cut at 60 bytes.
func short(v json.RawMessage) string {
	s := string(v)
	if len(s) > 60 {
		s = s[:60] + "…"
	}
	return s
}

// CheckBudget reports whether the timing settings leave room to renew the
// lease and to fence before the lease can expire on the server.
func (d Dynamic) CheckBudget() error {
	if d.TTL < MinTTL {
		return fmt.Errorf("ttl: %s is shorter than etcd's minimum lease of %s; set ttl to at least %d", d.TTL, MinTTL, int(MinTTL/time.Second))
	}
	if d.LoopWait <= 0 {
		return fmt.Errorf("loop_wait: must be positive; set loop_wait to 1 or more")
	}
	if d.RetryTimeout <= 0 {
		return fmt.Errorf("retry_timeout: must be positive; set retry_timeout to 1 or more")
	}
	if need := d.LoopWait + d.RetryTimeout + FenceMargin; need > d.TTL {
		return fmt.Errorf("ttl: loop_wait (%s) + retry_timeout (%s) + fence margin (%s) = %s exceeds ttl (%s), so a healthy primary would be fenced after one slow etcd request; raise ttl to at least %s or lower loop_wait or retry_timeout",
			d.LoopWait, d.RetryTimeout, FenceMargin, need, d.TTL, secondsCeil(need))
	}
	return nil
}

// MinPrimaryHangTimeout is the shortest primary_hang_timeout accepted:
// shorter, one slow status query could get a busy primary killed.
const MinPrimaryHangTimeout = 5 * time.Second

// CheckHangTimeout reports a primary_hang_timeout that is neither 0 (off)
// nor at least MinPrimaryHangTimeout.
func (d Dynamic) CheckHangTimeout() error {
	if d.PrimaryHangTimeout != 0 && d.PrimaryHangTimeout < MinPrimaryHangTimeout {
		return fmt.Errorf("primary_hang_timeout: %s is shorter than %s; set it to %d or more, or to 0 to never kill an unresponsive primary",
			d.PrimaryHangTimeout, MinPrimaryHangTimeout, int(MinPrimaryHangTimeout/time.Second))
	}
	return nil
}

func secondsCeil(d time.Duration) string {
	s := (d + time.Second - 1) / time.Second
	return strconv.FormatInt(int64(s), 10)
}

// DCSJSON is what pg-bootstrap writes into the config key: bootstrap.dcs with
// the timing defaults made explicit, in Patroni's field names.
func (c *Config) DCSJSON() ([]byte, error) {
	d := c.Bootstrap.DCS
	ttl, lw, rt := Seconds(DefaultTTL), Seconds(DefaultLoopWait), Seconds(DefaultRetryTimeout)
	lag := int64(DefaultMaximumLagOnFailover)
	if d.TTL == nil {
		d.TTL = &ttl
	}
	if d.LoopWait == nil {
		d.LoopWait = &lw
	}
	if d.RetryTimeout == nil {
		d.RetryTimeout = &rt
	}
	if d.MaximumLagOnFailover == nil {
		d.MaximumLagOnFailover = &lag
	}
	return json.Marshal(&d)
}

// MarshalJSON writes Seconds as a number of seconds, as Patroni stores it.
func (s Seconds) MarshalJSON() ([]byte, error) {
	sec := time.Duration(s).Seconds()
	if sec == float64(int64(sec)) {
		return []byte(strconv.FormatInt(int64(sec), 10)), nil
	}
	return []byte(strconv.FormatFloat(sec, 'f', -1, 64)), nil
}

// UnmarshalJSON reads a number of seconds or a duration string.
func (s *Seconds) UnmarshalJSON(b []byte) error {
	v := strings.Trim(string(b), `"`)
	d, err := ParseSeconds(v)
	if err != nil {
		return err
	}
	*s = Seconds(d)
	return nil
}

// Endpoints returns the etcd client URLs from the etcd3 (or etcd) section.
func (c *Config) Endpoints() []string {
	e := c.Etcd3
	if e == nil {
		return nil
	}
	proto := e.Protocol
	if proto == "" {
		proto = "http"
		if e.Cert != "" || e.CACert != "" {
			proto = "https"
		}
	}
	var out []string
	hostURL := func(h string) string {
		if strings.Contains(h, "://") {
			return h
		}
		if _, _, err := net.SplitHostPort(h); err != nil {
			port := e.Port
			if port == 0 {
				port = 2379
			}
			h = net.JoinHostPort(h, strconv.Itoa(port))
		}
		return proto + "://" + h
	}
	switch {
	case len(e.URLs) > 0:
		out = append(out, e.URLs...)
	case e.URL != "":
		out = append(out, e.URL)
	case len(e.Hosts) > 0:
		for _, h := range e.Hosts {
			out = append(out, hostURL(h))
		}
	case e.Host != "":
		out = append(out, hostURL(e.Host))
	}
	return out
}

// Prefix returns the etcd key prefix of this cluster: /<namespace>/<scope>/.
func (c *Config) Prefix() string {
	ns := "/" + strings.Trim(c.Namespace, "/")
	if ns == "/" {
		ns = ""
	}
	return ns + "/" + c.Scope + "/"
}

// ConnURL is this member's conn_url as Patroni publishes it.
func (c *Config) ConnURL() string {
	return (&url.URL{Scheme: "postgres", Host: c.Postgres.ConnectAddress, Path: "/postgres"}).String()
}

// ProxyURL is this member's proxy_url as Patroni publishes it from
// postgresql.proxy_address (a connection pooler in front of the node); ""
// without one.
func (c *Config) ProxyURL() string {
	if c.Postgres.ProxyAddress == "" {
		return ""
	}
	return (&url.URL{Scheme: "postgres", Host: c.Postgres.ProxyAddress, Path: "/postgres"}).String()
}

// APIURL is this member's api_url as Patroni publishes it.
func (c *Config) APIURL() string {
	scheme := "http"
	if c.RestAPI.CertFile != "" {
		scheme = "https"
	}
	addr := c.RestAPI.ConnectAddress
	if addr == "" {
		return ""
	}
	return scheme + "://" + addr + "/patroni"
}

// ListenPort returns the port PostgreSQL listens on (postgresql.listen, then
// the port parameter, then 5432).
func (c *Config) ListenPort() int {
	if _, p, ok := lastHostPort(c.Postgres.Listen); ok {
		if n, err := strconv.Atoi(p); err == nil {
			return n
		}
	}
	if v, ok := c.Postgres.Parameters["port"]; ok {
		if n, err := strconv.Atoi(ParamString(v)); err == nil {
			return n
		}
	}
	return 5432
}

// ListenAddresses returns listen_addresses for postgresql.conf from
// postgresql.listen ("127.0.0.1,10.0.0.1:5432" gives "127.0.0.1,10.0.0.1").
func (c *Config) ListenAddresses() string {
	l := c.Postgres.Listen
	if l == "" {
		return "localhost"
	}
	if i := strings.LastIndex(l, ":"); i >= 0 && !strings.HasSuffix(l, "]") {
		l = l[:i]
	}
	return strings.NewReplacer("[", "", "]", "").Replace(l)
}

// lastHostPort splits "a,b:5432" or "host:port" into the last host and the port.
func lastHostPort(s string) (host, port string, ok bool) {
	if s == "" {
		return "", "", false
	}
	parts := strings.Split(s, ",")
	last := strings.TrimSpace(parts[len(parts)-1])
	h, p, err := net.SplitHostPort(last)
	if err != nil {
		return "", "", false
	}
	return h, p, true
}

// BinDir returns the directory of the PostgreSQL binaries.
func (c *Config) BinDir() string {
	if c.Postgres.BinDir != "" {
		return c.Postgres.BinDir
	}
	return "/usr/lib/postgresql/15/bin"
}
