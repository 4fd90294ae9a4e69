package config

import (
	"errors"
	"fmt"
	"strings"
)

// SplitCommand splits a command line the way Patroni does for callbacks,
// pre_promote and before_stop (Python's shlex.split, POSIX mode): words are
// separated by blanks; single quotes keep everything literally; double
// quotes keep everything but a backslash before '"' or '\'; outside quotes
// a backslash keeps the next character. No variable, glob or other shell
// expansion happens. It is pure; an unterminated quote or a trailing
// backslash is an error, and so is a line without a word.
func SplitCommand(s string) ([]string, error) {
	var (
		words   []string
		cur     strings.Builder
		inWord  bool
		quote   rune // 0, '\'' or '"'
		escaped bool
	)
	for _, r := range s {
		switch {
		case escaped:
			if quote == '"' && r != '"' && r != '\\' {
				cur.WriteRune('\\')
			}
			cur.WriteRune(r)
			escaped = false
		case quote == '\'':
			if r == '\'' {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case quote == '"':
			switch r {
			case '"':
				quote = 0
			case '\\':
				escaped = true
			default:
				cur.WriteRune(r)
			}
		case r == '\\':
			escaped, inWord = true, true
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t' || r == '\n' || r == '\r':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	switch {
	case escaped:
		return nil, errors.New("ends with a backslash")
	case quote != 0:
		return nil, fmt.Errorf("unterminated %c quote", quote)
	}
	if inWord {
		words = append(words, cur.String())
	}
	if len(words) == 0 {
		return nil, errors.New("no command")
	}
	return words, nil
}

// CallbackActions are the callbacks of postgresql.callbacks, in Patroni's
// names.
var CallbackActions = []string{"on_start", "on_stop", "on_restart", "on_reload", "on_role_change"}
