package main

import "github.com/pg-ha/pg-ha/lib/postmaster"

func notifier() postmaster.Notifier { return nil }
