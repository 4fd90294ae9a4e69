package health

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/pg-ha/pg-ha/lib/clock"
	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/dcs"
	"github.com/pg-ha/pg-ha/lib/pg"
	"github.com/pg-ha/pg-ha/lib/state"
)

// Default refresh timings.
const (
	// DefaultPGInterval is the pause between two PostgreSQL status queries.
	DefaultPGInterval = 250 * time.Millisecond
	// DefaultPGTimeout bounds one connection attempt plus query.
	DefaultPGTimeout = 1 * time.Second
	// DefaultConfirmInterval is the pause between two confirming etcd reads
	// when the watch reports nothing.
	DefaultConfirmInterval = 1 * time.Second
	// DefaultTickInterval is how often the state files are read, the bodies
	// re-rendered, and OnTick called.
	DefaultTickInterval = 250 * time.Millisecond
)

// Options configure a Service. Settings come from the node's configuration
// (see OptionsFromConfig); the caller adds the connections and hooks.
type Options struct {
	// Name and Scope identify the member; Version is reported as
	// patroni.version.
	Name, Scope, Version string
	// Standalone: no etcd, roles from PostgreSQL alone. DCS is ignored.
	Standalone bool
	// Tags are the member's tags.
	Tags config.Tags
	// TTL and MaxLagOnFailover come from the dynamic configuration.
	TTL              time.Duration
	MaxLagOnFailover int64
	// RestoreCommand says a restore_command is configured.
	RestoreCommand bool
	// RuntimeDir holds lockd.json and supervise.json.
	RuntimeDir string
	// PG reaches the local PostgreSQL.
	PG pg.ConnParams
	// DCS is the etcd client, required unless Standalone. The Service does
	// not close it.
	DCS *dcs.Client
	// Clock is CLOCK_BOOTTIME (default clock.System{}).
	Clock clock.Clock
	// Log receives the service's logs.
	Log zerolog.Logger

	// Bounds default to DefaultBounds(TTL); intervals to the Default*
	// constants.
	Bounds                                               Bounds
	PGInterval, PGTimeout, ConfirmInterval, TickInterval time.Duration

	// OnTick is called from the refresh loop after every tick: a place for
	// the systemd watchdog ping, which then stops when the loop hangs.
	OnTick func()
	// OnChange is called, from the goroutine that published the change,
	// whenever the one-line summary of the node changes (for systemd's
	// STATUS=).
	OnChange func(summary string)

	// Authentication, when set with AuthReadEndpoints, is required on
	// /config, /cluster and /history.
	Authentication    *config.BasicAuth
	AuthReadEndpoints bool
	// Writer, when set, serves the methods other than GET, HEAD and
	// OPTIONS (Patroni's write API); without it they are 405.
	Writer *Writer
	// ExtraHeaders are added to every response (restapi.http_extra_headers,
	// and https_extra_headers under TLS).
	ExtraHeaders map[string]string
}

// OptionsFromConfig fills the settings of Options from cfg. standalone is
// forced when cfg names no etcd endpoint.
func OptionsFromConfig(cfg *config.Config, standalone bool) Options {
	d := cfg.Dynamic()
	o := Options{
		Name: cfg.Name, Scope: cfg.Scope,
		Standalone:        standalone || len(cfg.Endpoints()) == 0,
		Tags:              cfg.Tags,
		TTL:               d.TTL,
		MaxLagOnFailover:  d.MaximumLagOnFailover,
		Authentication:    cfg.RestAPI.Authentication,
		AuthReadEndpoints: cfg.RestAPI.AuthReadEndpoints,
	}
	if _, ok := cfg.Postgres.RecoveryConf["restore_command"]; ok {
		o.RestoreCommand = true
	}
	if _, ok := d.Parameters["restore_command"]; ok {
		o.RestoreCommand = true
	}
	if len(cfg.RestAPI.HTTPExtraHeaders) > 0 || (cfg.RestAPI.CertFile != "" && len(cfg.RestAPI.HTTPSExtraHeaders) > 0) {
		o.ExtraHeaders = map[string]string{}
		for k, v := range cfg.RestAPI.HTTPExtraHeaders {
			o.ExtraHeaders[k] = v
		}
		if cfg.RestAPI.CertFile != "" {
			for k, v := range cfg.RestAPI.HTTPSExtraHeaders {
				o.ExtraHeaders[k] = v
			}
		}
	}
	return o
}

// Service keeps the latest Snapshot of the node, refreshed in the
// background by Run, and answers HTTP requests from it (Handle). A request
// never waits for PostgreSQL or etcd.
type Service struct {
	o      Options
	bounds Bounds
	clock  clock.Clock
	log    zerolog.Logger
	debug  bool

	mu       sync.Mutex // serialises publishing
	notifyMu sync.Mutex // serialises OnChange
	cur      *Snapshot
	summary  string
	prev     Facts

	view atomic.Pointer[view]

	extra   []headerKV
	authKey []byte

	configRev int64 // the config key revision warnConfig last saw
}

// view is a published snapshot with its rendered bodies.
type view struct {
	snap *Snapshot
	r    *Rendered
}

// New checks o and returns a Service whose first snapshot (nothing observed
// yet: every check answers 503) is already published. It does no I/O.
func New(o Options) (*Service, error) {
	if o.Name == "" || o.Scope == "" {
		return nil, errors.New("health: name and scope are required")
	}
	if !o.Standalone && o.DCS == nil {
		return nil, errors.New("health: an etcd client is required unless standalone")
	}
	if o.AuthReadEndpoints && (o.Authentication == nil || o.Authentication.Username == "" || o.Authentication.Password == "") {
		return nil, errors.New("restapi.auth_read_endpoints: needs restapi.authentication with a username and a password")
	}
	if o.Clock == nil {
		o.Clock = clock.System{}
	}
	if o.TTL <= 0 {
		o.TTL = config.DefaultTTL
	}
	if o.Bounds == (Bounds{}) {
		o.Bounds = DefaultBounds(o.TTL)
	}
	defaults := []struct {
		d   *time.Duration
		def time.Duration
	}{{&o.PGInterval, DefaultPGInterval}, {&o.PGTimeout, DefaultPGTimeout},
		{&o.ConfirmInterval, DefaultConfirmInterval}, {&o.TickInterval, DefaultTickInterval}}
	for _, d := range defaults {
		if *d.d <= 0 {
			*d.d = d.def
		}
	}
	s := &Service{
		o: o, bounds: o.Bounds, clock: o.Clock,
		log: o.Log.With().Str("component", "health").Logger(),
	}
	s.debug = s.log.GetLevel() <= zerolog.DebugLevel
	for k, v := range o.ExtraHeaders {
		s.extra = append(s.extra, headerKV{[]byte(http.CanonicalHeaderKey(k)), []byte(v)})
	}
	if a := o.Authentication; a != nil && a.Username != "" {
		s.authKey = []byte(base64.StdEncoding.EncodeToString([]byte(a.Username + ":" + a.Password)))
	}
	tags, text := effectiveTags(o.Tags)
	s.cur = &Snapshot{
		Name: o.Name, Scope: o.Scope, Version: o.Version, Standalone: o.Standalone,
		Tags: tags, TagText: text, NoLoadBalance: o.Tags.NoLoadBalance(),
		MaxLagOnFailover: o.MaxLagOnFailover, TTL: o.TTL, RestoreCommand: o.RestoreCommand,
	}
	s.update(nil)
	return s, nil
}

// effectiveTags drops the special tags that are false, as Patroni does, and
// renders each value for ?tag_ comparisons.
func effectiveTags(t config.Tags) (map[string]any, map[string]string) {
	tags := map[string]any{}
	text := map[string]string{}
	for k, v := range t {
		switch k {
		case "clonefrom", "nofailover", "noloadbalance", "nosync", "nostream":
			if !config.TagBool(v) {
				continue
			}
		}
		tags[k] = v
		text[k] = pyStr(v)
	}
	if len(tags) == 0 {
		tags = nil
	}
	return tags, text
}

// Snapshot returns the latest published snapshot. It never blocks on I/O.
func (s *Service) Snapshot() *Snapshot { return s.view.Load().snap }

// Facts evaluates the latest snapshot now. It never blocks on I/O.
func (s *Service) Facts() Facts { return Evaluate(s.view.Load().snap, s.bounds, s.clock.Now()) }

// Bounds returns the staleness bounds in force.
func (s *Service) Bounds() Bounds { return s.bounds }

// update publishes a copy of the current snapshot changed by fn, with its
// bodies rendered.
func (s *Service) update(fn func(*Snapshot)) {
	if s.publish(fn) == "" || s.o.OnChange == nil {
		return
	}
	// Outside the publishing lock, as it may block on systemd; serialised,
	// and reading the summary again, so the last report is the latest one.
	s.notifyMu.Lock()
	defer s.notifyMu.Unlock()
	s.mu.Lock()
	latest := s.summary
	s.mu.Unlock()
	s.o.OnChange(latest)
}

// publish does update's work under the lock and returns the new summary if
// it changed.
func (s *Service) publish(fn func(*Snapshot)) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := *s.cur
	if fn != nil {
		fn(&next)
	}
	now := s.clock.Now()
	next.At = now
	s.cur = &next
	s.view.Store(&view{snap: &next, r: Render(&next, s.bounds, now)})
	return s.noteChange(&next, now)
}

// noteChange logs what changed in the conclusions and returns the new
// summary if it changed.
func (s *Service) noteChange(snap *Snapshot, now clock.Time) string {
	f := Evaluate(snap, s.bounds, now)
	p := s.prev
	if f.Running != p.Running {
		if f.Running {
			s.log.Info().Bool("in_recovery", f.InRecovery).Msg("postgres answering")
		} else if snap.PG.Known || snap.PG.Err != "" {
			s.log.Warn().Str("error", snap.PG.Err).Msg("postgres not answering")
		}
	}
	if !snap.Standalone && f.LeaderConfirmed != p.LeaderConfirmed {
		if f.LeaderConfirmed {
			s.log.Info().Str("leader", f.Leader).Msg("etcd view confirmed")
		} else if snap.DCS.Cluster != nil {
			s.log.Warn().Str("error", snap.DCS.Err).Dur("bound", s.bounds.DCS).Msg("etcd view no longer confirmed")
		}
	}
	if f.Primary != p.Primary || f.Role != p.Role || f.Leader != p.Leader ||
		f.SyncStandby != p.SyncStandby || f.QuorumStandby != p.QuorumStandby {
		ev := s.log.Info().Str("role", f.Role).Str("leader", f.Leader).Bool("primary", f.Primary).
			Bool("sync_standby", f.SyncStandby).Bool("quorum_standby", f.QuorumStandby)
		if !f.Primary {
			ev = ev.Str("reason", f.Why)
		}
		ev.Msg("health changed")
	}
	s.prev = f
	summary := Summary(&f)
	if summary == s.summary {
		return ""
	}
	s.summary = summary
	return summary
}

// Summary is a one-line description of f for systemd's STATUS=.
func Summary(f *Facts) string {
	switch {
	case f.Primary:
		return "primary: /primary answers 200"
	case f.StandbyLeader:
		return "standby leader"
	case f.Running && f.InRecovery:
		return "replica"
	case f.Running:
		return "postgres not in recovery, /primary answers 503: " + firstClause(f.Why)
	}
	return "postgres " + f.State + ", /primary answers 503"
}

func firstClause(s string) string {
	if i := strings.Index(s, ": "); i > 0 {
		return s[:i]
	}
	return s
}

// Run refreshes the snapshot until ctx is cancelled: PostgreSQL every
// PGInterval (each attempt bounded by PGTimeout), etcd on every watch event
// and every ConfirmInterval otherwise (each read bounded by the client's
// request timeout), the state files and OnTick every TickInterval. It
// returns nil once every refresher has stopped after ctx ends.
func (s *Service) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { s.runPG(gctx); return nil })
	g.Go(func() error { s.runTick(gctx); return nil })
	if !s.o.Standalone {
		g.Go(func() error { s.runDCS(gctx); return nil })
	}
	return g.Wait()
}

func (s *Service) runPG(ctx context.Context) {
	var conn *pgx.Conn
	defer func() { closeConn(conn) }()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		sent := s.clock.Now()
		st, err := s.queryPG(ctx, &conn)
		if ctx.Err() != nil {
			return
		}
		s.update(func(n *Snapshot) {
			if err != nil {
				n.PG.Failed, n.PG.Err, n.PG.Refused = sent, oneLine(err.Error()), refused(err)
				return
			}
			n.PG = PGObservation{Status: st, Known: true, OK: sent}
		})
		timer.Reset(s.o.PGInterval)
	}
}

func (s *Service) queryPG(ctx context.Context, connp **pgx.Conn) (pg.Status, error) {
	qctx, cancel := context.WithTimeout(ctx, s.o.PGTimeout)
	defer cancel()
	if *connp == nil || (*connp).IsClosed() {
		closeConn(*connp)
		*connp = nil
		p := s.o.PG
		if p.CancelGrace == 0 {
			p.CancelGrace = pgCancelGrace
		}
		c, err := pg.Connect(qctx, p)
		if err != nil {
			return pg.Status{}, err
		}
		*connp = c
	}
	// A query that failed or timed out leaves the connection open when
	// PostgreSQL answered (a timeout is cancelled, not disconnected): it is
	// kept, so that an application that takes every free slot cannot
	// lock pg-healthd out after a slow moment.
	st, err := pg.QueryStatus(qctx, *connp)
	if err != nil && (*connp).IsClosed() {
		*connp = nil
	}
	return st, err
}

// pgCancelGrace is how long a status query that ran out of time is given
// to answer its cancel request before its connection is dropped.
const pgCancelGrace = 2 * time.Second

// closeConn closes conn without waiting long for a server that hangs.
func closeConn(conn *pgx.Conn) {
	if conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_ = conn.Close(ctx)
}

// refused reports a connection refused or a missing socket: nothing listens.
func refused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT)
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// runDCS follows the cluster with a dcs.View: one read, then the watch,
// whose progress answers (every WatchProgressInterval) confirm the view.
// The snapshot takes the view on every change and every ConfirmInterval;
// a view that stops being confirmed ages and fails closed as a read that
// stopped succeeding did.
func (s *Service) runDCS(ctx context.Context) {
	v := s.o.DCS.Follow(ctx)
	events := v.Events()
	t := time.NewTicker(s.o.ConfirmInterval)
	defer t.Stop()
	var last *dcs.Cluster
	var lastConfirmed clock.Time
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-events:
			if !ok {
				return
			}
			drain(events) // one update covers every pending event
		case <-t.C:
		}
		cl, confirmed := v.Cluster()
		if cl == nil {
			if err := v.Err(); err != "" {
				s.update(func(n *Snapshot) { n.DCS.Err = oneLine(err) })
			}
			continue
		}
		if cl.Revision == revisionOf(last) && confirmed == lastConfirmed {
			continue
		}
		last, lastConfirmed = cl, confirmed
		// Confirmed on this service's clock, and as wall time.
		age := s.o.DCS.Clock().Now().Sub(confirmed)
		local, wall := s.clock.Now().Add(-age), time.Now().Add(-age)
		if confirmed == 0 {
			local, wall = 0, time.Time{}
		}
		standby, paused, mode := dynamicFlags(cl.Config)
		s.warnConfig(cl.ConfigRev, cl.Config)
		errText := oneLine(v.Err())
		s.update(func(n *Snapshot) {
			if confirmed == 0 { // keep the last confirmation: it only ages
				local, wall = n.DCS.Confirmed, n.DCS.LastSeen
			}
			n.DCS = DCSObservation{Cluster: cl, Confirmed: local, LastSeen: wall, StandbyCluster: standby, Paused: paused, SyncMode: mode, Err: errText}
		})
	}
}

func revisionOf(cl *dcs.Cluster) int64 {
	if cl == nil {
		return -1
	}
	return cl.Revision
}

func drain(ch <-chan dcs.Event) {
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		default:
			return
		}
	}
}

func (s *Service) runTick(ctx context.Context) {
	t := time.NewTicker(s.o.TickInterval)
	defer t.Stop()
	var lastErr [2]string
	for {
		lockd, lerr := state.ReadLockd(s.o.RuntimeDir)
		sup, serr := state.ReadSupervise(s.o.RuntimeDir)
		// Only a running pg-bootstrap's file counts; one that died left it.
		boot, berr := state.ReadBootstrap(s.o.RuntimeDir)
		bootOK := berr == nil && boot.Running(s.clock.Now())
		promise, perr := state.ReadFailsafe(s.o.RuntimeDir)
		for i, err := range []error{lerr, serr} {
			msg := ""
			if err != nil && !errors.Is(err, state.ErrNotExist) {
				msg = err.Error()
			}
			if msg != lastErr[i] && msg != "" {
				s.log.Warn().Err(err).Msg("cannot read state file")
			}
			lastErr[i] = msg
		}
		s.update(func(n *Snapshot) {
			n.Lockd, n.Supervise, n.Bootstrap, n.Promise = nil, nil, nil, nil
			if bootOK {
				n.Bootstrap = &boot
			}
			if perr == nil {
				n.Promise = &promise
			}
			if lerr == nil {
				n.Lockd = &lockd
			}
			if serr == nil {
				n.Supervise = &sup
			}
		})
		if s.o.OnTick != nil {
			s.o.OnTick()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// warnConfig logs, once per revision of the config key, each field left
// out for its type. It is called from the goroutine that reads etcd only.
func (s *Service) warnConfig(rev int64, raw []byte) {
	if raw == nil || rev == s.configRev {
		return
	}
	s.configRev = rev
	d, err := (config.Dynamic{}).WithJSON(raw, nil)
	if err != nil {
		s.log.Warn().Str("key", "config").Int64("mod_revision", rev).Err(err).Msg("config key is unreadable")
		return
	}
	for _, w := range d.Warnings() {
		s.log.Warn().Str("key", "config").Int64("mod_revision", rev).Msg(w)
	}
}

// dynamicFlags reads standby_cluster, pause and synchronous_mode from the
// config key, as Patroni's global config does (is_standby_cluster,
// is_paused, synchronous_mode). The key is read field by field
// (config.ParseDCSJSON): another field of the wrong type hides none of
// them. A synchronous_mode that is absent or unreadable is off.
func dynamicFlags(raw []byte) (standby, paused bool, mode config.SyncMode) {
	if raw == nil {
		return false, false, config.SyncOff
	}
	d, _, err := config.ParseDCSJSON(raw)
	if err != nil {
		return false, false, config.SyncOff
	}
	sc := d.StandbyCluster
	standby = sc != nil && config.IsStandbyCluster(sc)
	mode = config.SyncOff
	if d.SynchronousMode != nil {
		mode = *d.SynchronousMode
	}
	return standby, d.Pause != nil && *d.Pause, mode
}
