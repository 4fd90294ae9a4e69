package pgdata

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/pg-ha/pg-ha/lib/config"
)

// TestOldCopiesPruned: replaced data directories are kept oldest first and
// pruned down to Keep; the data directory itself and other siblings are
// never touched.
func TestOldCopiesPruned(t *testing.T) {
	dir := t.TempDir()
	n := &Node{Cfg: &config.Config{Postgres: config.Postgres{DataDir: filepath.Join(dir, "data")}}}
	for _, d := range []string{"data", "data.old-20261201T000000.000Z", "data.old-20261202T000000.000Z", "data.old-20261203T000000.000Z", "data.diverged"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	n.pruneOld(CreateOptions{Keep: 1, Log: zerolog.Nop()})
	old := n.OldCopies()
	if len(old) != 1 || !strings.HasSuffix(old[0], "20261203T000000.000Z") {
		t.Errorf("kept %v, want the newest only", old)
	}
	for _, d := range []string{"data", "data.diverged"} {
		if _, err := os.Stat(filepath.Join(dir, d)); err != nil {
			t.Errorf("%s removed: %v", d, err)
		}
	}
	n.pruneOld(CreateOptions{Keep: 0, Log: zerolog.Nop()})
	if old := n.OldCopies(); len(old) != 0 {
		t.Errorf("keep 0 left %v", old)
	}
}

// TestCheckSpace: a copy that would leave less than the reserve free is
// refused with ErrNoSpace, naming what could go; one that fits passes.
func TestCheckSpace(t *testing.T) {
	dir := t.TempDir()
	n := &Node{Cfg: &config.Config{Postgres: config.Postgres{DataDir: filepath.Join(dir, "data")}}}
	if err := os.MkdirAll(filepath.Join(dir, "data.old-20261203T000000.000Z"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := n.CheckSpace(1<<20, 0); err != nil {
		t.Errorf("1 MiB refused: %v", err)
	}
	err := n.CheckSpace(1<<20, 1<<60)
	if !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), "data.old-20261203T000000.000Z") || strings.Contains(err.Error(), "\n") {
		t.Errorf("CheckSpace with an exabyte reserve: %v", err)
	}
}
