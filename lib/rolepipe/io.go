package rolepipe

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"

	"github.com/rs/zerolog"

	"github.com/pg-ha/pg-ha/lib/clock"
)

// Writer sends the newest line to w from its own goroutine. Set never
// blocks: if w is slow or stopped, older lines are replaced by newer ones.
type Writer struct {
	mu      sync.Mutex
	pending *Line
	wake    chan struct{}
	w       io.Writer
	log     zerolog.Logger
	done    chan struct{}
	lastErr error
}

// NewWriter starts a writer goroutine on w; it stops when ctx is done.
// Write errors (a closed pipe) are logged once per kind and the writer keeps
// accepting lines, so the caller never stalls.
func NewWriter(ctx context.Context, w io.Writer, log zerolog.Logger) *Writer {
	wr := &Writer{wake: make(chan struct{}, 1), w: w, log: log, done: make(chan struct{})}
	go wr.run(ctx)
	return wr
}

// Set replaces the pending line with l. It never blocks.
func (w *Writer) Set(l Line) {
	w.mu.Lock()
	w.pending = &l
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Done is closed when the writer goroutine has exited.
func (w *Writer) Done() <-chan struct{} { return w.done }

func (w *Writer) run(ctx context.Context) {
	defer close(w.done)
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		}
		w.mu.Lock()
		l := w.pending
		w.pending = nil
		w.mu.Unlock()
		if l == nil {
			continue
		}
		_, err := io.WriteString(w.w, l.String()+"\n")
		if err != nil && (w.lastErr == nil || err.Error() != w.lastErr.Error()) {
			w.log.Warn().Err(err).Msg("cannot write role line")
		}
		if err == nil && w.lastErr != nil {
			w.log.Info().Msg("role lines flow again")
		}
		w.lastErr = err
	}
}

// Reader parses lines from r and publishes the newest valid one.
type Reader struct {
	r     io.Reader
	clock clock.Clock
	log   zerolog.Logger

	// OnLine, if set before Run, is called from the reading goroutine with
	// each line about to be published, before it is visible to Latest.
	OnLine func(Line)

	mu     sync.Mutex
	latest *Line
	seq    uint64
	notify chan struct{}
	eof    bool
}

// NewReader returns a Reader of r; call Run to start reading.
func NewReader(r io.Reader, c clock.Clock, log zerolog.Logger) *Reader {
	return &Reader{r: r, clock: c, log: log, notify: make(chan struct{}, 1)}
}

// Notify receives a value whenever a new line was published or input ended.
func (r *Reader) Notify() <-chan struct{} { return r.notify }

// Latest returns the newest valid line, its sequence number (0: none yet)
// and whether input has ended.
func (r *Reader) Latest() (Line, uint64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.latest == nil {
		return Line{}, 0, r.eof
	}
	return *r.latest, r.seq, r.eof
}

// Run reads until r ends or fails; it returns nil at end of input. Only
// the newest valid line of each chunk read at once is published, so a
// backlog never replays an older state after a newer one. Garbage is logged
// and skipped. Run blocks in Read; close r to stop it.
func (r *Reader) Run() error {
	buf := make([]byte, 128<<10)
	var partial []byte
	// skipping is set once an unterminated line grew past MaxLineLength:
	// everything up to its newline belongs to that garbage line.
	skipping := false
	for {
		n, err := r.r.Read(buf)
		if n > 0 {
			data := buf[:n]
			if skipping {
				i := bytes.IndexByte(data, '\n')
				if i < 0 {
					data = nil
				} else {
					data, skipping = data[i+1:], false
				}
			}
			data = append(partial, data...)
			partial = nil
			var newest *Line
			for {
				i := bytes.IndexByte(data, '\n')
				if i < 0 {
					break
				}
				raw := bytes.TrimRight(data[:i], "\r")
				data = data[i+1:]
				if len(bytes.TrimSpace(raw)) == 0 {
					continue
				}
				l, perr := Parse(string(raw), r.clock.Now())
				if perr != nil {
					r.log.Warn().Err(perr).Msg("ignoring role line")
					continue
				}
				newest = &l
			}
			if len(data) > MaxLineLength {
				r.log.Warn().Int("bytes", len(data)).Msg("ignoring overlong role line up to its end")
				data, skipping = nil, true
			}
			partial = append([]byte(nil), data...)
			if newest != nil {
				r.publish(newest)
			}
		}
		if err != nil {
			r.mu.Lock()
			r.eof = true
			r.mu.Unlock()
			r.poke()
			if errors.Is(err, io.EOF) {
				r.log.Warn().Msg("role input ended; keeping the last state, fencing at its deadline")
				return nil
			}
			return err
		}
	}
}

func (r *Reader) publish(l *Line) {
	if r.OnLine != nil {
		r.OnLine(*l)
	}
	r.mu.Lock()
	r.latest = l
	r.seq++
	r.mu.Unlock()
	r.poke()
}

func (r *Reader) poke() {
	select {
	case r.notify <- struct{}{}:
	default:
	}
}
