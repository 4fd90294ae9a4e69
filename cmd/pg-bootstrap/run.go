package main

import (
	"context"
	"errors"

	"github.com/rs/zerolog"

	"github.com/pg-ha/pg-ha/lib/config"
)

func run(ctx context.Context, log zerolog.Logger, cfg *config.Config, c *CLI) error {
	return errors.New("not implemented")
}
