package health

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/pg-ha/pg-ha/lib/pg/pgtest"
)

func TestMain(m *testing.M) {
	// Every Service, server, etcd client and PostgreSQL connection a test
	// starts is stopped in its Cleanup: no goroutine may outlive the tests,
	// but fasthttp's own: the Date header refresher, started once per
	// process, and a worker pool's cleaner, which notices that its server
	// stopped only when it next wakes (within 10 s).
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.Cleanup(func(code int) {
			pgtest.RemoveTemplate()
			os.Exit(code)
		}))
}
