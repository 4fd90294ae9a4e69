package clusterctl

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"gopkg.in/yaml.v3"

	"github.com/pg-ha/pg-ha/lib/dcs"
)

// Query formats, as patronictl query's --format.
var QueryFormats = []string{"tsv", "pretty", "json", "yaml"}

// QueryTarget picks the member patronictl query would: member by name
// when given, else by role: "leader" (also "primary", "master", and the
// default ""), "replica" (also "standby": the first running member that
// does not lead), or "any" (the leader if there is one, else the first
// member). Failures: NoSuchMember, NoLeader, NotEligible (no replica runs),
// Usage (both member and role, or an unknown role). It is pure.
func QueryTarget(cl *dcs.Cluster, member, role string) (*dcs.Member, error) {
	if member != "" {
		if role != "" {
			return nil, UsageError("--role and --member are mutually exclusive options")
		}
		m := cl.Member(member)
		if m == nil {
			var as []Assessment
			for _, m := range cl.Members {
				as = append(as, Assessment{Name: m.Name})
			}
			return nil, fail(NoSuchMember, "no such member: %s (members: %s)", member, names(as))
		}
		return m, nil
	}
	leader := ""
	if cl.Leader != nil {
		leader = cl.Leader.Name
	}
	switch role {
	case "", "leader", "primary", "master":
		if leader == "" || cl.Member(leader) == nil {
			return nil, fail(NoLeader, "no leader: nobody holds the leader key; name a member with --member")
		}
		return cl.Member(leader), nil
	case "replica", "standby":
		for i := range cl.Members {
			if m := &cl.Members[i]; m.Name != leader && m.Data.State == "running" {
				return m, nil
			}
		}
		return nil, fail(NotEligible, "no running replica to query")
	case "any":
		if leader != "" && cl.Member(leader) != nil {
			return cl.Member(leader), nil
		}
		if len(cl.Members) > 0 {
			return &cl.Members[0], nil
		}
		return nil, fail(NoSuchMember, "the cluster has no members")
	}
	return nil, UsageError("--role %s: want leader, primary, replica or any", role)
}

// QueryOptions say what Query runs where and as whom.
type QueryOptions struct {
	// Member or Role pick the member (QueryTarget).
	Member, Role string
	// SQL is one or more statements; the last one's rows are returned.
	SQL string
	// User and Password log in (default: postgresql.authentication's
	// superuser of the YAML); Database is the database (default: the
	// member's conn_url's, else postgres).
	User, Password, Database string
	// Timeout bounds the connection and the statements (0: none beyond ctx).
	Timeout time.Duration
}

// QueryResult is what a query returned: the member it ran on, the column
// names and the rows of the last statement that returned rows (Values are
// PostgreSQL's text form, nil for NULL), and the last statement's command
// tag.
type QueryResult struct {
	Member  string      `json:"member"`
	Columns []string    `json:"columns"`
	Rows    [][]*string `json:"rows"`
	Command string      `json:"command"`
	// types are the columns' type OIDs, for typed JSON and YAML.
	types []uint32
}

// Query runs o.SQL on the member QueryTarget picks, through its conn_url
// with the YAML's superuser credentials unless o names others, like
// patronictl query. A statement that fails is an Unknown failure naming
// the member and PostgreSQL's message and SQLSTATE. It blocks for one etcd
// request, the connection and the statements, bounded by ctx and
// o.Timeout.
func (c *Ctl) Query(ctx context.Context, o QueryOptions) (QueryResult, error) {
	if o.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Timeout)
		defer cancel()
	}
	cl, err := c.DCS.Get(ctx)
	if err != nil {
		return QueryResult{}, err
	}
	m, err := QueryTarget(cl, o.Member, o.Role)
	if err != nil {
		return QueryResult{}, err
	}
	res := QueryResult{Member: m.Name}
	dsn, err := connString(m.Data.ConnURL)
	if err != nil {
		return res, fail(Unknown, "%s has no usable conn_url in its member key (%q): %v", m.Name, m.Data.ConnURL, err)
	}
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return res, fmt.Errorf("%s's conn_url: %w", m.Name, err)
	}
	su := c.Cfg.Postgres.Authentication.Superuser
	switch {
	case o.User != "":
		cfg.User = o.User
		if o.Password != "" || o.User == su.Username {
			cfg.Password = o.Password
			if o.Password == "" {
				cfg.Password = su.Password
			}
		}
	case su.Username != "":
		cfg.User, cfg.Password = su.Username, su.Password
	}
	if o.Password != "" {
		cfg.Password = o.Password
	}
	if o.Database != "" {
		cfg.Database = o.Database
	}
	if cfg.Database == "" {
		cfg.Database = "postgres"
	}
	cfg.RuntimeParams["application_name"] = "pg-failover query"
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return res, fmt.Errorf("connect to %s (%s:%d): %w", m.Name, cfg.Host, cfg.Port, err)
	}
	defer conn.Close(context.Background())
	results, err := conn.Exec(ctx, o.SQL).ReadAll()
	if err != nil {
		return res, fail(Unknown, "query on %s: %s", m.Name, strings.ReplaceAll(err.Error(), "\n", " "))
	}
	fillResult(&res, results)
	return res, nil
}

// fillResult keeps the rows of the last result that has columns, and the
// last command tag.
func fillResult(res *QueryResult, results []*pgconn.Result) {
	for _, r := range results {
		res.Command = r.CommandTag.String()
		if r.FieldDescriptions == nil {
			continue
		}
		res.Columns, res.types, res.Rows = nil, nil, [][]*string{}
		for _, f := range r.FieldDescriptions {
			res.Columns = append(res.Columns, f.Name)
			res.types = append(res.types, f.DataTypeOID)
		}
		for _, row := range r.Rows {
			vals := make([]*string, len(row))
			for i, v := range row {
				if v != nil {
					s := string(v)
					vals[i] = &s
				}
			}
			res.Rows = append(res.Rows, vals)
		}
	}
}

// PostgreSQL type OIDs that JSON and YAML output give their own types.
const (
	oidBool    = 16
	oidInt8    = 20
	oidInt2    = 21
	oidInt4    = 23
	oidOID     = 26
	oidJSON    = 114
	oidFloat4  = 700
	oidFloat8  = 701
	oidNumeric = 1700
	oidJSONB   = 3802
)

// typed is a value for JSON and YAML: a number, a boolean, a JSON
// document, else the text; nil for NULL.
func typed(v *string, oid uint32) any {
	if v == nil {
		return nil
	}
	s := *v
	switch oid {
	case oidBool:
		return s == "t"
	case oidInt2, oidInt4, oidInt8, oidOID, oidFloat4, oidFloat8, oidNumeric:
		if json.Valid([]byte(s)) {
			return json.Number(s)
		}
	case oidJSON, oidJSONB:
		var x any
		if json.Unmarshal([]byte(s), &x) == nil {
			return x
		}
	}
	return s
}

// Records are the rows as column → value maps, as patronictl query's
// json and yaml formats print them.
func (r QueryResult) Records() []map[string]any {
	out := make([]map[string]any, 0, len(r.Rows))
	for _, row := range r.Rows {
		rec := make(map[string]any, len(row))
		for i, v := range row {
			var oid uint32
			if i < len(r.types) {
				oid = r.types[i]
			}
			rec[r.Columns[i]] = typed(v, oid)
		}
		out = append(out, rec)
	}
	return out
}

// RenderQuery prints r in format (QueryFormats; "" is tsv): tsv is a
// header line and one line per row, cells joined by delimiter (default a
// tab; NULL is empty); pretty is a framed table; json and yaml are a list
// of column → value maps. A statement without rows prints its command
// tag (in tsv and pretty). It is pure.
func RenderQuery(r QueryResult, format, delimiter string) (string, error) {
	if delimiter == "" {
		delimiter = "\t"
	}
	cell := func(v *string) string {
		if v == nil {
			return ""
		}
		return *v
	}
	switch format {
	case "", "tsv":
		if r.Columns == nil {
			return r.Command + "\n", nil
		}
		var b strings.Builder
		b.WriteString(strings.Join(r.Columns, delimiter) + "\n")
		for _, row := range r.Rows {
			cells := make([]string, len(row))
			for i, v := range row {
				cells[i] = cell(v)
			}
			b.WriteString(strings.Join(cells, delimiter) + "\n")
		}
		return b.String(), nil
	case "pretty":
		if r.Columns == nil {
			return r.Command + "\n", nil
		}
		t := table{columns: r.Columns}
		for _, row := range r.Rows {
			cells := make([]string, len(row))
			for i, v := range row {
				cells[i] = strings.ReplaceAll(cell(v), "\n", " ")
			}
			t.rows = append(t.rows, cells)
		}
		return t.String(), nil
	case "json":
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetIndent("", "  ")
		err := enc.Encode(r.Records())
		return b.String(), err
	case "yaml", "yml":
		var b bytes.Buffer
		enc := yaml.NewEncoder(&b)
		enc.SetIndent(2)
		err := enc.Encode(yamlRecords(r))
		return b.String(), err
	}
	return "", UsageError("--format %s: want one of %s", format, strings.Join(QueryFormats, ", "))
}

// yamlRecords are Records with json.Number turned into YAML numbers.
func yamlRecords(r QueryResult) []yaml.Node {
	var out []yaml.Node
	for _, rec := range r.Records() {
		var n yaml.Node
		n.Kind = yaml.MappingNode
		for _, col := range r.Columns {
			v := rec[col]
			var vn yaml.Node
			switch x := v.(type) {
			case json.Number:
				vn = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!float", Value: x.String()}
				if _, err := x.Int64(); err == nil {
					vn.Tag = "!!int"
				}
			default:
				if err := vn.Encode(v); err != nil {
					vn = yaml.Node{Kind: yaml.ScalarNode, Value: fmt.Sprint(v)}
				}
			}
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: col}, &vn)
		}
		out = append(out, n)
	}
	return out
}
