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
	if i := strings.IndexByte(line, ' '); i >= 0 {
		status = trim(line[i+1:])
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
		if line[0] == ' ' || line[0] == '\t' {
			if last != "" {
				vs := h[last]
				vs[len(vs)-1] = vs[len(vs)-1] + " " + trim(line)
			}
			continue
		}
		i := strings.IndexByte(line, ':')
		if i <= 0 {
			continue
		}
		k, v := canonicalKey(line[:i]), trim(line[i+1:])
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

// trim drops the spaces and tabs around s (optional whitespace, RFC 9110
// 5.6.3).
func trim(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// canonicalKey is textproto.CanonicalMIMEHeaderKey with a cheaper check
// for keys already in canonical form, the usual case over HTTP/1.1.
func canonicalKey(k string) string {
	upper := true
	for i := 0; i < len(k); i++ {
		c := k[i]
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			return textproto.CanonicalMIMEHeaderKey(k)
		}
		upper = c == '-'
	}
	return k
}

// cutLine splits s after its first line, dropping the CR LF or LF.
func cutLine(s string) (line, rest string) {
	i := strings.IndexByte(s, '\n')
	if i < 0 {
		line = s
	} else {
		line, rest = s[:i], s[i+1:]
	}
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, rest
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
	if len(s) < len(prefix) || s[:len(prefix)] == prefix {
		return len(s) >= len(prefix)
	}
	return strings.EqualFold(s[:len(prefix)], prefix)
}
