package pgdata

import (
	"os"
	"testing"

	"github.com/pg-ha/pg-ha/lib/pg/pgtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.RemoveTemplate()
	os.Exit(code)
}
