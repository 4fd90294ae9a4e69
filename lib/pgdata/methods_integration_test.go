package pgdata

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/pg"
	"github.com/pg-ha/pg-ha/lib/pg/pgtest"
)

// copyScript is a replica creation method that copies the data directory
// given by --src into --datadir (or --to, for a no_params method), then
// fails if --fail is set, after writing a file there.
const copyScript = `#!/bin/sh
set -e
for a in "$@"; do
	case "$a" in
	--datadir=*|--to=*) dst=${a#*=} ;;
	--src=*) src=${a#*=} ;;
	--fail=*) fail=1 ;;
	--connstring=*) echo "connstring=[${a#*=}]" ;;
	esac
done
mkdir -p "$dst"
cp -a "$src"/. "$dst"/
if [ -n "$fail" ]; then echo half > "$dst/half-written"; echo "copy: failing on purpose" >&2; exit 4; fi
echo "copy: 100%"
`

// TestIntegrationReplicaMethods: each way a method can meet the data
// directory, against a real PostgreSQL copy: a method with parameters
// copies beside it and the old directory is kept; a no_params method
// restores in place after the old one was moved aside, and on failure the
// old one comes back; a failed keep_data method's directory is moved aside,
// never started; without a member to copy from only a no_leader method runs
// (with an empty --connstring); a copy of another cluster is refused and
// the old directory stays.
func TestIntegrationReplicaMethods(t *testing.T) {
	primary := pgtest.New(t)
	primary.Start()
	src := primary.Standby(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cd, err := pg.ReadControlData(ctx, primary.Owner, pgtest.BinDir, src.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	sysid := strconv.FormatUint(cd.SystemIdentifier, 10)
	n := trialNode(t, primary.Owner)
	script := filepath.Join(filepath.Dir(n.RuntimeDir), "copy.sh")
	if err := os.WriteFile(script, []byte(copyScript), 0o755); err != nil {
		t.Fatal(err)
	}
	dir := n.DataDir()
	method := func(m config.Method) {
		m.Command = script
		m.Options = append([]config.Option{{Key: "src", Value: src.DataDir}}, m.Options...)
		n.Cfg.Scope = "demo"
		n.Cfg.Postgres.CreateReplicaMethods = []string{m.Name}
		n.Cfg.Postgres.Methods = map[string]config.Method{m.Name: m}
	}
	oldData := func(marker string) {
		t.Helper()
		os.RemoveAll(dir)
		if err := n.makeOwnedDir(dir); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, marker), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	opts := CreateOptions{Sources: []Source{{Name: "node1", ConnURL: "postgres://127.0.0.1:1/postgres"}}, SystemID: sysid, Keep: 5, Log: zerolog.Nop()}
	valid := func() bool {
		st, _, _ := n.Inspect(ctx)
		return st == Valid
	}

	// With parameters: beside, then swapped; the old one kept.
	method(config.Method{Name: "copy"})
	oldData("marker-1")
	res, err := n.CreateReplica(ctx, opts)
	if err != nil || res.Method != "copy" || !valid() || res.Kept == "" || !exists(filepath.Join(res.Kept, "marker-1")) || exists(n.NewDir()) {
		t.Fatalf("copy beside: %+v, %v (valid %v)", res, err, valid())
	}

	// no_params: in place; the old one aside, and back on failure.
	method(config.Method{Name: "inplace", NoParams: true, Options: []config.Option{{Key: "to", Value: dir}}})
	oldData("marker-2")
	if res, err = n.CreateReplica(ctx, opts); err != nil || !valid() || !exists(filepath.Join(res.Kept, "marker-2")) {
		t.Fatalf("no_params: %+v, %v", res, err)
	}
	method(config.Method{Name: "inplace", NoParams: true, Options: []config.Option{{Key: "to", Value: dir}, {Key: "fail", Value: 1}}})
	oldData("marker-3")
	if _, err = n.CreateReplica(ctx, opts); err == nil || !strings.Contains(err.Error(), "failing on purpose") {
		t.Fatalf("failing no_params method: %v", err)
	}
	if !exists(filepath.Join(dir, "marker-3")) || exists(filepath.Join(dir, "half-written")) {
		t.Errorf("after a failed no_params method the old data directory is not back as it was")
	}

	// keep_data that fails: what it left is moved aside, never used.
	method(config.Method{Name: "delta", KeepData: true, Options: []config.Option{{Key: "fail", Value: 1}}})
	oldData("marker-4")
	before := len(n.OldCopies())
	if _, err = n.CreateReplica(ctx, opts); err == nil {
		t.Fatal("failing keep_data method succeeded")
	}
	if exists(dir) || len(n.OldCopies()) != before+1 {
		t.Errorf("after a failed keep_data method: data_dir exists %v, old copies %d → %d", exists(dir), before, len(n.OldCopies()))
	}

	// No member to copy from: only no_leader methods run.
	noSrc := opts
	noSrc.Sources = nil
	method(config.Method{Name: "copy"})
	oldData("marker-5")
	if _, err = n.CreateReplica(ctx, noSrc); err == nil || !strings.Contains(err.Error(), "not no_leader") || !exists(filepath.Join(dir, "marker-5")) {
		t.Errorf("without a source, a method that is not no_leader: %v", err)
	}
	var lines []string
	noSrc.Log = zerolog.New(zerolog.ConsoleWriter{Out: writerFunc(func(b []byte) { lines = append(lines, string(b)) })})
	method(config.Method{Name: "copy", NoLeader: true})
	if res, err = n.CreateReplica(ctx, noSrc); err != nil || !valid() || !strings.Contains(strings.Join(lines, ""), "connstring=[]") {
		t.Errorf("a no_leader method without a source: %+v, %v", res, err)
	}

	// Another cluster's copy: refused, the old directory stays.
	other := opts
	other.SystemID = "42"
	oldData("marker-6")
	if _, err = n.CreateReplica(ctx, other); err == nil || !strings.Contains(err.Error(), "not this cluster's 42") ||
		!exists(filepath.Join(dir, "marker-6")) || exists(n.NewDir()) {
		t.Errorf("a copy of another cluster: %v", err)
	}
}

type writerFunc func([]byte)

func (f writerFunc) Write(b []byte) (int, error) { f(b); return len(b), nil }
