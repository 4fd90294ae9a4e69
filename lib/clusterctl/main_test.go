package clusterctl

import (
	"testing"

	"go.uber.org/goleak"
)

// No goroutine of a Ctl's watch may outlive its test.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
