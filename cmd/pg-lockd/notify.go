package main

import (
	"github.com/pg-ha/pg-ha/lib/elector"
	"github.com/pg-ha/pg-ha/lib/sdnotify"
)

func notifier() elector.Notifier { return sdnotify.New() }
