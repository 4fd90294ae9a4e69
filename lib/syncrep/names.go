package syncrep

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// StrictPlaceholder is the standby name listed in synchronous_standby_names
// when synchronous_mode_strict finds no standby: no standby has that
// application_name, so commits wait until a real standby is listed. It is
// Patroni's name, so either program recognises the other's placeholder.
const StrictPlaceholder = "__patroni_strict_sync_replica_placeholder__"

// Method is how synchronous_standby_names picks the standbys a commit
// waits for.
type Method int

const (
	// Off: synchronous_standby_names is empty; commits wait for nobody.
	Off Method = iota
	// Priority: FIRST n (list), or the bare forms "n (list)" and "list"
	// (FIRST 1): the first n connected standbys of the list, in order.
	Priority
	// Quorum: ANY n (list): any n standbys of the list.
	Quorum
)

func (m Method) String() string {
	switch m {
	case Off:
		return "off"
	case Priority:
		return "priority"
	case Quorum:
		return "quorum"
	}
	return "Method(" + strconv.Itoa(int(m)) + ")"
}

// StandbyNames is a parsed synchronous_standby_names.
type StandbyNames struct {
	Method Method
	// Num is how many standbys a commit waits for (0 when Off).
	Num int
	// Names are the standby names as listed, unquoted, each once (compared
	// case-insensitively, like PostgreSQL), without StrictPlaceholder. "*"
	// (any standby) is listed as "*".
	Names []string
	// Star: the list contains "*".
	Star bool
	// Placeholder: the list is StrictPlaceholder alone, so commits wait for
	// a standby that does not exist (strict mode with no standby).
	Placeholder bool
}

// NewStandbyNames returns the setting that makes commits wait for num of
// names: ANY num (names) when quorum, FIRST num (names) otherwise. names
// are sorted and deduplicated case-insensitively; num is capped at their
// number. With no names, a num of 0 turns synchronous replication off and
// a num of 1 or more lists StrictPlaceholder (commits block until a standby
// is listed). It never blocks.
func NewStandbyNames(quorum bool, num int, names []string) StandbyNames {
	list := dedup(names)
	slices.Sort(list)
	m := Priority
	if quorum {
		m = Quorum
	}
	switch {
	case slices.Contains(list, "*"):
		return StandbyNames{Method: m, Num: max(num, 1), Names: []string{"*"}, Star: true}
	case len(list) == 0 && num > 0:
		return StandbyNames{Method: m, Num: 1, Placeholder: true}
	case len(list) == 0:
		return StandbyNames{}
	}
	if num <= 0 || num > len(list) {
		num = min(max(num, 1), len(list))
	}
	return StandbyNames{Method: m, Num: num, Names: list}
}

// String renders the setting: "" when Off, else "FIRST n (a,b)" or
// "ANY n (a,b)" with names quoted where PostgreSQL needs it. It never
// blocks.
func (s StandbyNames) String() string {
	if s.Method == Off {
		return ""
	}
	var list []string
	switch {
	case s.Placeholder:
		list = []string{StrictPlaceholder}
	default:
		for _, n := range s.Names {
			if n == "*" {
				list = append(list, n)
			} else {
				list = append(list, QuoteName(n))
			}
		}
	}
	if len(list) == 0 {
		return ""
	}
	kw := "FIRST"
	if s.Method == Quorum {
		kw = "ANY"
	}
	return fmt.Sprintf("%s %d (%s)", kw, max(s.Num, 1), strings.Join(list, ","))
}

// Has reports whether name is listed (case-insensitively, as PostgreSQL
// matches application_name); "*" lists every name. It never blocks.
func (s StandbyNames) Has(name string) bool {
	for _, n := range s.Names {
		if n == "*" || strings.EqualFold(n, name) {
			return true
		}
	}
	return false
}

// QuoteName returns name as it may appear in synchronous_standby_names:
// unchanged when it is a plain identifier (letters, digits, "_" and "$", not
// starting with a digit) other than the keywords FIRST and ANY, otherwise in
// double quotes with inner double quotes doubled. It never blocks.
func QuoteName(name string) string {
	if plainIdent(name) && !strings.EqualFold(name, "first") && !strings.EqualFold(name, "any") {
		return name
	}
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

func plainIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range []byte(s) {
		switch {
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '$'):
		default:
			return false
		}
	}
	return true
}

// ParseStandbyNames parses synchronous_standby_names with PostgreSQL's
// syntax: "" (off); a bare list "a, b" (FIRST 1); "n (list)" and
// "FIRST n (list)" (priority); "ANY n (list)" (quorum). Keywords are
// case-insensitive; a name is an identifier (letters — any byte above 127
// counts as one, as in PostgreSQL —, digits, "_", "$"), a number, "*", or
// a double-quoted string with "" for a quote. Like Patroni, and unlike
// PostgreSQL, it also takes the keywords FIRST and ANY as names in a list;
// it reads what PostgreSQL accepted, so leniency costs nothing. A list
// holding only StrictPlaceholder yields Placeholder and no Names. It never
// blocks; the error names the offending token and its byte offset.
func ParseStandbyNames(value string) (StandbyNames, error) {
	toks, err := lexStandbyNames(value)
	if err != nil {
		return StandbyNames{}, fmt.Errorf("synchronous_standby_names %q: %w", value, err)
	}
	if len(toks) == 0 {
		return StandbyNames{}, nil
	}
	kinds := func(ks ...tokKind) bool {
		if len(toks) < len(ks)+1 || toks[len(toks)-1].kind != tokRParen {
			return false
		}
		for i, k := range ks {
			if toks[i].kind != k {
				return false
			}
		}
		return true
	}
	out := StandbyNames{Method: Priority, Num: 1}
	list := toks
	switch {
	case kinds(tokAny, tokNum, tokLParen):
		out.Method, list = Quorum, toks[3:len(toks)-1]
		out.Num, err = strconv.Atoi(toks[1].text)
	case kinds(tokFirst, tokNum, tokLParen):
		list = toks[3 : len(toks)-1]
		out.Num, err = strconv.Atoi(toks[1].text)
	case kinds(tokNum, tokLParen):
		list = toks[2 : len(toks)-1]
		out.Num, err = strconv.Atoi(toks[0].text)
	}
	if err != nil || out.Num <= 0 {
		return StandbyNames{}, fmt.Errorf("synchronous_standby_names %q: the number of synchronous standbys must be a positive integer", value)
	}
	var names []string
	for i, t := range list {
		if i%2 == 1 {
			if t.kind != tokComma || i == len(list)-1 {
				return StandbyNames{}, fmt.Errorf("synchronous_standby_names %q: unexpected %q at offset %d, want a comma between names", value, t.text, t.pos)
			}
			continue
		}
		switch t.kind {
		case tokIdent, tokNum, tokFirst, tokAny, tokQuoted:
			names = append(names, t.text)
		case tokStar:
			names = append(names, "*")
			out.Star = true
		default:
			return StandbyNames{}, fmt.Errorf("synchronous_standby_names %q: unexpected %q at offset %d, want a standby name", value, t.text, t.pos)
		}
	}
	if len(names) == 0 {
		return StandbyNames{}, fmt.Errorf("synchronous_standby_names %q: no standby name listed", value)
	}
	out.Names = dedup(names)
	if len(out.Names) == 1 && strings.EqualFold(out.Names[0], StrictPlaceholder) {
		out.Names, out.Placeholder = nil, true
	}
	return out, nil
}

type tokKind int

const (
	tokIdent tokKind = iota
	tokQuoted
	tokNum
	tokFirst
	tokAny
	tokStar
	tokComma
	tokLParen
	tokRParen
)

type token struct {
	kind tokKind
	text string // unquoted for tokQuoted
	pos  int
}

func identByte(c byte, first bool) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80 ||
		!first && (c >= '0' && c <= '9' || c == '$')
}

// lexStandbyNames follows PostgreSQL's syncrep_scanner.l.
func lexStandbyNames(s string) ([]token, error) {
	var toks []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			i++
		case c == ',':
			toks = append(toks, token{tokComma, ",", i})
			i++
		case c == '(':
			toks = append(toks, token{tokLParen, "(", i})
			i++
		case c == ')':
			toks = append(toks, token{tokRParen, ")", i})
			i++
		case c == '*':
			toks = append(toks, token{tokStar, "*", i})
			i++
		case c >= '0' && c <= '9':
			j := i
			for j < len(s) && s[j] >= '0' && s[j] <= '9' {
				j++
			}
			toks = append(toks, token{tokNum, s[i:j], i})
			i = j
		case c == '"':
			var b strings.Builder
			j := i + 1
			for {
				if j >= len(s) {
					return nil, fmt.Errorf("unterminated quoted name at offset %d", i)
				}
				if s[j] == '"' {
					if j+1 < len(s) && s[j+1] == '"' {
						b.WriteByte('"')
						j += 2
						continue
					}
					break
				}
				b.WriteByte(s[j])
				j++
			}
			toks = append(toks, token{tokQuoted, b.String(), i})
			i = j + 1
		case identByte(c, true):
			j := i + 1
			for j < len(s) && identByte(s[j], false) {
				j++
			}
			t := token{tokIdent, s[i:j], i}
			switch strings.ToLower(t.text) {
			case "first":
				t.kind = tokFirst
			case "any":
				t.kind = tokAny
			}
			toks = append(toks, t)
			i = j
		default:
			return nil, fmt.Errorf("unexpected %q at offset %d", c, i)
		}
	}
	return toks, nil
}

// dedup keeps the first spelling of each name, compared case-insensitively.
func dedup(names []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, n := range names {
		if k := strings.ToLower(n); !seen[k] {
			seen[k] = true
			out = append(out, n)
		}
	}
	return out
}
