package systemd

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The role-pipe test runs this binary as pg-lockd and pg-supervise.
	switch filepath.Base(os.Args[0]) {
	case "pg-lockd":
		os.Exit(standInWriter(os.Args[1:]))
	case "pg-supervise":
		os.Exit(standInReader(os.Args[1:]))
	}
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}
