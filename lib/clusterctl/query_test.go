package clusterctl

import (
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pg-ha/pg-ha/lib/dcs"
)

func TestQueryTarget(t *testing.T) {
	noLeader := cluster("", m("node1", 1, stopped), m("node2", 1))
	for _, tc := range []struct {
		name         string
		cl           *dcs.Cluster
		member, role string
		want         string
		reason       Reason
	}{
		{"default is the leader", healthy(), "", "", "node1", 0},
		{"primary", healthy(), "", "primary", "node1", 0},
		{"master", healthy(), "", "master", "node1", 0},
		{"replica: first running non-leader", cluster("node1", m("node1", 1, primary), m("node2", 1, stopped), m("node3", 1)), "", "replica", "node3", 0},
		{"any prefers the leader", cluster("node2", m("node1", 1), m("node2", 1, primary)), "", "any", "node2", 0},
		{"any without leader", noLeader, "", "any", "node1", 0},
		{"member", healthy(), "node3", "", "node3", 0},
		{"no such member", healthy(), "node9", "", "", NoSuchMember},
		{"member and role", healthy(), "node2", "replica", "", Usage},
		{"no leader", noLeader, "", "", "", NoLeader},
		{"no running replica", cluster("node1", m("node1", 1, primary), m("node2", 1, stopped)), "", "replica", "", NotEligible},
		{"bad role", healthy(), "", "boss", "", Usage},
	} {
		got, err := QueryTarget(tc.cl, tc.member, tc.role)
		switch {
		case tc.reason != 0:
			if err == nil || ReasonOf(err) != tc.reason {
				t.Errorf("%s: %v %v, want %v", tc.name, got, err, tc.reason)
			}
		case err != nil || got.Name != tc.want:
			t.Errorf("%s: %v %v, want %s", tc.name, got, err, tc.want)
		}
	}
}

func str(s string) *string { return &s }

func TestRenderQuery(t *testing.T) {
	r := QueryResult{Member: "node1", Command: "SELECT 2",
		Columns: []string{"name", "n", "ok", "doc", "note"},
		Rows: [][]*string{
			{str("a"), str("1"), str("t"), str(`{"k": [1, 2]}`), nil},
			{str("b c"), str("2.5"), str("f"), nil, str("x")},
		},
		types: []uint32{25, oidNumeric, oidBool, oidJSONB, 25}}
	for _, tc := range []struct{ format, delim, want string }{
		{"tsv", "", "name\tn\tok\tdoc\tnote\na\t1\tt\t{\"k\": [1, 2]}\t\nb c\t2.5\tf\t\tx\n"},
		{"", ";", "name;n;ok;doc;note\na;1;t;{\"k\": [1, 2]};\nb c;2.5;f;;x\n"},
		{"pretty", "", "+------+-----+----+---------------+------+\n" +
			"| name | n   | ok | doc           | note |\n" +
			"+------+-----+----+---------------+------+\n" +
			"| a    | 1   | t  | {\"k\": [1, 2]} |      |\n" +
			"| b c  | 2.5 | f  |               | x    |\n" +
			"+------+-----+----+---------------+------+\n"},
		{"json", "", `[
  {
    "doc": {
      "k": [
        1,
        2
      ]
    },
    "n": 1,
    "name": "a",
    "note": null,
    "ok": true
  },
  {
    "doc": null,
    "n": 2.5,
    "name": "b c",
    "note": "x",
    "ok": false
  }
]
`},
		{"yaml", "", "- name: a\n  n: 1\n  ok: true\n  doc:\n    k:\n      - 1\n      - 2\n  note: null\n" +
			"- name: b c\n  n: 2.5\n  ok: false\n  doc: null\n  note: x\n"},
	} {
		got, err := RenderQuery(r, tc.format, tc.delim)
		if err != nil || got != tc.want {
			t.Errorf("format %q:\n got %q (%v)\nwant %q", tc.format, got, err, tc.want)
		}
	}
	if _, err := RenderQuery(r, "xml", ""); ReasonOf(err) != Usage {
		t.Errorf("format xml: %v, want a usage failure", err)
	}
	// A statement without rows prints its command tag.
	if got, _ := RenderQuery(QueryResult{Command: "CREATE TABLE"}, "tsv", ""); got != "CREATE TABLE\n" {
		t.Errorf("no rows: %q", got)
	}
}

// The rows are the last statement's that returned any; the command tag is
// the last statement's.
func TestFillResultKeepsLastRows(t *testing.T) {
	results := []*pgconn.Result{
		{FieldDescriptions: []pgconn.FieldDescription{{Name: "a", DataTypeOID: 23}}, Rows: [][][]byte{{[]byte("1")}}, CommandTag: pgconn.NewCommandTag("SELECT 1")},
		{FieldDescriptions: []pgconn.FieldDescription{{Name: "b", DataTypeOID: 25}}, Rows: [][][]byte{{nil}, {[]byte("x")}}, CommandTag: pgconn.NewCommandTag("SELECT 2")},
		{CommandTag: pgconn.NewCommandTag("SET")},
	}
	var r QueryResult
	fillResult(&r, results)
	if len(r.Columns) != 1 || r.Columns[0] != "b" || len(r.Rows) != 2 || r.Rows[0][0] != nil || *r.Rows[1][0] != "x" || r.Command != "SET" {
		t.Errorf("got %+v", r)
	}
}
