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
		"cannot follow the leader is re-cloned: the new copy is made beside the old data directory, which it replaces " +
		"only once complete and started, and which is kept aside; two rebuilds never overlap. Replicas are created by " +
		"postgresql.create_replica_methods in order (basebackup by default), from a running member tagged clonefrom " +
		"(least lag first) or else the leader.",
	ExitStatus: []string{
		"10   the data directory belongs to another cluster (system identifier differs)",
		"11   timed out waiting for a leader to clone, or (--rebuild) no running leader",
		"12   --rebuild: the replica was rebuilt (0: nothing to do, it streams)",
		"13   --rebuild refused: this node is the leader (nothing changed)",
		"14   --rebuild refused: another rebuild of this node is running (nothing changed)",
		"15   --rebuild refused: not enough disk space for a new copy beside the old one (nothing changed)",
	},
}

// CLI is pg-bootstrap's command line.
type CLI struct {
	cli.Common
	cli.Runtime
	Rebuild bool          `help:"Re-clone this replica from the leader if it is broken (cannot stream, diverged, or missing); do nothing on a healthy node or on the leader."`
	Force   bool          `help:"With --rebuild: re-clone even a healthy replica."`
	Keep    int           `default:"1" help:"With --rebuild: how many replaced data directories to keep aside (<data_dir>.old-<time>), newest first; 0 keeps none once the new copy runs."`
	Reserve Size          `default:"0" help:"With --rebuild: free space the file system must keep after the new copy (e.g. 10GB); the rebuild is refused otherwise."`
	Grace   time.Duration `default:"1m" help:"With --rebuild: how long a replica that does not stream may take to start streaming before it is rebuilt."`
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
