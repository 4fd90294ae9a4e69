package pg

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
)

// Defaults applied by ConnParams when a field is zero.
const (
	DefaultDatabase       = "postgres"
	DefaultConnectTimeout = 2 * time.Second
)

// ConnParams says how to reach a PostgreSQL server. Passwords never go into
// process arguments, connection strings or logs: a pgpass file (Passfile)
// carries them, or Password is set on the driver's configuration directly.
// String and ConnString leave the password out; it is also excluded from
// JSON.
type ConnParams struct {
	Host     string // a unix socket directory (starts with '/') or a TCP host name or address
	Port     int    // 0: libpq's default, 5432
	User     string // empty: libpq's default, the OS user name
	Database string // default "postgres"
	Passfile string // pgpass file path; empty: libpq's default, ~/.pgpass
	// Password, when not empty, is used instead of a pgpass lookup by
	// Connect and TimelineHistory. It never appears in ConnString.
	Password        string        `json:"-"`
	ConnectTimeout  time.Duration // default 2 s; rounded up to whole seconds in ConnString
	ApplicationName string
	// Replication asks for a physical replication connection
	// (replication=true), which accepts replication commands such as
	// IDENTIFY_SYSTEM and TIMELINE_HISTORY over the simple query protocol
	// only.
	Replication bool
	// CancelGrace, when positive, keeps a connection of Connect across a
	// statement whose context ends: PostgreSQL is sent a cancel request
	// (which takes no connection slot) and given CancelGrace to answer
	// before the connection is closed. A program that keeps one connection
	// open so that it can still observe a server whose slots are all taken
	// sets it; a statement interrupted in time then fails with SQLSTATE
	// 57014 and the connection stays usable. Zero closes the connection at
	// once, pgx's default.
	CancelGrace time.Duration `json:"-"`
	// Extra holds further libpq keywords (sslmode, sslrootcert,
	// target_session_attrs, …), emitted in key order after the others.
	// A "password" key is ignored: use Password or Passfile.
	Extra map[string]string
}

// ConnString returns p as a libpq keyword/value connection string (usable as
// primary_conninfo, by psql or by pgx), without any password: the password
// comes from passfile=… or from ConnParams.Password at connect time. Values
// that are empty or contain spaces, quotes or backslashes are single-quoted
// with backslash escapes, per libpq's rules. It does no I/O.
func (p ConnParams) ConnString() string {
	var b strings.Builder
	add := func(k, v string) {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(quoteConnValue(v))
	}
	if p.Host != "" {
		add("host", p.Host)
	}
	if p.Port != 0 {
		add("port", strconv.Itoa(p.Port))
	}
	if p.User != "" {
		add("user", p.User)
	}
	add("dbname", p.database())
	if p.Passfile != "" {
		add("passfile", p.Passfile)
	}
	add("connect_timeout", strconv.Itoa(int(math.Ceil(p.connectTimeout().Seconds()))))
	if p.ApplicationName != "" {
		add("application_name", p.ApplicationName)
	}
	if p.Replication {
		add("replication", "true")
	}
	keys := make([]string, 0, len(p.Extra))
	for k := range p.Extra {
		switch k {
		case "password", "host", "port", "user", "dbname", "passfile", "connect_timeout",
			"application_name", "replication":
			continue
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		add(k, p.Extra[k])
	}
	return b.String()
}

// String returns ConnString(), so that printing ConnParams never shows the
// password.
func (p ConnParams) String() string { return p.ConnString() }

// GoString returns ConnString() for %#v, for the same reason as String.
func (p ConnParams) GoString() string { return "pg.ConnParams(" + strconv.Quote(p.ConnString()) + ")" }

func (p ConnParams) database() string {
	if p.Database == "" {
		return DefaultDatabase
	}
	return p.Database
}

func (p ConnParams) connectTimeout() time.Duration {
	if p.ConnectTimeout <= 0 {
		return DefaultConnectTimeout
	}
	return p.ConnectTimeout
}

// address is host:port for error messages.
func (p ConnParams) address() string {
	port := p.Port
	if port == 0 {
		port = 5432
	}
	return net.JoinHostPort(p.Host, strconv.Itoa(port))
}

// quoteConnValue quotes v for a libpq keyword/value connection string.
func quoteConnValue(v string) string {
	if v != "" && !strings.ContainsAny(v, " \t\n\r\f\v'\\") {
		return v
	}
	var b strings.Builder
	b.WriteByte('\'')
	for _, r := range v {
		if r == '\'' || r == '\\' {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('\'')
	return b.String()
}

// pgxConfig parses p into a pgx configuration with the password and
// the exact connect timeout applied.
func (p ConnParams) pgxConfig() (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(p.ConnString())
	if err != nil {
		return nil, err
	}
	applyParams(&cfg.Config, p)
	if p.CancelGrace > 0 {
		cfg.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
			return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: p.CancelGrace}
		}
	}
	return cfg, nil
}

func applyParams(cfg *pgconn.Config, p ConnParams) {
	if p.Password != "" {
		cfg.Password = p.Password
	}
	cfg.ConnectTimeout = p.connectTimeout()
	// pgx runs simple-protocol queries only with client_encoding UTF8,
	// which a SQL_ASCII database (initdb under LC_ALL=C without
	// bootstrap.initdb's encoding) does not report unless asked.
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	if _, ok := cfg.RuntimeParams["client_encoding"]; !ok {
		cfg.RuntimeParams["client_encoding"] = "UTF8"
	}
}

// Connect opens one connection to the server p describes. It blocks until
// the server accepted the connection (or refused it), for at most
// p.ConnectTimeout (default 2 s) per address tried, and returns early when
// ctx is done. The password is p.Password if set, else looked up in
// p.Passfile (or ~/.pgpass, or $PGPASSWORD, as libpq would). Errors are
// wrapped "connect to postgres at host:port: …" and keep the
// *pgconn.ConnectError / *pgconn.PgError reachable (an authentication
// failure has SQLState 28P01 or 28000). The caller closes the connection.
func Connect(ctx context.Context, p ConnParams) (*pgx.Conn, error) {
	cfg, err := p.pgxConfig()
	if err != nil {
		return nil, fmt.Errorf("connect to postgres at %s: %w", p.address(), err)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to postgres at %s: %w", p.address(), err)
	}
	return conn, nil
}

// connectReplication opens a low-level connection for replication commands.
func connectReplication(ctx context.Context, p ConnParams) (*pgconn.PgConn, error) {
	p.Replication = true
	cfg, err := pgconn.ParseConfig(p.ConnString())
	if err != nil {
		return nil, fmt.Errorf("connect to postgres at %s: %w", p.address(), err)
	}
	applyParams(cfg, p)
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to postgres at %s: %w", p.address(), err)
	}
	return conn, nil
}

// SQLState returns the SQLSTATE code of the server error err wraps (such as
// "42710" for duplicate_object), or "" if err does not come from the server.
// It does no I/O.
func SQLState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}
