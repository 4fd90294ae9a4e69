// Package bootstrap is pg-bootstrap's engine: it makes a node's data
// directory ready before pg-supervise starts — initdb for the node that wins
// the cluster's initialize key, a clone of the leader for every other node —
// and refuses a data directory that belongs to another cluster.
package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/dcs"
	"github.com/pg-ha/pg-ha/lib/pg"
	"github.com/pg-ha/pg-ha/lib/pgdata"
)

// Errors a caller maps to exit codes.
var (
	// ErrOtherCluster: the data directory's system identifier is not this
	// cluster's.
	ErrOtherCluster = errors.New("the data directory belongs to another cluster")
	// ErrNoLeader: no leader to clone from appeared in time.
	ErrNoLeader = errors.New("no leader to clone from")
)

// Bootstrapper prepares one node's data directory.
type Bootstrapper struct {
	Node    *pgdata.Node
	DCS     *dcs.Client
	Log     zerolog.Logger
	Timeout time.Duration // how long to wait for a leader to clone
	// Progress, when not nil, receives a clone's or restore's progress
	// reports, about once a second.
	Progress func(pgdata.Progress)
}

// Run makes the data directory ready. It is idempotent: a valid data
// directory of this cluster returns at once. It blocks up to Timeout while
// waiting for a leader; ctx cancels it.
func (b *Bootstrapper) Run(ctx context.Context) error {
	if err := b.Node.EnsureParent(); err != nil {
		return err
	}
	if err := b.setAsideIncomplete(); err != nil {
		return err
	}
	st, cd, err := b.Node.Inspect(ctx)
	if err != nil {
		return err
	}
	cl, err := b.DCS.Get(ctx)
	if err != nil {
		return fmt.Errorf("read the cluster from etcd: %w", err)
	}
	dir := b.Node.DataDir()
	switch st {
	case pgdata.Broken:
		return fmt.Errorf("postgresql.data_dir %s is not empty but holds no PostgreSQL cluster; move it away to bootstrap this node (nothing was touched)", dir)
	case pgdata.Valid:
		sysid := strconv.FormatUint(cd.SystemIdentifier, 10)
		if cl.InitializeSet && cl.Initialize != "" && cl.Initialize != sysid {
			return fmt.Errorf("%w: %s has system identifier %s but cluster %s is %s; refusing to touch it", ErrOtherCluster, dir, sysid, b.Node.Cfg.Scope, cl.Initialize)
		}
		if !cl.InitializeSet {
			// An existing data directory adopts an uninitialized cluster.
			won, err := b.DCS.Initialize(ctx, sysid)
			if err != nil {
				return err
			}
			if !won {
				return b.Run(ctx)
			}
			if err := b.DCS.PutConfigIfAbsent(ctx, mustJSON(b.Node.Cfg.DCSJSON())); err != nil {
				return err
			}
			b.Log.Info().Str("sysid", sysid).Msg("initialized the cluster from the existing data directory")
		}
		b.Log.Info().Str("data_dir", dir).Str("sysid", sysid).Msg("data directory is ready")
		return nil
	}
	// A node that may never lead does not initialize the cluster: it
	// would leave it without a leader. It waits to clone one instead.
	if !cl.InitializeSet && b.mayInitialize() {
		if m := b.Node.Cfg.Bootstrap.Method; m != "" && m != "initdb" && b.Node.Cfg.Bootstrap.Custom == nil {
			// initdb would start an empty cluster where the operator asked
			// for one restored from a backup.
			return fmt.Errorf("bootstrap.method %q: the method has no bootstrap.%s section; refusing to create cluster %s with initdb instead", m, m, b.Node.Cfg.Scope)
		}
		il, lctx, err := b.raceInitialize(ctx)
		if err != nil {
			return err
		}
		if il != nil {
			err := b.initCluster(lctx, il)
			if cause := context.Cause(lctx); err != nil && errors.Is(cause, ErrLostInitialize) {
				err = fmt.Errorf("%w (%w)", cause, err)
			}
			il.release(ctx, b.DCS)
			return err
		}
	}
	return b.clone(ctx)
}

// mayInitialize: a node that may never lead does not initialize the
// cluster, it would leave it without a leader.
func (b *Bootstrapper) mayInitialize() bool {
	return !b.Node.Cfg.Tags.NoFailover() && b.Node.Cfg.Tags.FailoverPriority() > 0
}

func mustJSON(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// initCluster runs initdb, or the custom bootstrap method (bootstrap.method)
// and the recovery it asks for, configures the new cluster, creates its
// roles and publishes the dynamic configuration and the system identifier,
// holding the initialize key on il's lease (ctx ends if the lease is lost)
// until the identifier makes it permanent. A marker next to the data
// directory says it is incomplete until it is set up; an interrupted
// bootstrap leaves it, and the next run moves such a directory aside. On
// failure it removes what it created (the data directory was missing or
// empty before: an empty one is emptied again, not removed); the caller
// revokes the lease, which gives the key back.
func (b *Bootstrapper) initCluster(ctx context.Context, il *initializeLease) (err error) {
	dir := b.Node.DataDir()
	marker := b.incompleteMarker()
	_, statErr := os.Stat(dir)
	existed := statErr == nil
	defer func() {
		if err == nil {
			return
		}
		b.Log.Error().Err(err).Msg("bootstrap failed; cleaning up")
		if existed {
			emptyDir(dir)
		} else {
			_ = os.RemoveAll(dir)
		}
		_ = os.Remove(marker)
	}()
	if err := os.WriteFile(marker, []byte("initdb started "+time.Now().UTC().Format(time.RFC3339)+"\n"), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", marker, err)
	}
	if sc := b.Node.Cfg.Dynamic().StandbyCluster; sc != nil {
		return b.initStandbyCluster(ctx, il, sc, marker)
	}
	var settings map[string]string
	recover := false
	if m := b.Node.Cfg.Bootstrap.Custom; m != nil {
		if settings, recover, err = b.runMethod(ctx, m); err != nil {
			return err
		}
	} else {
		b.Log.Info().Str("data_dir", dir).Msg("this node initializes the cluster: running initdb")
		if err := b.Node.InitDB(ctx); err != nil {
			return err
		}
	}
	cfg := b.Node.Cfg
	d := cfg.Dynamic()
	if err := pgdata.WriteHBA(dir, b.Node.Owner, hbaLines(d.PgHBA), cfg.Postgres.Authentication.Superuser.Username); err != nil {
		return err
	}
	if err := pgdata.WriteConf(dir, b.Node.Owner, b.Node.Parameters(d), nil); err != nil {
		return err
	}
	setup := func(ctx context.Context, conn *pgx.Conn) error {
		if err := b.createRoles(ctx, conn); err != nil {
			return err
		}
		return b.postBootstrap(ctx, conn)
	}
	if recover {
		err = b.recoverThen(ctx, settings, setup)
	} else {
		err = b.withServer(ctx, setup)
	}
	if err != nil {
		return err
	}
	cd, err := pg.ReadControlData(ctx, b.Node.Owner, b.Node.BinDir(), dir)
	if err != nil {
		return err
	}
	sysid := strconv.FormatUint(cd.SystemIdentifier, 10)
	// The data directory is complete: from here an interruption leaves a
	// valid directory, which the next run adopts for the cluster.
	if err := os.Remove(marker); err != nil {
		return fmt.Errorf("remove %s: %w", marker, err)
	}
	if err := b.DCS.PutConfigIfAbsent(ctx, mustJSON(cfg.DCSJSON())); err != nil {
		return err
	}
	if err := b.DCS.CompleteInitialize(ctx, sysid, il.id); err != nil {
		return err
	}
	b.Log.Info().Str("sysid", sysid).Msg("cluster initialized")
	return nil
}

// initStandbyCluster makes the first node of a standby cluster a copy of
// the remote cluster standby_cluster names (its create_replica_methods,
// else basebackup from host:port), then publishes the configuration and
// the remote's system identifier, which this cluster shares. Nothing is
// created in the copy: its roles are the remote's. pg-lockd makes the node
// the standby leader.
func (b *Bootstrapper) initStandbyCluster(ctx context.Context, il *initializeLease, sc *config.StandbyCluster, marker string) error {
	var sources []pgdata.Source
	if conn := sc.ConnURL(); conn != "" {
		sources = []pgdata.Source{{Name: "standby_cluster", ConnURL: conn}}
	}
	b.Log.Info().Str("remote", sc.ConnURL()).Strs("methods", sc.CreateReplicaMethods).
		Msg("this node initializes a standby cluster: copying the remote cluster")
	res, err := b.Node.CreateReplica(ctx, pgdata.CreateOptions{
		Sources: sources, Methods: sc.CreateReplicaMethods, Progress: b.Progress, Log: b.Log,
	})
	if err != nil {
		return fmt.Errorf("copy the remote cluster of standby_cluster: %w", err)
	}
	cd, err := pg.ReadControlData(ctx, b.Node.Owner, b.Node.BinDir(), b.Node.DataDir())
	if err != nil {
		return err
	}
	sysid := strconv.FormatUint(cd.SystemIdentifier, 10)
	if err := os.Remove(marker); err != nil {
		return fmt.Errorf("remove %s: %w", marker, err)
	}
	if err := b.DCS.PutConfigIfAbsent(ctx, mustJSON(b.Node.Cfg.DCSJSON())); err != nil {
		return err
	}
	if err := b.DCS.CompleteInitialize(ctx, sysid, il.id); err != nil {
		return err
	}
	b.Log.Info().Str("sysid", sysid).Str("method", res.Method).Msg("standby cluster initialized")
	return nil
}

// postBootstrap runs bootstrap.post_bootstrap (or its old name post_init)
// as Patroni does, once the new cluster runs and its roles exist: as the
// data directory's owner, with a connection URL for the superuser over the
// server's socket as its only argument and PGPASSFILE set. A failure fails
// the bootstrap, which removes the new data directory, as in Patroni.
func (b *Bootstrapper) postBootstrap(ctx context.Context, conn *pgx.Conn) error {
	script := b.Node.Cfg.Bootstrap.PostBootstrap
	if script == "" {
		script = b.Node.Cfg.Bootstrap.PostInit
	}
	if script == "" {
		return nil
	}
	words, err := config.SplitCommand(script)
	if err != nil || len(words) == 0 {
		return fmt.Errorf("bootstrap.post_bootstrap %q: %v", script, err)
	}
	if err := b.Node.WritePgpass(); err != nil {
		return err
	}
	cc := conn.Config()
	su := b.Node.Cfg.Postgres.Authentication.Superuser.Username
	u := "postgres://" + url.QueryEscape(su) + "@" + url.QueryEscape(cc.Host) + ":" + strconv.Itoa(int(cc.Port)) + "/postgres"
	b.Log.Info().Str("script", script).Msg("running bootstrap.post_bootstrap")
	out, err := pg.Run(ctx, b.Node.Owner, "", words[0], append(words[1:], u), "PGPASSFILE="+b.Node.Pgpass())
	if err != nil {
		return fmt.Errorf("bootstrap.post_bootstrap failed: %w", err)
	}
	if len(out) > 0 {
		b.Log.Info().Str("output", strings.TrimSpace(string(out))).Msg("bootstrap.post_bootstrap done")
	}
	return nil
}

// emptyDir removes what dir holds, keeping dir itself.
func emptyDir(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		_ = os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}

// hbaLines are bootstrap.pg_hba, or a default that lets replicas and
// pg_rewind connect with passwords.
func hbaLines(lines []string) []string {
	if len(lines) > 0 {
		return lines
	}
	return []string{
		"local all all trust",
		"host replication all 0.0.0.0/0 scram-sha-256",
		"host replication all ::/0 scram-sha-256",
		"host all all 0.0.0.0/0 scram-sha-256",
		"host all all ::/0 scram-sha-256",
	}
}

// withServer starts PostgreSQL on a private socket with no TCP listener,
// runs f, and stops it cleanly.
func (b *Bootstrapper) withServer(ctx context.Context, f func(context.Context, *pgx.Conn) error) error {
	n := b.Node
	sock := n.RuntimeDir
	logfile := filepath.Join(n.RuntimeDir, "bootstrap-postgres.log")
	opts := fmt.Sprintf("-c listen_addresses='' -c unix_socket_directories='%s' -c port=%d", sock, n.Cfg.ListenPort())
	if _, err := pg.Run(ctx, n.Owner, n.BinDir(), "pg_ctl", []string{"-D", n.DataDir(), "-w", "-t", "120", "-l", logfile, "-o", opts, "start"}); err != nil {
		return fmt.Errorf("start postgres for bootstrap: %w", err)
	}
	stop := func() error {
		_, err := pg.Run(context.WithoutCancel(ctx), n.Owner, n.BinDir(), "pg_ctl", []string{"-D", n.DataDir(), "-w", "-t", "120", "-m", "fast", "stop"})
		return err
	}
	p := n.Local(5 * time.Second)
	p.Host = sock
	conn, err := pg.Connect(ctx, p)
	if err != nil {
		_ = stop()
		return err
	}
	ferr := f(ctx, conn)
	_ = conn.Close(ctx)
	if err := stop(); err != nil && ferr == nil {
		return fmt.Errorf("stop postgres after bootstrap: %w", err)
	}
	return ferr
}

// createRoles creates the replication and rewind roles and bootstrap.users
// with their passwords; passwords travel inside SQL over the local socket,
// never in arguments. A role that exists already (a cluster restored by a
// custom bootstrap method brings its own) is altered to the configured
// password and attributes instead.
func (b *Bootstrapper) createRoles(ctx context.Context, conn *pgx.Conn) error {
	a := b.Node.Cfg.Postgres.Authentication
	// verb is CREATE, or ALTER for a role that exists.
	verb := func(role string) (string, error) {
		var exists bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1)", role).Scan(&exists); err != nil {
			return "", fmt.Errorf("look up role %s: %w", role, err)
		}
		if exists {
			b.Log.Info().Str("role", role).Msg("role exists: setting its password and attributes")
			return "ALTER", nil
		}
		return "CREATE", nil
	}
	exec := func(what, sql string, args ...any) error {
		var stmt string
		if err := conn.QueryRow(ctx, sql, args...).Scan(&stmt); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	}
	if su := a.Superuser; su.Password != "" {
		if err := exec("set the superuser's password", "SELECT format('ALTER ROLE %I WITH PASSWORD %L', $1::text, $2::text)", su.Username, su.Password); err != nil {
			return err
		}
	}
	if r := a.Replication; r.Username != "" && r.Username != a.Superuser.Username {
		v, err := verb(r.Username)
		if err != nil {
			return err
		}
		if err := exec("set up the replication role", "SELECT format('"+v+" ROLE %I WITH LOGIN REPLICATION PASSWORD %L', $1::text, $2::text)", r.Username, r.Password); err != nil {
			return err
		}
	}
	if r := a.Rewind; r.Username != "" && r.Username != a.Superuser.Username {
		v, err := verb(r.Username)
		if err != nil {
			return err
		}
		if err := exec("set up the rewind role", "SELECT format('"+v+" ROLE %I WITH LOGIN PASSWORD %L', $1::text, $2::text)", r.Username, r.Password); err != nil {
			return err
		}
		for _, fn := range []string{
			"pg_catalog.pg_ls_dir(text, boolean, boolean)",
			"pg_catalog.pg_stat_file(text, boolean)",
			"pg_catalog.pg_read_binary_file(text)",
			"pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)",
		} {
			if err := exec("grant pg_rewind's functions", "SELECT format('GRANT EXECUTE ON FUNCTION "+fn+" TO %I', $1::text)", r.Username); err != nil {
				return err
			}
		}
	}
	for name, u := range b.Node.Cfg.Bootstrap.Users {
		opts := ""
		for _, o := range u.Options {
			switch o {
			case "createrole", "createdb", "superuser", "replication", "inherit", "login", "bypassrls",
				"nocreaterole", "nocreatedb", "nosuperuser", "noreplication", "noinherit", "nologin", "nobypassrls":
				opts += " " + o
			default:
				return fmt.Errorf("bootstrap.users.%s.options: %q is not a role option", name, o)
			}
		}
		v, err := verb(name)
		if err != nil {
			return err
		}
		if err := exec("set up bootstrap user "+name, "SELECT format('"+v+" ROLE %I WITH LOGIN"+opts+" PASSWORD %L', $1::text, $2::text)", name, u.Password); err != nil {
			return err
		}
	}
	return nil
}

// clone waits for a member to copy (the leader, or a replica tagged
// clonefrom) and makes this node a replica of it by the replica creation
// methods. With no member running, a no_leader method may restore one.
func (b *Bootstrapper) clone(ctx context.Context) error {
	deadline := time.Now().Add(b.Timeout)
	var (
		cl      *dcs.Cluster
		sources []pgdata.Source
	)
	for {
		var err error
		cl, err = b.DCS.Get(ctx)
		if err == nil && !cl.InitializeSet && b.mayInitialize() {
			// The node that was initializing the cluster gave up or died
			// (its lease expired): race again.
			b.Log.Info().Msg("the initialize key is free again")
			return b.Run(ctx)
		}
		if err == nil {
			sources = cloneSources(cl, b.Node.Cfg.Name, b.Node.Cfg.Tags.ReplicateFrom())
			if hasLeader(cl, sources) || (cl.Leader == nil && noLeaderMethod(b.Node.Cfg) && cl.Initialize != "") {
				break
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w within %s", ErrNoLeader, b.Timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return b.create(ctx, cl, sources, 1, nil)
}

// create makes the data directory a replica's from sources, retrying the
// methods while the timeout lasts.
func (b *Bootstrapper) create(ctx context.Context, cl *dcs.Cluster, sources []pgdata.Source, keep int,
	check func(context.Context, string) error) error {
	deadline := time.Now().Add(b.Timeout)
	start := time.Now()
	for attempt := 1; ; attempt++ {
		res, err := b.Node.CreateReplica(ctx, pgdata.CreateOptions{
			Sources: sources, SystemID: cl.Initialize, Keep: keep, Check: check,
			Progress: b.Progress, Log: b.Log,
		})
		if err == nil {
			b.Log.Info().Str("method", res.Method).Str("source", res.Source).Str("old_data", res.Kept).
				Dur("took", time.Since(start)).Msg("replica created")
			return nil
		}
		if attempt == 3 || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		b.Log.Warn().Err(err).Int("attempt", attempt).Msg("replica creation failed; retrying")
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}
