package cli

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"

	"github.com/alecthomas/kong"
)

// missingValue matches kong's error for a flag given without its value: at
// the end of the line ("EOL") or followed by another flag.
var missingValue = regexp.MustCompile(`^(-{1,2}[\w.-]+): (?:expected .*value but got "(.*)" \((<EOL>|long flag|short flag)\)|missing value)`)

// missingArg matches kong's error for a command run without its required
// argument: expected "<name>" or expected "<name> ...".
var missingArg = regexp.MustCompile(`^expected "<([\w-]+)>(?: \.\.\.)?"$`)

// usageError rewrites the kong parse errors a new user meets first into one
// line that says what to type instead; any other error is returned as is.
//   - A flag without its value: "--to needs a member name, e.g. --to node2".
//     The words come from the flag's tags needs:"a member name" and
//     example:"node2"; without them, its placeholder and default.
//   - A word where a command was expected: "unknown command lsit; did you
//     mean list?", or the list of commands when nothing is close.
func usageError(root *kong.Node, args []string, err error) error {
	msg := err.Error()
	var pe *kong.ParseError
	if m := missingValue.FindStringSubmatch(msg); m != nil {
		// The selected command's flags first: two commands may spell a
		// flag alike.
		var f *kong.Flag
		if errors.As(err, &pe) && pe.Context != nil {
			for n := pe.Context.Selected(); n != nil && f == nil; n = n.Parent {
				f = nodeFlag(n, m[1])
			}
		}
		if f == nil {
			f = findFlag(root, m[1])
		}
		if f != nil {
			line := missingValueLine(f)
			if m[3] != "<EOL>" && m[3] != "" {
				line += fmt.Sprintf(" (it was followed by %s)", m[2])
			}
			return errors.New(line)
		}
		return err
	}
	if m := missingArg.FindStringSubmatch(msg); m != nil && errors.As(err, &pe) && pe.Context != nil {
		if sel := pe.Context.Selected(); sel != nil {
			for _, p := range sel.Positional {
				if p.Name == m[1] {
					return errors.New(missingArgLine(root, sel, p))
				}
			}
		}
		return err
	}
	word, ok := strings.CutPrefix(msg, "unexpected argument ")
	if !ok || len(root.Children) == 0 {
		return err
	}
	word, _, _ = strings.Cut(word, ",") // kong's own ", did you mean …"
	if errors.As(err, &pe) && pe.Context != nil {
		sel := pe.Context.Selected()
		// Only where the word stands for a command: nothing selected, or the
		// default command taken because the word matched no other.
		explicit := sel != nil && slices.Contains(args, sel.Name)
		if sel != nil && (sel != root.DefaultCmd || explicit || len(sel.Positional) > 0) {
			return err
		}
	}
	return unknownCommand(root, word)
}

func unknownCommand(root *kong.Node, word string) error {
	var names, close []string
	best := 3
	for _, c := range root.Children {
		if c.Hidden || c.Type != kong.CommandNode {
			continue
		}
		names = append(names, c.Name)
		for _, n := range append([]string{c.Name}, c.Aliases...) {
			d := levenshtein(strings.ToLower(word), n)
			switch {
			case strings.HasPrefix(n, word) && len(word) >= 2:
				d = 0 // an abbreviation beats a typo
			case d >= len([]rune(word)):
				continue // "p" is not a typo of "dsn"
			}
			switch {
			case d < best:
				best, close = d, []string{c.Name}
			case d == best && !slices.Contains(close, c.Name):
				close = append(close, c.Name)
			}
		}
	}
	switch len(close) {
	case 0:
		return fmt.Errorf("unknown command %s (commands: %s)", word, strings.Join(names, ", "))
	case 1:
		return fmt.Errorf("unknown command %s; did you mean %s?", word, close[0])
	default:
		return fmt.Errorf("unknown command %s; did you mean one of %s?", word, strings.Join(close, ", "))
	}
}

// missingArgLine says what command cmd needs: "restart needs a member
// name, e.g. pg-failover restart node2", from the argument's tags needs and
// example.
func missingArgLine(root, cmd *kong.Node, arg *kong.Value) string {
	path := cmd.Name
	for n := cmd.Parent; n != nil && n != root; n = n.Parent {
		path = n.Name + " " + path
	}
	needs := arg.Tag.Get("needs")
	if needs == "" {
		needs = strings.ToUpper(arg.Name)
	}
	line := path + " needs " + needs
	if ex := arg.Tag.Get("example"); ex != "" {
		line += ", e.g. " + root.Name + " " + path + " " + ex
	}
	return line
}

// missingValueLine says what flag f needs: "--to needs a member name, e.g.
// --to node2".
func missingValueLine(f *kong.Flag) string {
	name := "--" + f.Name
	needs := f.Tag.Get("needs")
	if needs == "" {
		needs = "a value"
	}
	example := f.Tag.Get("example")
	if example == "" {
		example = f.Default
	}
	if example == "" {
		return name + " needs " + needs
	}
	return name + " needs " + needs + ", e.g. " + name + " " + example
}

// findFlag finds the flag spelled s ("--to", "-c", an alias) anywhere in
// the command tree.
func findFlag(n *kong.Node, s string) *kong.Flag {
	if f := nodeFlag(n, s); f != nil {
		return f
	}
	for _, c := range n.Children {
		if f := findFlag(c, s); f != nil {
			return f
		}
	}
	return nil
}

func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// defaultCommandHelp appends the default command's flags to the top-level
// --help: they are what `pg-failover --to node2` uses, and a reader of the
// top-level help should not have to guess that they exist.
func defaultCommandHelp(w io.Writer, ctx *kong.Context) error {
	root := ctx.Model.Node
	d := root.DefaultCmd
	if ctx.Selected() != nil || d == nil {
		return nil
	}
	var rows [][2]string
	for _, f := range d.Flags {
		if f.Hidden {
			continue
		}
		s := "--" + f.Name
		if f.Short != 0 {
			s = "-" + string(f.Short) + ", " + s
		} else {
			s = "    " + s
		}
		if !f.IsBool() {
			s += "=" + f.FormatPlaceHolder()
		}
		rows = append(rows, [2]string{s, f.Help})
	}
	if len(rows) == 0 {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n%s flags (the default command: they work without the word %q):\n", capitalise(d.Name), d.Name)
	const col, width = 29, 100
	for _, r := range rows {
		left := "  " + r[0]
		words := strings.Fields(r[1])
		line := left
		if len(left) >= col-1 {
			b.WriteString(line + "\n")
			line = ""
		}
		line += strings.Repeat(" ", col-len([]rune(line)))
		start := true
		for _, wd := range words {
			if !start && len([]rune(line))+1+len([]rune(wd)) > width {
				b.WriteString(line + "\n")
				line = strings.Repeat(" ", col)
				start = true
			}
			if !start {
				line += " "
			}
			line += wd
			start = false
		}
		b.WriteString(line + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func capitalise(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// nodeFlag finds the flag spelled s among n's own flags.
func nodeFlag(n *kong.Node, s string) *kong.Flag {
	for _, f := range n.Flags {
		if "--"+f.Name == s || (f.Short != 0 && "-"+string(f.Short) == s) {
			return f
		}
		for _, a := range f.Aliases {
			if "--"+a == s {
				return f
			}
		}
	}
	return nil
}
