package elector_test

import (
	"context"
	"os/user"
	"testing"

	"github.com/rs/zerolog"

	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/dcs"
	"github.com/pg-ha/pg-ha/lib/logx/logxtest"
	"github.com/pg-ha/pg-ha/lib/pg"
)

// harness is what an elector under test needs besides its configuration:
// the data directory's owner (the current user), a logger whose output is
// shown when the test fails, and an etcd client closed when it ends.
type harness struct {
	owner  pg.Owner
	log    zerolog.Logger
	logs   *logxtest.Buffer // what log wrote
	client *dcs.Client
}

func newHarness(t *testing.T, cfg *config.Config) harness {
	t.Helper()
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	owner, err := pg.LookupOwner(me.Username)
	if err != nil {
		t.Fatal(err)
	}
	logs := &logxtest.Buffer{}
	log := zerolog.New(logs).With().Timestamp().Logger()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("elector log:\n%s", logs)
		}
	})
	client, err := dcs.NewFromConfig(context.Background(), cfg, log, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return harness{owner: owner, log: log, logs: logs, client: client}
}
