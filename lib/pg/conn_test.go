package pg

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestConnString(t *testing.T) {
	tests := []struct {
		name string
		p    ConnParams
		want string
	}{
		{"defaults", ConnParams{},
			"dbname=postgres connect_timeout=2"},
		{"socket", ConnParams{Host: "/run/postgresql", Port: 5433, User: "postgres"},
			"host=/run/postgresql port=5433 user=postgres dbname=postgres connect_timeout=2"},
		{"everything", ConnParams{
			Host: "10.0.0.1", Port: 5432, User: "replicator", Database: "db", Passfile: "/var/lib/pg-ha/pgpass",
			Password: "secret", ConnectTimeout: 1500 * time.Millisecond, ApplicationName: "node1", Replication: true,
			Extra: map[string]string{"sslmode": "require", "target_session_attrs": "read-write", "password": "secret2", "host": "evil"},
		}, "host=10.0.0.1 port=5432 user=replicator dbname=db passfile=/var/lib/pg-ha/pgpass connect_timeout=2 " +
			"application_name=node1 replication=true sslmode=require target_session_attrs=read-write"},
		{"quoting", ConnParams{
			Host: "/tmp/dir with space", User: `o'brien`, Database: `back\slash`, Passfile: "", ApplicationName: "",
			ConnectTimeout: 10 * time.Second, Extra: map[string]string{"options": "-c a=b", "sslrootcert": ""},
		}, `host='/tmp/dir with space' user='o\'brien' dbname='back\\slash' connect_timeout=10 options='-c a=b' sslrootcert=''`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.p.ConnString()
			if got != tt.want {
				t.Errorf("ConnString() =\n%s\nwant\n%s", got, tt.want)
			}
			if strings.Contains(got, "secret") || strings.Contains(got, "password") {
				t.Errorf("ConnString() = %q leaks the password", got)
			}
		})
	}
}

// A driver that implements libpq's parsing rules reads back what
// ConnString wrote.
func TestConnStringRoundTrip(t *testing.T) {
	p := ConnParams{
		Host: "/tmp/it's a \\ dir", Port: 6543, User: `we ird'\user`, Database: "d b",
		ConnectTimeout: 3 * time.Second, ApplicationName: "app name", Replication: true,
	}
	cfg, err := pgconn.ParseConfig(p.ConnString())
	if err != nil {
		t.Fatalf("ParseConfig(%q): %v", p.ConnString(), err)
	}
	if cfg.Host != p.Host || cfg.Port != uint16(p.Port) || cfg.User != p.User || cfg.Database != p.Database {
		t.Errorf("parsed host=%q port=%d user=%q database=%q, want %q %d %q %q",
			cfg.Host, cfg.Port, cfg.User, cfg.Database, p.Host, p.Port, p.User, p.Database)
	}
	if cfg.ConnectTimeout != 3*time.Second {
		t.Errorf("parsed connect timeout %v, want 3s", cfg.ConnectTimeout)
	}
	if cfg.RuntimeParams["application_name"] != "app name" || cfg.RuntimeParams["replication"] != "true" {
		t.Errorf("parsed runtime params %v", cfg.RuntimeParams)
	}
}

func TestConnParamsNeverPrintPassword(t *testing.T) {
	p := ConnParams{Host: "h", User: "u", Password: "hunter2"}
	js, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{fmt.Sprint(p), fmt.Sprintf("%+v", p), fmt.Sprintf("%#v", p), fmt.Sprintf("%s", &p), string(js)} {
		if strings.Contains(s, "hunter2") {
			t.Errorf("printed form %q contains the password", s)
		}
	}
}

func TestConnectErrorNamesAddress(t *testing.T) {
	// Nothing listens on port 1 of the loopback address.
	_, err := Connect(t.Context(), ConnParams{Host: "127.0.0.1", Port: 1, User: "x", ConnectTimeout: time.Second})
	if err == nil || !strings.HasPrefix(err.Error(), "connect to postgres at 127.0.0.1:1: ") {
		t.Fatalf("Connect error = %v, want it prefixed with the address", err)
	}
	var ce *pgconn.ConnectError
	if !errors.As(err, &ce) {
		t.Errorf("Connect error %T does not wrap *pgconn.ConnectError", err)
	}
}
