package pgdata

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/pg-ha/pg-ha/lib/config"
	"github.com/pg-ha/pg-ha/lib/pg"
	"github.com/pg-ha/pg-ha/lib/state"
)

// Progress says how far a clone or restore has got (Percent, String). It
// is lib/state's, which publishes it.
type Progress = state.Progress

var (
	// pg_basebackup --progress: "  123456/7890123 kB (1%), 0/1 tablespace".
	basebackupProgress = regexp.MustCompile(`(\d+)/(\d+) kB \(`)
	// A method's own output: "43%", "43.5 %".
	percentProgress = regexp.MustCompile(`(?:^|[^\d.])(\d{1,3}(?:\.\d+)?) ?%(?:$|[^\w])`)
)

// ParseProgress reads a progress report from one line of a clone's output:
// pg_basebackup's "done/total kB (n%)", or a percentage a method prints
// (reported as Done out of a Total of 100). ok is false for other lines.
func ParseProgress(line string) (p Progress, ok bool) {
	if m := basebackupProgress.FindStringSubmatch(line); m != nil {
		done, _ := strconv.ParseInt(m[1], 10, 64)
		total, _ := strconv.ParseInt(m[2], 10, 64)
		return Progress{Done: done << 10, Total: total << 10}, true
	}
	if m := percentProgress.FindStringSubmatch(line); m != nil {
		f, err := strconv.ParseFloat(m[1], 64)
		if err == nil && f <= 100 {
			return Progress{Done: int64(f), Total: 100}, true
		}
	}
	return Progress{}, false
}

// RunMethod runs the command line cmdline with args appended, as the data
// directory's owner, with the node's pgpass file, to completion. Every line
// of its output (stdout and stderr; "\r" ends a line too) goes to onLine
// when not nil. A non-zero exit returns an error naming the program with
// the last lines of its output.
func (n *Node) RunMethod(ctx context.Context, cmdline string, args []string, onLine func(string)) error {
	words, err := config.SplitCommand(cmdline)
	if err != nil {
		return fmt.Errorf("%q: %w", cmdline, err)
	}
	return n.runLines(ctx, "", words[0], append(words[1:], args...), onLine)
}

// runLines runs binDir/name (name alone when binDir is "": an absolute path
// or a program on PATH) as the owner and feeds onLine its output.
func (n *Node) runLines(ctx context.Context, binDir, name string, args []string, onLine func(string)) error {
	cmd := pg.Command(ctx, n.Owner, binDir, name, args, "PGPASSFILE="+n.Pgpass())
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return fmt.Errorf("%s: %w", name, err)
	}
	w.Close()
	var tail tailBuffer
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	sc.Split(scanLinesCR)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), " ")
		if strings.TrimSpace(line) == "" {
			continue
		}
		tail.add(line)
		if onLine != nil {
			onLine(line)
		}
	}
	_, _ = io.Copy(io.Discard, r)
	r.Close()
	if err := cmd.Wait(); err != nil {
		t := tail.String()
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w (%w): %s", name, ctx.Err(), err, t)
		}
		if t == "" {
			return fmt.Errorf("%s: %w", name, err)
		}
		return fmt.Errorf("%s: %w: %s", name, err, t)
	}
	return nil
}

// scanLinesCR splits at "\n" or "\r": progress reports on a terminal end
// with "\r".
func scanLinesCR(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
		return i + 1, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

// tailBuffer keeps the last three lines of output, for error messages.
type tailBuffer struct{ lines []string }

func (t *tailBuffer) add(s string) {
	if _, ok := ParseProgress(s); ok && basebackupProgress.MatchString(s) {
		return
	}
	if len(s) > 300 {
		s = s[:300]
	}
	t.lines = append(t.lines, strings.TrimSpace(s))
	if len(t.lines) > 3 {
		t.lines = t.lines[1:]
	}
}

func (t *tailBuffer) String() string { return strings.Join(t.lines, " | ") }
