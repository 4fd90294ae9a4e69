package clusterctl

import (
	"testing"

	"github.com/pg-ha/pg-ha/lib/dcs"
)

func TestMemberDSN(t *testing.T) {
	url := func(u string) func(*dcs.MemberData) { return func(d *dcs.MemberData) { d.ConnURL = u } }
	cl := cluster("node1",
		m("node1", 1, primary, url("postgres://10.0.0.1:5432/postgres")),
		m("node2", 1, url("postgresql://app:s3cret@10.0.0.2/app%20db?sslmode=require&password=oops&application_name=x")),
		m("node3", 1, url("postgres://[fd00::3]:6432/postgres")),
		m("node4", 1, url("")),
	)
	for _, tc := range []struct {
		member, want, role string
		reason             Reason
	}{
		{"", "host=10.0.0.1 port=5432 dbname=postgres", "leader", Unknown},
		{"node1", "host=10.0.0.1 port=5432 dbname=postgres", "leader", Unknown},
		{"node2", "host=10.0.0.2 port=5432 dbname='app db' user=app application_name=x sslmode=require", "replica", Unknown},
		{"node3", "host=fd00::3 port=6432 dbname=postgres", "replica", Unknown},
		{"node4", "", "", Unknown + 100},
		{"node9", "", "", NoSuchMember},
	} {
		d, err := MemberDSN(cl, tc.member)
		switch {
		case tc.reason == Unknown+100:
			if err == nil || ReasonOf(err) != Unknown {
				t.Errorf("%q: %v, want a failure for the missing conn_url", tc.member, err)
			}
		case tc.reason != Unknown:
			if ReasonOf(err) != tc.reason {
				t.Errorf("%q: %v, want %v", tc.member, err, tc.reason)
			}
		case err != nil:
			t.Errorf("%q: %v", tc.member, err)
		case d.DSN != tc.want || d.Role != tc.role:
			t.Errorf("%q = %+v, want %q (%s)", tc.member, d, tc.want, tc.role)
		}
	}
	if _, err := MemberDSN(cluster("", m("node2", 1)), ""); ReasonOf(err) != NoLeader {
		t.Errorf("no leader: %v, want NoLeader", err)
	}
	if got := quoteConnValue(`it's\x`); got != `'it\'s\\x'` {
		t.Errorf("quote = %s", got)
	}
}
