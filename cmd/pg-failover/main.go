// Command pg-failover is the operator's tool: switchover, failover, list,
// topology, history, pause and resume, restart and reinit, show-config and
// edit-config, dsn and version, under its own names and patronictl's, for
// scripts and for people. It talks to etcd only.
package main

import (
	"context"
	"os"
	"time"

	"github.com/pg-ha/pg-ha/lib/cli"
	"github.com/pg-ha/pg-ha/lib/clusterctl"
)

var program = cli.Program{
	Name: "pg-failover",
	Description: "Control a pg-ha cluster through etcd. Without a command, perform a planned switchover: " +
		"pg-failover --config node1.yml --to node2 waits until node2 is the primary and accepts writes, then prints " +
		"one line on stdout and exits 0; any other outcome exits with the code listed below and one line on stderr. " +
		"It asks for confirmation only when stdin is a terminal (never with --yes, --json or --dry-run). " +
		"patronictl's command and flag names work too: switchover --candidate/--leader/--scheduled/--force, " +
		"failover --candidate, flush, restart --scheduled/--role/--pending, query -c/-m/-r, remove, show-config, edit-config, topology, dsn, version, " +
		"and a cluster name after the command.",
	ExitStatus: clusterctl.ExitStatus(),
}

func main() {
	began := time.Now()
	var c CLI
	k := cli.Parse(&c, program, patronictlArgs(os.Args[1:]))
	os.Exit(cli.Main(program.Name, os.Stderr, func(ctx context.Context) error {
		return run(ctx, k.Command(), &c, began)
	}))
}
