package dcs_test

import "go.uber.org/zap"

var zapNop = zap.NewNop()
