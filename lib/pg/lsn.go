package pg

import (
	"fmt"
	"strconv"
	"strings"
)

// LSN is a WAL position (a PostgreSQL pg_lsn): a byte offset into the
// write-ahead log. The zero LSN means "none" or "unknown".
type LSN uint64

// ParseLSN parses the textual form PostgreSQL prints, two hexadecimal
// numbers of at most 8 digits each separated by a slash ("0/3000148"), in
// either letter case. It does no I/O. It returns an error for anything
// else: empty halves, signs, spaces, too many digits, a missing slash.
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok || !isHex8(hi) || !isHex8(lo) {
		return 0, fmt.Errorf("parse LSN %q: want two hexadecimal numbers separated by '/'", s)
	}
	h, err := strconv.ParseUint(hi, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("parse LSN %q: %w", s, err)
	}
	l, err := strconv.ParseUint(lo, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("parse LSN %q: %w", s, err)
	}
	return LSN(h<<32 | l), nil
}

// isHex8 reports whether s is 1 to 8 hexadecimal digits and nothing else.
func isHex8(s string) bool {
	if len(s) == 0 || len(s) > 8 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// String formats l the way PostgreSQL does ("0/3000148": upper-case hex,
// no leading zeros). ParseLSN(l.String()) == l for every l.
func (l LSN) String() string {
	return fmt.Sprintf("%X/%X", uint32(l>>32), uint32(l))
}
