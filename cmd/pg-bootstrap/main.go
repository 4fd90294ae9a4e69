// Command pg-bootstrap prepares this node's data directory: initdb (or a
// custom bootstrap method) for a new cluster, a clone of the leader for a new replica.
package main

import (
	"context"
	"os"
	"time"

	"github.com/pg-ha/pg-ha/lib/cli"
	"github.com/pg-ha/pg-ha/lib/config"
)

var program = cli.Program{
	Name: "pg-bootstrap",
	Description: "Prepare this node's PostgreSQL data directory before pg-supervise starts. With an empty data " +
		"directory, the node that wins the cluster's initialize key runs initdb (bootstrap.initdb, bootstrap.pg_hba, " +
		"bootstrap.users) — or the command of bootstrap.method's section (a restore; with its recovery_conf the " +
		"restored cluster first recovers, e.g. to a point in time, until it is a primary; a failed attempt removes " +
		"what it created and releases the key) — and publishes the system identifier and the dynamic configuration; every other node waits " +
		"for a leader and clones it with pg_basebackup. A valid data directory of this cluster exits 0 at once; one " +
		"of another cluster is refused and left untouched. With --rebuild (for a timer or cron) a replica that " +
		"cannot follow the leader is re-cloned.",
	ExitStatus: []string{
		"10   the data directory belongs to another cluster (system identifier differs)",
		"11   timed out waiting for a leader to clone",
	},
}

// CLI is pg-bootstrap's command line.
type CLI struct {
	cli.Common
	cli.Runtime
	Rebuild bool          `help:"Re-clone this replica from the leader if it is broken (cannot stream, diverged, or missing); do nothing on a healthy node or on the leader."`
	Force   bool          `help:"With --rebuild: re-clone even a healthy replica."`
	Timeout time.Duration `default:"10m" help:"How long to wait for a leader to clone from."`
}

func main() {
	var c CLI
	cli.Parse(&c, program, os.Args[1:])
	os.Exit(cli.Main(program.Name, os.Stderr, func(ctx context.Context) error {
		log, cfg, err := c.Setup(program.Name, config.NeedAll)
		if err != nil || cfg == nil {
			return err
		}
		return run(ctx, log, cfg, &c)
	}))
}
