package main

import "github.com/pg-ha/pg-ha/lib/elector"

func notifier() elector.Notifier { return nil }
