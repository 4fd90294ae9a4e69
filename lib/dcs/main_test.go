package dcs_test

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"

	"github.com/pg-ha/pg-ha/lib/dcs"
	"github.com/pg-ha/pg-ha/lib/dcs/etcdtest"
	"github.com/pg-ha/pg-ha/lib/logx/logxtest"
)

func TestMain(m *testing.M) {
	// No goroutine may outlive its test: every Client is closed and every
	// Watch context cancelled in t.Cleanup.
	goleak.VerifyTestMain(m)
}

var nonKey = regexp.MustCompile(`[^a-zA-Z0-9_-]+`)

// prefix gives every test its own scope.
func prefix(t testing.TB) string {
	return "/service/" + strings.Trim(nonKey.ReplaceAllString(t.Name(), "-"), "-") + "/"
}

// newClient connects to e with the test's prefix; mod adjusts the options.
func newClient(t testing.TB, endpoints []string, mod ...func(*dcs.Options)) *dcs.Client {
	t.Helper()
	o := dcs.Options{
		Endpoints:             endpoints,
		Prefix:                prefix(t),
		RequestTimeout:        2 * time.Second,
		WatchProgressInterval: 500 * time.Millisecond,
		Log:                   logxtest.Logger(t),
	}
	for _, f := range mod {
		f(&o)
	}
	c, err := dcs.New(context.Background(), o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

// rawClient is a plain etcd client for writing what pg-ha never writes
// (garbage values, compaction).
func rawClient(t testing.TB, e *etcdtest.Etcd) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: e.Endpoints(), DialTimeout: 2 * time.Second, Logger: zapNop})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// watch starts a Watch whose context ends with the test, and waits for its
// channel to close then, so no goroutine outlives the test.
func watch(t testing.TB, c *dcs.Client, rev int64) <-chan dcs.Event {
	ctx, cancel := context.WithCancel(context.Background())
	ch := c.Watch(ctx, rev)
	out := make(chan dcs.Event, 4096)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(out)
		for e := range ch {
			select {
			case out <- e:
			default:
				t.Errorf("test watch buffer full")
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return out
}

// next waits for the next event matching ok, failing the test after d.
func next(t testing.TB, ch <-chan dcs.Event, d time.Duration, what string, ok func(dcs.Event) bool) dcs.Event {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case e, open := <-ch:
			if !open {
				t.Fatalf("watch channel closed while waiting for %s", what)
			}
			if ok(e) {
				return e
			}
		case <-timer.C:
			t.Fatalf("no %s within %v", what, d)
		}
	}
}
