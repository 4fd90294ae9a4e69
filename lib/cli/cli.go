// Package cli holds what the five pg-ha programs share on the command line:
// the --config/--validate-config/--version/--log.* flags, the exit codes,
// the EXIT STATUS section of --help, and the signal handling around run.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
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
	RuntimeDir string `name:"runtime-dir" placeholder:"DIR" env:"RUNTIME_DIRECTORY" help:"Directory for this node's state files and sockets. Default: /run/pg-ha/<scope>-<name> if it exists or can be created, else $XDG_RUNTIME_DIR/pg-ha/<scope>-<name> (when $XDG_RUNTIME_DIR is this user's), else /tmp/pg-ha-<uid>/<scope>-<name>; every program of a node picks the same one and logs it. systemd's RuntimeDirectory= sets it."`
}

// Dir returns the runtime directory for cfg, creating it if needed, and
// logs which one it is. Without --runtime-dir it is the first usable of the
// defaults listed in Runtime's help, the same for every program the same
// user runs with the same scope and name. It never blocks.
func (r Runtime) Dir(cfg *config.Config) (string, error) {
	log := rootLog()
	dir := r.RuntimeDir
	if dir != "" {
		if i := strings.IndexByte(dir, ' '); i > 0 {
			dir = dir[:i] // systemd passes every RuntimeDirectory= separated by spaces
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", fmt.Errorf("--runtime-dir=%s: %w", dir, err)
		}
		log.Info().Str("runtime_dir", dir).Msg("runtime directory from --runtime-dir")
		return dir, nil
	}
	dir, skipped, err := defaultDir(cfg.Scope+"-"+cfg.Name, os.Getenv("XDG_RUNTIME_DIR"), os.Getuid())
	for _, s := range skipped {
		log.Debug().Msg(s)
	}
	if err != nil {
		return "", fmt.Errorf("--runtime-dir: not given and no default is usable (%s); give --runtime-dir=DIR", strings.Join(append(skipped, err.Error()), "; "))
	}
	ev := log.Info().Str("runtime_dir", dir)
	if len(skipped) > 0 {
		ev = ev.Str("not_usable", strings.Join(skipped, "; "))
	}
	ev.Msg("runtime directory")
	return dir, nil
}

// systemRuntimeDir is where runtime directories go when the user may create
// them there (root, or after an administrator made it writable).
var systemRuntimeDir = "/run/pg-ha"

// tempRuntimeBase holds the per-user fallback, /tmp/pg-ha-<uid>. It is not
// $TMPDIR, which may differ between the shells that start a node's programs.
var tempRuntimeBase = "/tmp"

// defaultDir returns the first usable runtime directory named node (scope-name)
// for the user uid: under systemRuntimeDir, under xdg (only when that
// directory belongs to uid), or under /tmp/pg-ha-<uid>. skipped says why each
// earlier candidate was not used.
func defaultDir(node, xdg string, uid int) (dir string, skipped []string, err error) {
	d := filepath.Join(systemRuntimeDir, node)
	if err := usableDir(d); err == nil {
		return d, nil, nil
	}
	if err := os.MkdirAll(d, 0o755); err == nil {
		return d, nil, nil
	} else {
		skipped = append(skipped, fmt.Sprintf("%s: %v", d, unwrapPath(err)))
	}
	if xdg != "" {
		d := filepath.Join(xdg, "pg-ha", node)
		if err := ownedPrivate(xdg, uid, false); err != nil {
			skipped = append(skipped, fmt.Sprintf("$XDG_RUNTIME_DIR %s: %v", xdg, err))
		} else if err := os.MkdirAll(d, 0o700); err != nil {
			skipped = append(skipped, fmt.Sprintf("%s: %v", d, unwrapPath(err)))
		} else {
			return d, skipped, nil
		}
	}
	base := filepath.Join(tempRuntimeBase, fmt.Sprintf("pg-ha-%d", uid))
	if err := os.Mkdir(base, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", skipped, fmt.Errorf("%s: %v", base, unwrapPath(err))
	}
	// Another user may have created it first, to read or replace our files.
	if err := ownedPrivate(base, uid, true); err != nil {
		return "", skipped, fmt.Errorf("%s: %v; remove it", base, err)
	}
	d = filepath.Join(base, node)
	if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", skipped, fmt.Errorf("%s: %v", d, unwrapPath(err))
	}
	if err := ownedPrivate(d, uid, false); err != nil {
		return "", skipped, fmt.Errorf("%s: %v; remove it", d, err)
	}
	return d, skipped, nil
}

// usableDir reports whether dir exists and this process may create files in it.
func usableDir(dir string) error {
	st, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	return syscall.Access(dir, 2|1) // W_OK|X_OK
}

// ownedPrivate checks that dir is a directory (not a symbolic link) owned by
// uid that no other user can write to, or, with private, access at all.
func ownedPrivate(dir string, uid int, private bool) error {
	st, err := os.Lstat(dir)
	if err != nil {
		return unwrapPath(err)
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	switch {
	case !st.IsDir():
		return errors.New("not a directory")
	case !ok || int(sys.Uid) != uid:
		return fmt.Errorf("not owned by uid %d", uid)
	case private && st.Mode().Perm()&0o077 != 0:
		return fmt.Errorf("mode %#o lets other users in (want 0700)", st.Mode().Perm())
	case st.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("mode %#o lets other users write", st.Mode().Perm())
	}
	return nil
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
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
	ctx, err := ParseArgs(NewParser(cli, p), args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", p.Name, err)
		os.Exit(ExitConfig)
	}
	return ctx
}

// NewParser builds the kong parser of cli for p: --help with the EXIT
// STATUS section and the default command's flags. opts come last, so a test
// may replace kong.Exit or kong.Writers. It panics on a malformed cli
// struct, a programming error.
func NewParser(cli any, p Program, opts ...kong.Option) *kong.Kong {
	exits := []string{
		"0    success",
		"1    failure (see the message on stderr)",
		"2    usage error, or the configuration is missing, unreadable or invalid",
	}
	exits = append(exits, p.ExitStatus...)
	exits = append(exits, "130  interrupted (SIGINT)")
	options := []kong.Option{
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
			if err := defaultCommandHelp(ctx.Stdout, ctx); err != nil {
				return err
			}
			_, err := fmt.Fprintf(ctx.Stdout, "\nEXIT STATUS\n  %s\n", strings.Join(exits, "\n  "))
			return err
		}),
	}
	parser, err := kong.New(cli, append(options, opts...)...)
	if err != nil {
		panic(err)
	}
	return parser
}

// ParseArgs runs parser on args and rewrites the kong parse errors that a
// new user cannot act on into one plain line (see usageError). It never
// exits, except through kong.Exit for --help and --version.
func ParseArgs(parser *kong.Kong, args []string) (*kong.Context, error) {
	ctx, err := parser.Parse(args)
	if err != nil {
		return ctx, usageError(parser.Model.Node, args, err)
	}
	// The default command takes no word of its own unless it was named: a
	// first word that is not a command is a misspelt command, not an
	// argument (a cluster name) of the default command.
	root := parser.Model.Node
	if sel := ctx.Selected(); sel != nil && sel == root.DefaultCmd && !slices.Contains(args, sel.Name) {
		for _, p := range sel.Positional {
			if p.Set {
				return ctx, unknownCommand(root, fmt.Sprint(p.Target.Interface()))
			}
		}
	}
	return ctx, nil
}

// Logger builds the program's root logger from the log flags.
func (c *Common) Logger(program string) (zerolog.Logger, error) {
	l, err := logx.New(c.Log.Level, c.Log.Format)
	if err != nil {
		return l, err
	}
	return l.With().Str("program", program).Logger(), nil
}

// validOut receives --validate-config's verdict on a valid file.
var validOut io.Writer = os.Stdout

// LoadConfig loads --config, logs each warning once, and validates it for
// need. With --validate-config it prints every problem to stderr and
// returns a nil config: the caller exits with the returned error's code.
// A valid file prints "FILE: valid" on stdout (exit 0).
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
		// Silence would leave the operator guessing whether anything was
		// checked at all.
		fmt.Fprintf(validOut, "%s: valid\n", c.Config)
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
// SIGHUP never stops the program (nor, so, PostgreSQL): it calls what
// OnHangup registered, else it is logged as a warning and changes nothing.
func Main(program string, stderr io.Writer, run func(ctx context.Context) error) int {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	hupDone := make(chan struct{})
	go func() {
		defer close(hupDone)
		for range hup {
			if f := hangup.Load(); f != nil {
				(*f)()
				continue
			}
			logHangup(program, stderr)
		}
	}()
	defer func() {
		signal.Stop(hup)
		close(hup)
		<-hupDone
	}()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	sigint := make(chan os.Signal, 1)
	signal.Notify(sigint, syscall.SIGINT)
	defer signal.Stop(sigint)
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

// hangup is what SIGHUP calls, nil: ignore it.
var hangup atomic.Pointer[func()]

// OnHangup makes every SIGHUP call f instead of being ignored. f runs on
// the signal goroutine, one call at a time; it must not block for long.
func OnHangup(f func()) { hangup.Store(&f) }

// ReloadOnHangup makes every SIGHUP read --config again, validate it for
// need and hand it to apply. A configuration that fails to load or
// validate is logged (one line) and the one in force is kept.
func (c *Common) ReloadOnHangup(log zerolog.Logger, need config.Need, apply func(*config.Config)) {
	OnHangup(func() {
		log.Info().Str("signal", "SIGHUP").Str("config", c.Config).Msg("reading the configuration again")
		cfg, err := c.LoadConfig(log, need)
		if err != nil || cfg == nil {
			log.Error().Str("config", c.Config).Str("error", oneLine(fmt.Sprint(err))).Msg("configuration not reloaded: the one in force is kept")
			return
		}
		apply(cfg)
	})
}

// hangupMsg is logged on SIGHUP when nothing is registered.
const hangupMsg = "SIGHUP ignored: the configuration is not re-read while running; nothing changed and PostgreSQL keeps running (restart the program to apply a new configuration)"

func logHangup(program string, stderr io.Writer) {
	if l := root.Load(); l != nil {
		l.Warn().Str("signal", "SIGHUP").Msg(hangupMsg)
		return
	}
	fmt.Fprintf(stderr, "%s: %s\n", program, hangupMsg)
}

// root is the program's logger once Setup built it, for what happens
// outside run's call tree (signals) or before it is passed down.
var root atomic.Pointer[zerolog.Logger]

// rootLog returns the logger Setup built, or one that discards everything.
func rootLog() zerolog.Logger {
	if l := root.Load(); l != nil {
		return *l
	}
	return zerolog.Nop()
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
	root.Store(&log)
	return log, cfg, nil
}
