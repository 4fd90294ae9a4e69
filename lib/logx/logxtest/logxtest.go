// Package logxtest collects the zerolog output of code under test: Logger
// writes it through t.Log, Buffer keeps it for the test to search.
package logxtest

import (
	"bytes"
	"os"
	"sync"
	"testing"

	"github.com/rs/zerolog"
)

// LevelEnv names the variable that sets Logger's level ("debug", "warn",
// …); unset or unparsable, the level is info.
const LevelEnv = "PGHA_TEST_LOG"

// Logger returns a logger, with timestamps, that writes each line through
// t.Log until the test's cleanups have run: later lines, from background
// goroutines that outlive the test, are dropped instead of hitting a
// finished test.
func Logger(t testing.TB) zerolog.Logger {
	w := &testLog{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	lvl := zerolog.InfoLevel
	if l, err := zerolog.ParseLevel(os.Getenv(LevelEnv)); err == nil && l != zerolog.NoLevel {
		lvl = l
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger()
}

type testLog struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(string(bytes.TrimRight(p, "\n")))
	}
	return len(p), nil
}

// Buffer collects what several goroutines write, such as the lines of a
// logger (zerolog.New(&buf)). The zero value is an empty buffer; its
// methods are safe for concurrent use.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
