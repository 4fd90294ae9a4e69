package cli_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The daemons' resident memory follows the size of their executables, and a
// reachable reflect lookup of methods by a variable name makes the linker
// keep every exported method of every type. Such a lookup must not reach a
// daemon (kong's is patched in third_party/kong; gRPC's tracing is left out
// by the grpcnotrace tag the Makefile builds with).
func TestDaemonsKeepDeadCodeElimination(t *testing.T) {
	if testing.Short() {
		t.Skip("links three programs")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	reflectMethod := regexp.MustCompile(`(?m)^(\S+) <ReflectMethod>`)
	for _, prog := range []string{"pg-lockd", "pg-supervise", "pg-healthd"} {
		cmd := exec.Command("go", "build", "-tags=grpcnotrace", "-ldflags=-dumpdep", "-o", os.DevNull, "./cmd/"+prog)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("build %s: %v\n%s", prog, err, out)
		}
		seen := map[string]bool{}
		for _, m := range reflectMethod.FindAllStringSubmatch(string(out), -1) {
			seen[m[1]] = true
		}
		if len(seen) > 0 {
			var names []string
			for n := range seen {
				names = append(names, n)
			}
			t.Errorf("%s: these functions look methods up by a variable name, so the linker keeps every exported method: %s",
				prog, strings.Join(names, ", "))
		}
	}
}
