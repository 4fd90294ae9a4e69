// Command pg-healthd serves the node's health over HTTP, answering the
// requests HAProxy and monitoring send to Patroni's REST API.
package main

import (
	"context"
	"os"

	"github.com/pg-ha/pg-ha/lib/cli"
	"github.com/pg-ha/pg-ha/lib/config"
)

var program = cli.Program{
	Name: "pg-healthd",
	Description: "Serve this node's health over HTTP with Patroni's REST semantics, so existing HAProxy checks and " +
		"monitoring keep working: /primary (/master, /leader, /read-write), /replica, /read-only, /standby-leader, " +
		"/sync, /quorum, /async, /read-only-sync, /read-only-quorum, /health, /liveness, /readiness answer 200 or 503; " +
		"/, /patroni, /cluster, /history, /config " +
		"and /metrics return JSON or Prometheus text. Patroni's write API (POST /switchover, /failover, /restart, " +
		"/reinitialize, /reload; DELETE /switchover, /restart; PATCH and PUT /config) carries out patronictl's " +
		"requests through etcd, as pg-failover does; it needs etcd. Answers come from a state refreshed in the background and " +
		"fail closed: if the leader key cannot be confirmed or PostgreSQL does not answer in time, /primary is 503. " +
		"Without etcd in the configuration, or with --standalone, roles come from PostgreSQL alone. Listens on " +
		"restapi.listen, or on the socket systemd passes.",
}

// CLI is pg-healthd's command line.
type CLI struct {
	cli.Common
	cli.Runtime
	Standalone bool   `help:"Do not use etcd: roles come from PostgreSQL alone (implied when the configuration names no etcd3 hosts)."`
	Listen     string `placeholder:"ADDR" help:"Listen on ADDR instead of restapi.listen (ignored under socket activation)."`
}

func main() {
	var c CLI
	cli.Parse(&c, program, os.Args[1:])
	os.Exit(cli.Main(program.Name, os.Stderr, func(ctx context.Context) error {
		// etcd is optional: without etcd3 in the configuration pg-healthd
		// runs standalone; run checks the etcd settings when they are used.
		log, cfg, err := c.Setup(program.Name, config.Need{Postgres: true})
		if err != nil || cfg == nil {
			return err
		}
		return run(ctx, log, cfg, &c)
	}))
}
