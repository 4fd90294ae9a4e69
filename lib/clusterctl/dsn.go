package clusterctl

import (
	"net"
	"net/url"
	"sort"
	"strings"

	"github.com/pg-ha/pg-ha/lib/dcs"
)

// DSN is a member's libpq connection string, as `dsn` prints it.
type DSN struct {
	Member string `json:"member"`
	Role   string `json:"role"`
	DSN    string `json:"dsn"`
}

// MemberDSN returns the connection string of member (the leader when
// member is "") from its conn_url, in the key=value form libpq and psql
// accept, like patronictl dsn: host, port (5432 when the URL has none),
// dbname, user, then the URL's query parameters. A password is never
// printed. Failures: NoLeader (no member named and nobody leads),
// NoSuchMember, and Unknown for a member without a usable conn_url. It is
// pure.
func MemberDSN(cl *dcs.Cluster, member string) (DSN, error) {
	role := "replica"
	if member == "" {
		if cl.Leader == nil {
			return DSN{}, fail(NoLeader, "no leader: nobody holds the leader key; name a member: dsn NAME")
		}
		member = cl.Leader.Name
	}
	if cl.Leader != nil && cl.Leader.Name == member {
		role = "leader"
	}
	m := cl.Member(member)
	if m == nil {
		var as []Assessment
		for _, m := range cl.Members {
			as = append(as, Assessment{Name: m.Name})
		}
		return DSN{}, fail(NoSuchMember, "no such member: %s (members: %s)", member, names(as))
	}
	s, err := connString(m.Data.ConnURL)
	if err != nil {
		return DSN{}, fail(Unknown, "%s has no usable conn_url in its member key (%q): %v", member, m.Data.ConnURL, err)
	}
	return DSN{Member: member, Role: role, DSN: s}, nil
}

// connString converts a postgres:// URL to libpq's key=value form without
// its password.
func connString(connURL string) (string, error) {
	u, err := url.Parse(connURL)
	if err != nil {
		return "", err
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" || u.Host == "" {
		return "", errNotURL
	}
	host, port := u.Host, "5432"
	if h, p, err := net.SplitHostPort(u.Host); err == nil {
		host, port = h, p
	} else {
		host = strings.Trim(host, "[]")
	}
	kv := [][2]string{{"host", host}, {"port", port}}
	if db := strings.TrimPrefix(u.Path, "/"); db != "" {
		kv = append(kv, [2]string{"dbname", db})
	}
	if u.User != nil && u.User.Username() != "" {
		kv = append(kv, [2]string{"user", u.User.Username()})
	}
	q := u.Query()
	keys := make([]string, 0, len(q))
	for k := range q {
		if k != "password" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		kv = append(kv, [2]string{k, q.Get(k)})
	}
	parts := make([]string, len(kv))
	for i, p := range kv {
		parts[i] = p[0] + "=" + quoteConnValue(p[1])
	}
	return strings.Join(parts, " "), nil
}

type urlError string

func (e urlError) Error() string { return string(e) }

const errNotURL = urlError("not a postgres:// URL with a host")

// quoteConnValue quotes a value as libpq's conninfo parser reads it: single
// quotes around an empty value or one with spaces, quotes or backslashes,
// which are escaped with a backslash.
func quoteConnValue(v string) string {
	if v != "" && !strings.ContainsAny(v, " '\\\t\n") {
		return v
	}
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return "'" + r.Replace(v) + "'"
}
