package pgdata

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/pg"
)

// Node is what the daemons derive from one node's configuration.
type Node struct {
	Cfg        *config.Config
	RuntimeDir string
	Owner      pg.Owner
}

// DataDir returns the absolute data directory.
func (n *Node) DataDir() string { return absFrom("", n.Cfg.Postgres.DataDir) }

// BinDir returns the directory of the PostgreSQL binaries.
func (n *Node) BinDir() string { return n.Cfg.BinDir() }

// Pgpass returns the pgpass file the node's connections use.
func (n *Node) Pgpass() string {
	if p := n.Cfg.Postgres.PgPass; p != "" {
		return absFrom("", p)
	}
	return filepath.Join(n.RuntimeDir, "pgpass")
}

// SocketDir returns the first unix socket directory PostgreSQL listens in:
// unix_socket_directories from the configuration (relative to the data
// directory, as PostgreSQL resolves it), else the runtime directory.
func (n *Node) SocketDir() string {
	if v, ok := n.Cfg.Postgres.Parameters["unix_socket_directories"]; ok {
		first := strings.TrimSpace(strings.Split(config.ParamString(v), ",")[0])
		first = strings.Trim(first, `'"`)
		if first != "" {
			return absFrom(n.DataDir(), first)
		}
	}
	return n.RuntimeDir
}

func absFrom(base, p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	if base == "" {
		if a, err := filepath.Abs(p); err == nil {
			return a
		}
		return p
	}
	return filepath.Join(base, p)
}

// Local returns how to connect to the local PostgreSQL as the superuser
// over its unix socket.
func (n *Node) Local(timeout time.Duration) pg.ConnParams {
	su := n.Cfg.Postgres.Authentication.Superuser
	return pg.ConnParams{
		Host: n.SocketDir(), Port: n.Cfg.ListenPort(), User: su.Username, Password: su.Password,
		Database: "postgres", ConnectTimeout: timeout, ApplicationName: "pg-ha",
	}
}

// Remote returns how to reach a member at connURL (postgres://host:port/db)
// with the credentials c, using the node's pgpass file.
func (n *Node) Remote(connURL string, c config.Credentials, replication bool) (pg.ConnParams, error) {
	u, err := url.Parse(connURL)
	if err != nil || u.Host == "" {
		return pg.ConnParams{}, fmt.Errorf("conn_url %q is not postgres://host:port/db", connURL)
	}
	host, portS, err := net.SplitHostPort(u.Host)
	if err != nil {
		host, portS = u.Hostname(), "5432"
	}
	port, err := strconv.Atoi(portS)
	if err != nil {
		return pg.ConnParams{}, fmt.Errorf("conn_url %q has a bad port", connURL)
	}
	db := strings.TrimPrefix(u.Path, "/")
	if db == "" || replication {
		db = "postgres"
	}
	p := pg.ConnParams{
		Host: host, Port: port, User: c.Username, Database: db, Passfile: n.Pgpass(),
		ConnectTimeout: 3 * time.Second, ApplicationName: n.Cfg.Name, Replication: replication,
		Extra: map[string]string{},
	}
	for k, v := range map[string]string{"sslmode": c.SSLMode, "sslcert": c.SSLCert, "sslkey": c.SSLKey,
		"sslrootcert": c.SSLRootCert, "sslcrl": c.SSLCRL, "gssencmode": c.GSSEncMode, "channel_binding": c.ChannelBinding} {
		if v != "" {
			p.Extra[k] = v
		}
	}
	if len(p.Extra) == 0 {
		p.Extra = nil
	}
	return p, nil
}

// RewindCredentials returns the role pg_rewind connects as: the rewind user
// when configured, else the superuser.
func (n *Node) RewindCredentials() config.Credentials {
	if r := n.Cfg.Postgres.Authentication.Rewind; r.Username != "" {
		return r
	}
	return n.Cfg.Postgres.Authentication.Superuser
}

// WritePgpass writes the node's pgpass file with the passwords of the
// superuser, replication and rewind roles.
func (n *Node) WritePgpass() error {
	var entries []pg.PassEntry
	a := n.Cfg.Postgres.Authentication
	for _, c := range []config.Credentials{a.Replication, a.Superuser, a.Rewind} {
		if c.Username != "" && c.Password != "" {
			entries = append(entries, pg.PassEntry{Host: "*", Port: "*", Database: "*", User: c.Username, Password: c.Password})
		}
	}
	return pg.WritePgpass(n.Pgpass(), n.Owner, entries)
}

// Parameters returns the settings pg-ha writes into postgresql.conf for this
// node: ServerParameters without the list of overrides.
func (n *Node) Parameters(d config.Dynamic) map[string]string {
	p, _ := n.ServerParameters(d)
	return p
}

// OwnerFor returns the account PostgreSQL runs as: the data directory's
// owner if it exists, else the current user when not root, else "postgres".
// A data directory owned by root is an error: PostgreSQL refuses to run as
// root.
func OwnerFor(cfg *config.Config) (pg.Owner, error) {
	if o, err := pg.DataDirOwner(absFrom("", cfg.Postgres.DataDir)); err == nil {
		if o.UID == 0 {
			return pg.Owner{}, fmt.Errorf("postgresql.data_dir %s is owned by root; PostgreSQL refuses to run as root: chown it to postgres", cfg.Postgres.DataDir)
		}
		return o, nil
	}
	if os.Geteuid() != 0 {
		u, err := user.Current()
		if err != nil {
			return pg.Owner{}, fmt.Errorf("look up the current user: %w", err)
		}
		return pg.LookupOwner(u.Username)
	}
	return pg.LookupOwner("postgres")
}
