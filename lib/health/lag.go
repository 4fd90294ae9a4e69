package health

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// The number syntaxes Patroni's strtol and strtod accept (patroni/utils.py).
var (
	hexRE = regexp.MustCompile(`^[-+]?0x[0-9a-fA-F]+`)
	octRE = regexp.MustCompile(`^[-+]?0[0-7]*`)
	decRE = regexp.MustCompile(`^[-+]?(0|[1-9][0-9]*)`)
	dblRE = regexp.MustCompile(`^[-+]?[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?`)
)

var byteUnits = map[string]float64{"B": 1, "kB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}

// roundTo is the unit a value in a unit is rounded to (Patroni's round_order).
var roundTo = map[string]string{"TB": "GB", "GB": "MB", "MB": "kB", "kB": "B"}

// ParseLag reads a ?lag= value the way Patroni's parse_int(value, 'B') does:
// an integer (decimal, 0x hexadecimal or 0-prefixed octal, as strtol) or a
// decimal fraction, optionally followed by B, kB, MB, GB or TB (1024-based,
// case-sensitive). "16MB" is 16777216. It returns ok=false for anything
// else, which Patroni treats as no limit. Values beyond int64 saturate. It
// does no I/O.
func ParseLag(s string) (int64, bool) {
	v := strings.TrimSpace(s)
	var (
		n     int64
		f     float64
		float bool
		rest  string
		found bool
	)
	for _, re := range []struct {
		re   *regexp.Regexp
		base int
	}{{hexRE, 16}, {octRE, 8}, {decRE, 10}} {
		m := re.re.FindString(v)
		if m == "" {
			continue
		}
		digits := strings.TrimLeft(m, "+-")
		if re.base == 16 {
			digits = digits[2:]
		}
		u, err := strconv.ParseUint(digits, re.base, 64)
		if err != nil || u > math.MaxInt64 {
			u = math.MaxInt64 // saturate: Python's integers do not overflow
		}
		n = int64(u)
		if m[0] == '-' {
			n = -n
		}
		rest, found = v[len(m):], true
		break
	}
	if !found {
		rest = v
	}
	if (!found && strings.HasPrefix(rest, ".")) || (rest != "" && strings.ContainsRune(".eE", rune(rest[0]))) {
		m := dblRE.FindString(v)
		if m == "" {
			return 0, false
		}
		x, err := strconv.ParseFloat(m, 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return 0, false
		}
		f, float, rest, found = x, true, v[len(m):], true
	}
	if !found {
		return 0, false
	}
	unit := strings.TrimSpace(rest)
	if unit == "" {
		if float {
			return clampInt(math.RoundToEven(f)), true
		}
		return n, true
	}
	mult, ok := byteUnits[unit]
	if !ok {
		return 0, false
	}
	if !float {
		f = float64(n)
	}
	f *= mult
	if r, ok := roundTo[unit]; ok {
		step := byteUnits[r]
		f = math.RoundToEven(f/step) * step
	}
	return clampInt(math.RoundToEven(f)), true
}

func clampInt(f float64) int64 {
	switch {
	case math.IsNaN(f):
		return 0
	case f >= math.MaxInt64:
		return math.MaxInt64
	case f <= math.MinInt64:
		return math.MinInt64
	}
	return int64(f)
}

// pyStr renders a tag value as Python's str(value).lower() does for the
// types YAML produces (Patroni compares non-string tags that way).
func pyStr(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case bool:
		if x {
			return "true"
		}
		return "false"
	case nil:
		return "none"
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case uint64:
		return strconv.FormatUint(x, 10)
	case float64:
		s := strconv.FormatFloat(x, 'g', -1, 64)
		if !strings.ContainsAny(s, ".eIN") {
			s += ".0"
		}
		return strings.ToLower(s)
	}
	return strings.ToLower(fmt.Sprint(v))
}
