//go:build linux && cgo

package curl

import (
	"fmt"
	"net/http"
	"net/textproto"
	"strings"
	"time"
)

// parseHeader parses a response header block as libcurl delivered it
// (status line, fields, blank line; CRLF or LF line ends) into the text of
// the status line after the protocol and the fields. block is one string,
// and every key and value is a substring of it: a few allocations per
// response (the map, one backing array of values) whatever the number of
// fields. Keys are canonicalized (textproto); obsolete line folding is
// joined with a space; lines without a colon are skipped.
func parseHeader(block string) (status string, h http.Header) {
	line, rest := cutLine(block)
	if _, st, ok := strings.Cut(line, " "); ok {
		status = strings.TrimSpace(st)
	}
	n := strings.Count(rest, "\n")
	h = make(http.Header, n)
	if n == 0 {
		return status, h
	}
	vals := make([]string, 0, n)
	var last string // key of the previous field, for folded lines
	for rest != "" {
		line, rest = cutLine(rest)
		if line == "" {
			break // end of the block
		}
		if (line[0] == ' ' || line[0] == '\t') && last != "" {
			vs := h[last]
			vs[len(vs)-1] = vs[len(vs)-1] + " " + strings.TrimSpace(line)
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok || k == "" {
			continue
		}
		k = textproto.CanonicalMIMEHeaderKey(k)
		v = strings.TrimSpace(v)
		if vs, seen := h[k]; seen {
			h[k] = append(vs, v)
		} else {
			vals = append(vals, v)
			h[k] = vals[len(vals)-1 : len(vals) : len(vals)]
		}
		last = k
	}
	return status, h
}

// cutLine splits s after its first line, dropping the CR LF or LF.
func cutLine(s string) (line, rest string) {
	i := strings.IndexByte(s, '\n')
	if i < 0 {
		return strings.TrimSuffix(s, "\r"), ""
	}
	return strings.TrimSuffix(s[:i], "\r"), s[i+1:]
}

// validToken reports whether s is an HTTP token (RFC 9110 5.6.2): a valid
// method or field name.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			continue
		}
		if strings.IndexByte("!#$%&'*+-.^_`|~", c) < 0 {
			return false
		}
	}
	return true
}

// validValue reports whether s can be sent as a field value: no CR, LF or
// NUL, which would end the field or the C string early.
func validValue(s string) bool {
	return strings.IndexByte(s, '\r') < 0 && strings.IndexByte(s, '\n') < 0 && strings.IndexByte(s, 0) < 0
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidRequest}, args...)...)
}

// ceilMs converts a positive duration to whole milliseconds, rounding up so
// that a timeout under 1 ms does not become 0 (which libcurl reads as
// "none").
func ceilMs(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
