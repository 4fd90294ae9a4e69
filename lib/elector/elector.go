package elector

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pg-ha/pg-ha/lib/clock"
	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/dcs"
	"github.com/pg-ha/pg-ha/lib/decide"
	"github.com/pg-ha/pg-ha/lib/pg"
	"github.com/pg-ha/pg-ha/lib/pgdata"
	"github.com/pg-ha/pg-ha/lib/rolepipe"
	"github.com/pg-ha/pg-ha/lib/sdnotify"
	"github.com/pg-ha/pg-ha/lib/state"
)

// Notifier receives readiness, status and watchdog pings.
type Notifier = sdnotify.Daemon

// Version is published in the member key.
var Version = "0.1.0"

// Elector runs pg-lockd's loop for one node.
type Elector struct {
	cfg    *config.Config
	node   *pgdata.Node
	dcs    *dcs.Client
	out    *rolepipe.Writer
	clock  clock.Clock
	log    zerolog.Logger
	notify Notifier

	base config.Dynamic // from the YAML
	dyn  config.Dynamic // with the config key applied

	lease    dcs.Lease // ID 0: none
	token    int64     // leader key mod revision while we hold it
	cluster  *dcs.Cluster
	view     *dcs.View // the cluster as the watch keeps it (nil: read each loop)
	etcdOK   bool
	conn     *pgx.Conn
	line     rolepipe.Line
	lastPut  clock.Time
	lastData string   // the member data last written, positions aside
	lastPos  [3]int64 // the positions last written
	// lastPutRev is the revision of the last member key write (an upper
	// bound: the client's highest write revision then); a key with another
	// mod revision was rewritten by someone else.
	lastPutRev int64
	noLeader   struct {
		since clock.Time
		rev   int64
	}
	leaderURL    map[string]string // last known conn_url per member
	primarySince clock.Time        // when the local server last answered as primary
	downSince    clock.Time        // when, as leader, the server stopped answering as primary
	promotedFrom int               // timeline before our promotion, for the history key
	status       string
	// lastSeen is when each member last had a key (slots.go); slotDrop the
	// member slots the leader drops, as last decided.
	lastSeen    map[string]clock.Time
	slotDrop    []string
	slotAdvance map[string]int64
	// upstream is the member the last follow line streamed from.
	upstream string
	// supAccepts are the newer role line keys pg-supervise last said it
	// takes (state.Supervise.Accepts).
	supAccepts []string
	// localPrimary: the local server answered as a primary in this loop.
	localPrimary bool
	// standbyWarned: the leader was told it leads a standby cluster while
	// it runs a primary, and said why it stays one.
	standbyWarned bool
	// standbySyncWarned: synchronous_mode was said not to apply to this
	// standby cluster.
	standbySyncWarned bool

	restartGrace  clock.Time // no giving up the key for a requested restart until then
	reinitRunning bool
	reinitDone    chan struct{}

	leaderDeletedRev int64 // revision of the last deletion of the leader key seen

	hang hangWatch // the leader's PostgreSQL answering no query
	fkey keyWatch  // since when the failover key has been seen
	// ka is shared with the keepalive and guard goroutines; e.lease is the
	// main loop's copy of ka.lease, taken at the start of each loop.
	ka keeper
	// restart is the restart request under way, nil if none.
	restart *restartJob
	// sync is synchronous replication as the leader manages it.
	sync syncState
	// releasing is the token under which the key is being given up
	// because PostgreSQL is down: lead lines are replaced by a stop line.
	releasing int64
	// shared is the config key last left for pg-supervise (liveconfig.go).
	shared sharedConfig
	// refused is the token under which pre_promote refused the promotion:
	// the key is being given up, standby lines replace lead lines
	// (prepromote.go). raceAfter: no race for the key before then.
	refused   int64
	raceAfter clock.Time
	// fsWritten is the failsafe key this leader last wrote, until it is
	// read back (failsafe.go); started is when Run began.
	fsWritten map[string]string
	started   clock.Time
	// notRacing is the last reason logged for not racing for the free
	// leader key: each new reason is logged once at info, as an operator
	// wants to know why a cluster stays without a leader.
	notRacing string
}

// New returns an elector; Run starts it.
func New(cfg *config.Config, node *pgdata.Node, client *dcs.Client, out *rolepipe.Writer, c clock.Clock, n Notifier, log zerolog.Logger) *Elector {
	if n == nil {
		n = &sdnotify.Notifier{}
	}
	base := cfg.Dynamic()
	return &Elector{cfg: cfg, node: node, dcs: client, out: out, clock: c, log: log, notify: n,
		base: base, dyn: base, leaderURL: map[string]string{}, lastSeen: map[string]clock.Time{}, reinitDone: make(chan struct{}, 1)}
}

// Run loops until ctx is done; then a leader hands over (PostgreSQL stops
// taking writes first, then the key is released) and the lease is revoked.
func (e *Elector) Run(ctx context.Context) error {
	e.setTiming()
	e.restoreLease(ctx)
	bgCtx, stopBg := context.WithCancel(context.WithoutCancel(ctx))
	var bg sync.WaitGroup
	e.started = e.clock.Now()
	bg.Add(3)
	go func() { defer bg.Done(); e.keepLease(bgCtx) }()
	go func() { defer bg.Done(); e.guardWrites(bgCtx) }()
	go func() { defer bg.Done(); e.failsafeRounds(bgCtx) }()
	defer func() { stopBg(); bg.Wait() }()
	if ctx.Err() != nil {
		// Told to stop while starting: leave without deciding anything.
		return e.shutdown()
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	e.view = e.dcs.Follow(watchCtx)
	events := e.view.Events()
	ready := false
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return e.shutdown()
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if !e.relevant(ev) {
				continue
			}
		case <-e.reinitDone:
			e.reinitRunning = false
		case <-timer.C:
		}
		next := e.iterate(ctx)
		if !ready {
			_ = e.notify.Ready()
			ready = true
		}
		_ = e.notify.Watchdog()
		if wd := e.notify.WatchdogInterval(); wd > 0 {
			next = min(next, wd)
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(next)
	}
}

// relevant says whether a watch event should wake the loop before its
// timer: changes of the leader, failover, config and initialize keys always;
// member keys only while no leader exists (an election is settling).
func (e *Elector) relevant(ev dcs.Event) bool {
	if ev.Resync {
		return true
	}
	name := strings.TrimPrefix(ev.Key, e.dcs.Prefix())
	switch {
	case name == "leader":
		if ev.Deleted {
			e.leaderDeletedRev = ev.Revision
		}
		return true
	case name == "failover", name == "config", name == "initialize":
		return true
	case strings.HasPrefix(name, "members/"):
		return e.cluster != nil && e.cluster.Leader == nil
	}
	return false
}

// iterate runs one loop and returns how long to wait for the next.
func (e *Elector) iterate(ctx context.Context) time.Duration {
	next := e.dyn.LoopWait
	e.setTiming()
	leaseOK := e.renew(ctx)
	if !leaseOK {
		next = 500 * time.Millisecond
	}
	// Each step is bounded by a timeout; ping between them so that a loop
	// slowed by an unreachable etcd is not taken for a hung one.
	_ = e.notify.Watchdog()
	loc := e.observeLocal(ctx)
	e.localPrimary = loc.primary()
	if loc.supOK {
		e.supAccepts = loc.sup.Accepts
	}
	cl, err := e.readCluster(ctx)
	_ = e.notify.Watchdog()
	if err != nil {
		if e.etcdOK {
			e.log.Warn().Err(err).Msg("cannot read the cluster from etcd")
		}
		e.etcdOK = false
		next = 500 * time.Millisecond
		e.emitWithoutEtcd(loc)
		e.writeHeartbeat()
		return next
	}
	e.etcdOK = true
	e.cluster = cl
	e.trackLeaderless(cl)
	e.takeReload(true)
	e.applyConfig(cl)
	e.setFailsafeAsk(cl)
	for _, m := range cl.Members {
		if m.Data.ConnURL != "" {
			e.leaderURL[m.Name] = m.Data.ConnURL
		}
	}
	e.seeMembers(cl)
	if leaseOK {
		e.publishMember(ctx, loc, cl)
	}
	handled := false
	r, ok := cl.Requests[e.cfg.Name]
	if !ok || r.Error != "" {
		e.restart = nil
	}
	if ok && r.Error == "" && leaseOK {
		handled = e.handleRequest(ctx, cl, r, loc)
	}
	if !handled {
		e.decide(ctx, loc, cl, leaseOK)
	}
	e.writeHeartbeat()
	if cl.Leader == nil && e.token == 0 {
		next = min(next, 200*time.Millisecond)
	}
	if e.restart != nil {
		next = min(next, 100*time.Millisecond)
	}
	if e.token != 0 && e.sync.recheck {
		// Standbys just listed in synchronous_standby_names are published
		// in the sync key as soon as they are confirmed.
		next = min(next, 250*time.Millisecond)
	}
	if e.token != 0 && !loc.primary() {
		// Promotion in progress: publish role primary as soon as it is.
		next = min(next, 100*time.Millisecond)
	}
	return next
}

// readCluster returns the cluster as the watch keeps it when that view is
// confirmed current and reflects this node's own writes; otherwise it reads
// etcd (a broken watch, etcd unreachable).
func (e *Elector) readCluster(ctx context.Context) (*dcs.Cluster, error) {
	if e.view != nil {
		wctx, cancel := context.WithTimeout(ctx, min(e.requestTimeout(), 500*time.Millisecond))
		cl := e.view.Current(wctx)
		cancel()
		if cl != nil {
			return cl, nil
		}
	}
	gctx, cancel := context.WithTimeout(ctx, e.requestTimeout())
	defer cancel()
	return e.dcs.Get(gctx)
}

// trackLeaderless remembers since when, and since which revision, the
// cluster has had no leader: members that published after that revision
// report positions that are final for this election.
func (e *Elector) trackLeaderless(cl *dcs.Cluster) {
	if cl.Leader != nil {
		e.noLeader.since, e.noLeader.rev, e.leaderDeletedRev = 0, 0, 0
		return
	}
	if e.noLeader.rev == 0 {
		e.noLeader.since, e.noLeader.rev = e.clock.Now(), cl.Revision
		if r := e.leaderDeletedRev; r > 0 && r <= cl.Revision {
			e.noLeader.rev = r
		}
	}
}

// renew makes sure there is a lease: the keepalive goroutine renews it
// (keepLease); here a lease the server forgot is dropped and a new one
// granted. It reports whether the lease is valid now.
func (e *Elector) renew(ctx context.Context) bool {
	l, lost := e.leaseState()
	if lost {
		e.log.Warn().Int64("lease_id", l.ID).Msg("lease expired")
		l, e.token = dcs.Lease{}, 0
		e.setLease(l, 0)
	}
	if l.ID == 0 {
		rctx, cancel := context.WithTimeout(ctx, e.requestTimeout())
		defer cancel()
		sent := e.clock.Now()
		g, err := e.dcs.Grant(rctx, e.dyn.TTL)
		if err != nil {
			e.lease = l
			e.log.Warn().Err(err).Msg("lease grant failed")
			return false
		}
		l = g
		e.setLease(l, sent)
		e.log.Info().Int64("lease_id", l.ID).Dur("ttl", l.TTL).Msg("lease granted")
	}
	e.lease = l
	return e.clock.Now().Before(l.ValidUntil)
}

func (e *Elector) requestTimeout() time.Duration {
	return min(max(e.dyn.RetryTimeout/2, 500*time.Millisecond), 2*time.Second)
}

// restoreLease adopts the lease a previous pg-lockd of this node left in
// lockd.json, so that a restart within the lease keeps the leader key.
func (e *Elector) restoreLease(ctx context.Context) {
	hb, err := state.ReadLockd(e.node.RuntimeDir)
	if err != nil || hb.LeaseID == 0 {
		return
	}
	// Finish the adoption even when told to stop meanwhile: whether this
	// node holds the leader key decides how it may leave.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.requestTimeout())
	defer cancel()
	sent := e.clock.Now()
	l, err := e.dcs.KeepAlive(rctx, hb.LeaseID)
	if err != nil {
		e.log.Info().Err(err).Int64("lease_id", hb.LeaseID).Msg("previous lease not adopted")
		return
	}
	e.lease = l
	e.setLease(l, sent)
	e.log.Info().Int64("lease_id", l.ID).Msg("adopted the lease of the previous pg-lockd")
}

// applyConfig overlays the config key on the YAML's dynamic settings, if
// the result keeps the timing budget.
func (e *Elector) applyConfig(cl *dcs.Cluster) {
	d := e.base
	if cl.Config != nil {
		nd, err := e.base.WithJSON(cl.Config, e.localConfig())
		if err != nil {
			e.log.Warn().Err(err).Msg("ignoring the config key")
		} else if err := nd.CheckBudget(); err != nil {
			e.log.Warn().Err(err).Msg("ignoring the config key's timing")
			nd.TTL, nd.LoopWait, nd.RetryTimeout = e.base.TTL, e.base.LoopWait, e.base.RetryTimeout
			d = nd
		} else {
			d = nd
		}
		if err == nil {
			e.shareConfig(cl)
		}
	}
	if d.StandbyCluster != nil && d.SyncMode != config.SyncOff {
		// As in Patroni: a standby cluster has no synchronous replication.
		if !e.standbySyncWarned {
			e.standbySyncWarned = true
			e.log.Warn().Str("synchronous_mode", string(d.SyncMode)).Msg("synchronous_mode does not apply to a standby cluster: replicating asynchronously")
		}
		d.SyncMode = config.SyncOff
	} else {
		e.standbySyncWarned = false
	}
	e.dyn = d
}

// publishMember writes members/<name> when others would act on what
// changed: at once for anything but the WAL positions (role, state,
// timeline, tags, pending restart, a new lease, the key gone or rewritten),
// and for positions once they moved by a quarter of
// maximum_lag_on_failover (at most 16 MiB) or positionRefresh after they
// last were written. An unchanged key is not rewritten: the lease keeps it.
// While the cluster has no leader, a key not yet written since the leader
// vanished is written every loop: elections wait for positions published
// after that (decide.Member.Fresh).
func (e *Elector) publishMember(ctx context.Context, loc local, cl *dcs.Cluster) {
	d := e.memberData(loc, cl)
	pos := positionsOf(d)
	rest := d
	rest.XLogLocation, rest.ReceivedLocation, rest.ReplayedLocation = nil, nil, nil
	b, _ := json.Marshal(rest) // pointers compared by value
	key := string(b)
	now := e.clock.Now()
	me := cl.Member(e.cfg.Name)
	fast := cl.Leader == nil && (me == nil || me.ModRevision <= e.noLeader.rev)
	if !fast && me != nil && me.Lease == e.lease.ID && key == e.lastData &&
		(me.ModRevision == e.lastPutRev || e.lastPutRev == 0) && !e.positionsDue(pos, now) {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, e.requestTimeout())
	defer cancel()
	if err := e.dcs.PutMember(rctx, e.cfg.Name, d, e.lease.ID); err != nil {
		e.log.Warn().Err(err).Msg("publishing the member key")
		return
	}
	e.lastPut, e.lastData, e.lastPos, e.lastPutRev = now, key, pos, e.dcs.Wrote()
}

// positionRefresh is how long changed WAL positions may wait for their
// member key write: a replica's lag shows within that.
func (e *Elector) positionRefresh() time.Duration { return 5 * e.dyn.LoopWait }

// positionsDue says whether pos differs enough from the positions last
// published, or for long enough, to be written.
func (e *Elector) positionsDue(pos [3]int64, now clock.Time) bool {
	if pos == e.lastPos {
		return false
	}
	if now.Sub(e.lastPut) >= e.positionRefresh() {
		return true
	}
	step := min(max(e.dyn.MaximumLagOnFailover/4, 0), 16<<20)
	for i := range pos {
		if d := pos[i] - e.lastPos[i]; d >= step || -d >= step {
			return true
		}
	}
	return false
}

func positionsOf(d dcs.MemberData) (p [3]int64) {
	for i, v := range []*int64{d.XLogLocation, d.ReceivedLocation, d.ReplayedLocation} {
		if v != nil {
			p[i] = *v
		} else {
			p[i] = -1
		}
	}
	return p
}

func (e *Elector) memberData(loc local, cl *dcs.Cluster) dcs.MemberData {
	d := dcs.MemberData{
		ConnURL: e.cfg.ConnURL(), APIURL: e.cfg.APIURL(), Version: Version, ProxyURL: e.cfg.ProxyURL(),
		State: "stopped", Role: "replica", Pause: e.dyn.Pause,
	}
	if len(e.cfg.Tags) > 0 {
		d.Tags = map[string]any(e.cfg.Tags)
	}
	cloneState, progress, cloning := loc.cloning()
	switch {
	case loc.running():
		d.State = "running"
	case cloning:
		// Patroni's state; the progress is pg-ha's, in steps of 5 %, so
		// that a clone costs at most about 20 more writes of the key.
		d.State = cloneState
		if progress != nil {
			d.Extra = map[string]json.RawMessage{state.ProgressField: state.ProgressJSON(progress.Coarse())}
		}
	case loc.supOK && loc.sup.State != "":
		switch d.State = loc.sup.State; d.State {
		case state.Stopped, state.Fenced:
			d.State = "stopped"
		case state.Running:
			d.State = "unknown" // pg-supervise saw it run, but it does not answer us
		}
	}
	switch {
	case loc.primary():
		d.Role = "primary"
	case e.token != 0 && e.dyn.StandbyCluster != nil:
		d.Role = "standby_leader" // Patroni's
	}
	if loc.running() {
		pos := loc.position()
		d.XLogLocation = &pos
		d.Timeline = int(loc.status.Timeline)
		if loc.status.InRecovery {
			r, p := int64(loc.status.ReceiveLSN), int64(loc.status.ReplayLSN)
			d.ReceivedLocation, d.ReplayedLocation = &r, &p
			d.ReplicationState = e.replicationState(loc)
		}
		d.PendingRestart = loc.status.PendingRestart
	}
	prio := e.cfg.Tags.FailoverPriority()
	d.FailoverPriority = &prio
	d.PrePromoteFailed = e.clock.Now().Before(e.raceAfter)
	return d
}

// replicationState is the member key's replication_state for a standby:
// "streaming" while its WAL receiver streams; "in archive recovery", as
// Patroni says it, when it has none and replays from restore_command (a
// nostream member, or one with restore_command set locally); otherwise the
// receiver's own state ("" when there is none).
func (e *Elector) replicationState(loc local) string {
	st := loc.status.ReceiverStatus
	if st == "" && (e.cfg.Tags.NoStream() || config.ParamString(e.cfg.Postgres.RecoveryConf["restore_command"]) != "") {
		return "in archive recovery"
	}
	return st
}

// emit sends a line to pg-supervise (never blocking) and remembers it.
func (e *Elector) emit(l rolepipe.Line) {
	l.Paused = e.dyn.Pause
	if l.String() != e.line.String() && (l.Verb != e.line.Verb || l.Leader != e.line.Leader || l.Token != e.line.Token) {
		e.log.Info().Str("line", l.String()).Msg("role")
	}
	e.line = l
	e.ka.mu.Lock()
	e.ka.line = l
	if l.Verb == rolepipe.Lead {
		e.ka.held = l.Token
	}
	e.out.Set(l)
	e.ka.mu.Unlock()
	e.setStatus(l)
}

func (e *Elector) setStatus(l rolepipe.Line) {
	var s string
	switch l.Verb {
	case rolepipe.Lead:
		s = fmt.Sprintf("leader, lease valid %.1fs", l.Until.Sub(e.clock.Now()).Seconds()+config.FenceMargin.Seconds())
	case rolepipe.Follow:
		s = "replica of " + l.Leader
		if l.Remote {
			s = "standby leader, replica of " + l.ConnURL
		}
	case rolepipe.Standby:
		s = "replica, no leader"
	case rolepipe.Stop:
		s = "stopping PostgreSQL (" + l.Reason + ")"
	}
	if s != e.status {
		e.status = s
		_ = e.notify.Status(s)
	}
}

// lead sends a lead line if this node holds the key (a current token) and
// the lease still grants validity beyond the fence margin (never more than
// ttl from the renewal, and no later than an early fence); otherwise nothing
// is sent and pg-supervise fences at the deadline it already has. While the
// key is being given up because PostgreSQL is down, the stop line is sent
// instead (and true returned).
func (e *Elector) lead(slots []string) bool {
	if e.token == 0 {
		return false
	}
	if e.releasing != 0 && e.releasing == e.token {
		e.emit(rolepipe.Line{Verb: rolepipe.Stop, Reason: "primary_down"})
		return true
	}
	if e.refused != 0 && e.refused == e.token {
		e.emit(rolepipe.Line{Verb: rolepipe.Standby})
		return true
	}
	if sc := e.dyn.StandbyCluster; sc != nil {
		if !e.localPrimary {
			e.followRemote(sc, slots)
			return true
		}
		if !e.standbyWarned {
			e.log.Error().Msg("standby_cluster is set but this leader runs a primary: it stays one (pg-ha never turns a primary into a standby of another cluster); remove standby_cluster, or rebuild this cluster from the remote one")
			e.standbyWarned = true
		}
	} else {
		e.standbyWarned = false
	}
	e.ka.mu.Lock()
	until := e.ka.untilLocked()
	e.ka.mu.Unlock()
	if !e.clock.Now().Before(until) {
		return false
	}
	l := rolepipe.Line{Verb: rolepipe.Lead, Until: until, Token: e.token, Slots: slots, Drop: e.slotDrop, Advance: e.slotAdvance, Sync: e.sync.names}
	e.emit(e.fitSlots(l))
	return true
}

// fitSlots leaves out of l what pg-supervise would not take: a line too
// long, or with keys an older pg-supervise does not know, would be refused
// whole. Dropping and advancing slots can wait; a leader's slots for its
// followers stay.
func (e *Elector) fitSlots(l rolepipe.Line) rolepipe.Line {
	if !slices.Contains(e.supAccepts, rolepipe.FollowSlots) {
		l.Advance = nil
		if l.Verb == rolepipe.Follow {
			l.Slots = nil
			l.Drop = nil
		}
	}
	if !slices.Contains(e.supAccepts, "drop") {
		l.Drop = nil
	}
	if !slices.Contains(e.supAccepts, "logical") {
		l.Logical = nil
	}
	if len(l.String()) > rolepipe.MaxLineLength {
		l.Advance, l.Drop = nil, nil
	}
	if len(l.String()) > rolepipe.MaxLineLength && l.Verb == rolepipe.Follow {
		l.Slots = nil
	}
	return l
}

// followRemote makes this node, which holds the leader key, the standby
// leader of a standby cluster: a replica of the cluster standby_cluster
// names (streaming from it, restoring from its archive, or both) that keeps
// the slots of its own cluster's members and is never promoted while
// standby_cluster stays. A pg-supervise too old to know remote lines would
// take the remote for a member; it gets a standby line instead.
func (e *Elector) followRemote(sc *config.StandbyCluster, slots []string) {
	if !slices.Contains(e.supAccepts, "remote") {
		e.emit(rolepipe.Line{Verb: rolepipe.Standby})
		return
	}
	l := rolepipe.Line{Verb: rolepipe.Follow, Leader: rolepipe.RemoteLeader, Remote: true, ConnURL: sc.ConnURL(),
		Slot: sc.PrimarySlotName, Slots: slots, Drop: e.slotDrop, Advance: e.slotAdvance}
	e.emit(e.fitSlots(l))
}

// follow sends a follow line for the member to stream from — leader, or
// the member this node's replicatefrom tag names while that one runs (see
// decide.Upstream) — or standby if its address is unknown. A node tagged
// nostream follows too: pg-supervise then leaves out primary_conninfo.
func (e *Elector) follow(leader string) {
	from := leader
	if e.cluster != nil {
		members := streamers(e.cluster)
		me := members[e.cfg.Name]
		me.ReplicateFrom = e.cfg.Tags.ReplicateFrom()
		members[e.cfg.Name] = me
		if up := decide.Upstream(e.cfg.Name, leader, members); up != "" && e.leaderURL[up] != "" {
			from = up
		}
	}
	url := e.leaderURL[from]
	if url == "" {
		e.emit(rolepipe.Line{Verb: rolepipe.Standby})
		return
	}
	if from != e.upstream {
		if from != leader {
			e.log.Info().Str("upstream", from).Str("leader", leader).Msg("streaming from the member tags.replicatefrom names")
		} else if e.upstream != "" && e.upstream != leader {
			e.log.Info().Str("leader", leader).Str("was", e.upstream).Msg("streaming from the leader: the member tags.replicatefrom names is not running")
		}
		e.upstream = from
	}
	l := rolepipe.Line{Verb: rolepipe.Follow, Leader: from, ConnURL: url}
	if e.dyn.UseSlots && !e.cfg.Tags.NoStream() {
		l.Slot = pg.SlotName(e.cfg.Name)
	}
	if e.cluster != nil {
		l.Slots = e.slots(e.cluster)
		l.Drop, l.Advance = e.slotDrop, e.slotAdvance
		l.Logical = e.logicalCopies(e.cluster)
	}
	e.emit(e.fitSlots(l))
}

// emitWithoutEtcd keeps pg-supervise informed while etcd cannot be read: a
// leader keeps sending lead lines only as long as its own lease validity
// allows, so the deadline it hands over still ends before the server-side
// expiry.
func (e *Elector) emitWithoutEtcd(loc local) {
	switch {
	case e.token != 0:
		if !e.lead(e.line.Slots) {
			e.log.Warn().Msg("lease validity ran out while etcd is unreachable: pg-supervise fences at its deadline")
		}
	default:
		e.resend()
	}
}

// resend re-sends the line in force unless it is a lead line: a lead line
// is never sent without a current token.
func (e *Elector) resend() {
	e.ka.mu.Lock()
	defer e.ka.mu.Unlock()
	if l := e.ka.line; l.Verb != "" && l.Verb != rolepipe.Lead {
		e.out.Set(l)
	}
}

func (e *Elector) writeHeartbeat() {
	hb := state.Lockd{
		Role: "replica", LeaseID: e.lease.ID, TTL: e.lease.TTL, ValidUntil: e.lease.ValidUntil,
		Token: e.token, Line: e.line.String(), Paused: e.dyn.Pause, EtcdOK: e.etcdOK, Updated: e.clock.Now(),
	}
	if e.token != 0 {
		hb.Role = "leader"
		hb.FailsafeMode, hb.FailsafeUntil = e.failsafeDeadline()
	}
	if e.cluster != nil && e.cluster.Leader != nil {
		hb.Leader = e.cluster.Leader.Name
	}
	if err := state.Write(e.node.RuntimeDir, state.LockdFile, hb); err != nil {
		e.log.Warn().Err(err).Msg("writing heartbeat")
	}
}

// members converts the cluster's member keys for lib/decide.
func (e *Elector) members(cl *dcs.Cluster) []decide.Member {
	out := make([]decide.Member, 0, len(cl.Members))
	for _, m := range cl.Members {
		dm := decide.Member{
			Name: m.Name, Running: m.Data.State == "running", Primary: m.Data.Role == "primary" || m.Data.Role == "master",
			Timeline: m.Data.Timeline, NoFailover: config.Tags(m.Data.Tags).NoFailover(),
			Priority: config.Tags(m.Data.Tags).FailoverPriority(), Fresh: m.ModRevision > e.noLeader.rev && e.noLeader.rev > 0,
			PrePromoteFailed: m.Data.PrePromoteFailed,
		}
		if m.Data.XLogLocation != nil {
			dm.Position = *m.Data.XLogLocation
		} else {
			dm.Running = false
		}
		out = append(out, dm)
	}
	return out
}

func (e *Elector) self(loc local) decide.Member {
	return decide.Member{
		Name: e.cfg.Name, Running: loc.running(), Primary: loc.primary(), Timeline: int(loc.status.Timeline),
		Position: loc.position(), NoFailover: e.cfg.Tags.NoFailover(), Priority: e.cfg.Tags.FailoverPriority(), Fresh: true,
	}
}

type clientOp = clientv3.Op
