// Package logx builds the one zerolog logger a program passes down: to the
// journal when stderr is connected to journald, human-readable on a
// terminal, JSON lines otherwise. Logs always go to stderr (or the journal);
// stdout is left to a program's intended output.
package logx

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/rs/zerolog/journald"
	"golang.org/x/term"
)

// Formats accepted by New.
const (
	Auto    = "auto"
	Console = "console"
	JSON    = "json"
	Journal = "journal"
)

// New returns a logger at level ("debug", "info", "warn", "error") in
// format, writing to stderr. It never blocks beyond the write itself.
func New(level, format string) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(strings.ToLower(level))
	if err != nil || lvl == zerolog.NoLevel {
		return zerolog.Nop(), fmt.Errorf("--log.level=%q: use debug, info, warn or error", level)
	}
	if format == "" || format == Auto {
		format = detect(os.Stderr)
	}
	var w io.Writer
	switch format {
	case Journal:
		w = journald.NewJournalDWriter()
	case Console:
		w = zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: time.TimeOnly + ".000"}
	case JSON:
		w = os.Stderr
	default:
		return zerolog.Nop(), fmt.Errorf("--log.format=%q: use auto, console, json or journal", format)
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano
	l := zerolog.New(w).Level(lvl).With().Timestamp().Logger()
	if format == Journal {
		l = zerolog.New(w).Level(lvl)
	}
	return l, nil
}

// detect picks the journal if stderr is the stream named in JOURNAL_STREAM,
// the console format on a terminal, and JSON otherwise.
func detect(f *os.File) string {
	if js := os.Getenv("JOURNAL_STREAM"); js != "" {
		dev, ino, ok := strings.Cut(js, ":")
		var st syscall.Stat_t
		if ok && syscall.Fstat(int(f.Fd()), &st) == nil &&
			strconv.FormatUint(st.Dev, 10) == dev && strconv.FormatUint(st.Ino, 10) == ino {
			return Journal
		}
	}
	if term.IsTerminal(int(f.Fd())) {
		return Console
	}
	return JSON
}
