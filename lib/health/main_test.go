package health

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// Every Service, server, etcd client and PostgreSQL connection a test
	// starts is stopped in its Cleanup: no goroutine may outlive the tests.
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		removeTemplate()
		os.Exit(code)
	}))
}
