// Package cli holds what the five pg-ha programs share on the command line:
// the --config/--validate-config/--version/--log.* flags, the exit codes,
// the EXIT STATUS section of --help, and the signal handling around run.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/alecthomas/kong"
	"github.com/rs/zerolog"

	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/logx"
)

// Version is set at build time with -ldflags "-X github.com/pg-ha/pg-ha/lib/cli.Version=…".
var Version = "0.1.0-dev"

// Exit codes every program uses. Programs add their own from 10 up.
const (
	ExitOK          = 0
	ExitFailure     = 1
	ExitConfig      = 2 // bad flags, unreadable or invalid configuration
	ExitInterrupted = 130
)

// ExitError carries a specific exit code out of run.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// Exit wraps err so that Main exits with code.
func Exit(code int, err error) error { return &ExitError{Code: code, Err: err} }

// Log is the logging flag group, embedded with prefix "log.".
type Log struct {
	Level  string `default:"info" enum:"debug,info,warn,error" help:"Log level: debug, info, warn or error."`
	Format string `default:"auto" enum:"auto,console,json,journal" help:"Log format: auto (journal under systemd, console on a terminal, else json), console, json or journal."`
}

// Common are the flags of every program.
type Common struct {
	Config         string           `short:"c" placeholder:"FILE" env:"PATRONI_CONFIG_FILE" help:"Node configuration: a Patroni YAML file (scope, name, etcd3, bootstrap, postgresql, tags …). PATRONI_* environment variables override it."`
	ValidateConfig bool             `help:"Load the configuration, print every problem, and exit 0 only if it is valid."`
	Version        kong.VersionFlag `help:"Print the version and exit."`
	Log            Log              `embed:"" prefix:"log."`
}

// Runtime is the flag of the programs that share files on one node.
type Runtime struct {
	RuntimeDir string `name:"runtime-dir" placeholder:"DIR" env:"RUNTIME_DIRECTORY" help:"Directory for this node's state files and sockets (default /run/pg-ha/<scope>-<name>; systemd's RuntimeDirectory= sets it)."`
}

// Dir returns the runtime directory for cfg, creating it if needed.
func (r Runtime) Dir(cfg *config.Config) (string, error) {
	dir := r.RuntimeDir
	if dir == "" {
		dir = filepath.Join("/run/pg-ha", cfg.Scope+"-"+cfg.Name)
	} else if i := strings.IndexByte(dir, ' '); i > 0 {
		dir = dir[:i] // systemd passes every RuntimeDirectory= separated by spaces
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("--runtime-dir=%s: %w", dir, err)
	}
	return dir, nil
}

// Program describes one binary for Parse.
type Program struct {
	Name        string
	Description string
	// ExitStatus lists codes beyond the common ones, as "code  meaning" lines.
	ExitStatus []string
}

// Parse parses args into cli (a struct embedding Common) and returns the
// kong context. Usage errors exit with ExitConfig after one line on stderr.
func Parse(cli any, p Program, args []string) *kong.Context {
	exits := []string{
		"0    success",
		"1    failure (see the message on stderr)",
		"2    usage error, or the configuration is missing, unreadable or invalid",
	}
	exits = append(exits, p.ExitStatus...)
	exits = append(exits, "130  interrupted (SIGINT)")
	parser, err := kong.New(cli,
		kong.Name(p.Name),
		kong.Description(p.Description),
		kong.Vars{"version": p.Name + " " + Version},
		kong.UsageOnError(),
		kong.Exit(func(code int) {
			if code == 1 { // kong's code for a parse error
				code = ExitConfig
			}
			os.Exit(code)
		}),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true, WrapUpperBound: 100}),
		kong.Help(func(options kong.HelpOptions, ctx *kong.Context) error {
			if err := kong.DefaultHelpPrinter(options, ctx); err != nil {
				return err
			}
			_, err := fmt.Fprintf(ctx.Stdout, "\nEXIT STATUS\n  %s\n", strings.Join(exits, "\n  "))
			return err
		}),
	)
	if err != nil {
		panic(err)
	}
	ctx, err := parser.Parse(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", p.Name, err)
		os.Exit(ExitConfig)
	}
	return ctx
}

// Logger builds the program's root logger from the log flags.
func (c *Common) Logger(program string) (zerolog.Logger, error) {
	l, err := logx.New(c.Log.Level, c.Log.Format)
	if err != nil {
		return l, err
	}
	return l.With().Str("program", program).Logger(), nil
}

// LoadConfig loads --config, logs each warning once, and validates it for
// need. With --validate-config it prints every problem to stderr and
// returns a nil config: the caller exits with the returned error's code.
func (c *Common) LoadConfig(log zerolog.Logger, need config.Need) (*config.Config, error) {
	if c.Config == "" {
		return nil, Exit(ExitConfig, errors.New("--config: missing; give the node's YAML file (or PATRONI_CONFIG_FILE)"))
	}
	cfg, warns, err := config.Load(c.Config, nil)
	if err != nil {
		return nil, Exit(ExitConfig, err)
	}
	problems := cfg.Validate(need)
	if c.ValidateConfig {
		for _, w := range warns {
			fmt.Fprintf(os.Stderr, "warning: %s: %s\n", c.Config, w)
		}
		for _, p := range problems {
			fmt.Fprintf(os.Stderr, "%s: %s\n", c.Config, p)
		}
		if len(problems) > 0 {
			return nil, Exit(ExitConfig, fmt.Errorf("%s: %d problem(s)", c.Config, len(problems)))
		}
		return nil, nil
	}
	for _, w := range warns {
		log.Warn().Str("config", c.Config).Msg(w)
	}
	if len(problems) > 0 {
		return nil, Exit(ExitConfig, fmt.Errorf("config %s: %w", c.Config, problems[0]))
	}
	return cfg, nil
}

// Main runs run with a context cancelled by SIGINT or SIGTERM and returns
// the exit code: the ExitError's code, ExitInterrupted after SIGINT, else
// ExitFailure for an error. The error is printed as one line on stderr.
func Main(program string, stderr io.Writer, run func(ctx context.Context) error) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	sigint := make(chan os.Signal, 1)
	signal.Notify(sigint, syscall.SIGINT)
	err := run(ctx)
	if err == nil {
		return ExitOK
	}
	var ee *ExitError
	code := ExitFailure
	if errors.As(err, &ee) {
		code = ee.Code
	} else if errors.Is(err, context.Canceled) {
		select {
		case <-sigint:
			code = ExitInterrupted
		default:
			return ExitOK
		}
	}
	fmt.Fprintf(stderr, "%s: %s\n", program, oneLine(err.Error()))
	return code
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// Setup builds the logger and loads the configuration. A nil config with a
// nil error means --validate-config succeeded and the program should exit 0.
func (c *Common) Setup(program string, need config.Need) (zerolog.Logger, *config.Config, error) {
	log, err := c.Logger(program)
	if err != nil {
		return log, nil, Exit(ExitConfig, err)
	}
	cfg, err := c.LoadConfig(log, need)
	if err != nil || cfg == nil {
		return log, nil, err
	}
	log = log.With().Str("scope", cfg.Scope).Str("member", cfg.Name).Logger()
	return log, cfg, nil
}
