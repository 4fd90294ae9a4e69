package main

import (
	"github.com/pg-ha/pg-ha/lib/postmaster"
	"github.com/pg-ha/pg-ha/lib/sdnotify"
)

func notifier() postmaster.Notifier { return sdnotify.New() }
