package bootstrap

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/pg-ha/pg-ha/lib/pg/pgtest"
)

// TestMain checks that no goroutine outlives the tests (the postmaster of a
// recovery run is waited for) and removes pgtest's template.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		pgtest.RemoveTemplate()
		os.Exit(code)
	}))
}
