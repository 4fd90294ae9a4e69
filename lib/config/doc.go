// Package config loads a node's configuration: Patroni's YAML schema, read
// unchanged, plus Patroni's PATRONI_* environment overrides.
//
// Load reads and parses a file, applies the environment and defaults, and
// returns the Config together with warnings (unknown keys, deprecated
// sections). Validate returns every problem found, each naming the key and the
// fix. Nothing in this package touches the network or the clock.
package config
