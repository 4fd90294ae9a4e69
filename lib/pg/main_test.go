package pg_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/pg-ha/pg-ha/lib/pg/pgtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		pgtest.RemoveTemplate()
		os.Exit(code)
	}))
}
