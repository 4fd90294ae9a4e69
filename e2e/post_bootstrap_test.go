package e2e

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pg-ha/pg-ha/lib/testcluster"
)

// TestPostBootstrap: bootstrap.post_bootstrap runs once, on the node that
// initializes the cluster, after its roles exist, as the data directory's
// owner, with a connection URL for the superuser and PGPASSFILE set, as in
// Patroni; what it creates is on every node.
func TestPostBootstrap(t *testing.T) {
	dir, err := os.MkdirTemp("", "pgha-postbootstrap-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "post-bootstrap.sh")
	body := "#!/bin/sh\nset -e\n[ -r \"$PGPASSFILE\" ] || exit 3\n" +
		"exec " + filepath.Join(testcluster.PGBinDir, "psql") + " \"$1\" -X -v ON_ERROR_STOP=1 -c " +
		"\"CREATE TABLE post_bootstrap_ran AS SELECT current_user::text AS who, session_user::text AS via, '$(id -un)'::text AS os_user\"\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	c := testcluster.Start(t, testcluster.Options{Nodes: 2, Node1First: true,
		ExtraBootstrap: map[string]any{"post_bootstrap": script}})
	p := c.WaitPrimary(t, 10*time.Second)
	c.WaitReplicasStreaming(t, 20*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, n := range c.Nodes {
		var who, via, osUser string
		var rows int
		if err := n.QueryRow(ctx, "SELECT who, via, os_user, (SELECT count(*) FROM post_bootstrap_ran)::int FROM post_bootstrap_ran", nil, &who, &via, &osUser, &rows); err != nil {
			t.Fatalf("%s: the script's table: %v", n.Name, err)
		}
		if who != "postgres" || via != "postgres" || osUser != "postgres" || rows != 1 {
			t.Errorf("%s: ran as %q via %q by OS user %q, %d rows; want postgres, postgres, postgres, 1", n.Name, who, via, osUser, rows)
		}
	}
	if got := p.LogCount(testcluster.Bootstrap, "running bootstrap.post_bootstrap"); got != 1 {
		t.Errorf("%s: post_bootstrap logged %d times, want once", p.Name, got)
	}
}
