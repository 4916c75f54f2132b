package main

import (
	"bytes"
	"errors"
)

// The request-head parser of the hello server: a pure function over bytes
// with explicit limits, so it can be fuzzed in isolation. It understands
// exactly what the hello server needs (framing and connection
// management), not HTTP at large.

// Limits bound what ParseRequest accepts.
type Limits struct {
	MaxHeadBytes int   // request line + headers + the blank line (431 beyond)
	MaxHeaders   int   // header lines (431 beyond)
	MaxBody      int64 // Content-Length (413 beyond)
}

// DefaultLimits are the hello server's: an 8 KiB head, like most servers.
var DefaultLimits = Limits{MaxHeadBytes: 8 << 10, MaxHeaders: 100, MaxBody: 64 << 20}

// Request is the part of a request head the server acts on. Method and
// Target alias the parsed buffer.
type Request struct {
	Method        []byte
	Target        []byte
	Minor         int   // HTTP/1.Minor
	ContentLength int64 // 0 without a body
	KeepAlive     bool  // the connection stays open after the response
}

// Errors, each mapped to a status by Status.
var (
	ErrIncomplete     = errors.New("incomplete request head")
	ErrBadRequest     = errors.New("malformed request")           // 400
	ErrHeaderTooLarge = errors.New("request head too large")      // 431
	ErrBodyTooLarge   = errors.New("request body too large")      // 413
	ErrNotImplemented = errors.New("unsupported transfer coding") // 501
	ErrVersion        = errors.New("unsupported HTTP version")    // 505
)

// Status returns the HTTP status for a parse error.
func Status(err error) int {
	switch err {
	case ErrHeaderTooLarge:
		return 431
	case ErrBodyTooLarge:
		return 413
	case ErrNotImplemented:
		return 501
	case ErrVersion:
		return 505
	}
	return 400
}

// ParseRequest parses the request head at the start of buf. It returns the
// request and the head's length including the blank line that ends it, or
// ErrIncomplete when buf holds no whole head yet and is still within the
// limits (a malformed request line is reported as soon as it is complete).
// It never looks past buf[:lim.MaxHeadBytes], allocates nothing, and
// accepts only CRLF line ends.
func ParseRequest(buf []byte, lim Limits) (Request, int, error) {
	var req Request
	if len(buf) > lim.MaxHeadBytes {
		// A head must end within the limit, so nothing past it can matter:
		// without this cut a request line ending beyond the limit was
		// judged (400, 505) instead of being too large (431).
		buf = buf[:lim.MaxHeadBytes]
	}
	eol := bytes.Index(buf, crlf)
	if eol < 0 {
		if len(buf) >= lim.MaxHeadBytes {
			return req, 0, ErrHeaderTooLarge
		}
		return req, 0, ErrIncomplete
	}
	if err := parseRequestLine(buf[:eol], &req); err != nil {
		return req, 0, err
	}
	end := bytes.Index(buf, crlfcrlf)
	switch {
	case end >= 0 && end+4 > lim.MaxHeadBytes, end < 0 && len(buf) >= lim.MaxHeadBytes:
		return req, 0, ErrHeaderTooLarge
	case end < 0:
		return req, 0, ErrIncomplete
	}
	n := end + 4
	req.KeepAlive = req.Minor >= 1
	var sawCL, sawKeepAlive, sawClose bool
	headers := 0
	for p := eol + 2; p < end+2; {
		le := p + bytes.Index(buf[p:end+2], crlf)
		line := buf[p:le]
		p = le + 2
		if headers++; headers > lim.MaxHeaders {
			return req, 0, ErrHeaderTooLarge
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !isToken(line[:colon]) {
			return req, 0, ErrBadRequest // also rejects obs-fold and "Name :"
		}
		name, value := line[:colon], trimOWS(line[colon+1:])
		for _, c := range value {
			if (c < 0x20 && c != '\t') || c == 0x7f {
				return req, 0, ErrBadRequest
			}
		}
		switch {
		case asciiEqualFold(name, "content-length"):
			cl, ok := parseLength(value)
			if !ok || (sawCL && cl != req.ContentLength) {
				return req, 0, ErrBadRequest
			}
			sawCL, req.ContentLength = true, cl
		case asciiEqualFold(name, "transfer-encoding"):
			return req, 0, ErrNotImplemented
		case asciiEqualFold(name, "connection"):
			forEachToken(value, func(tok []byte) {
				if asciiEqualFold(tok, "close") {
					sawClose = true
				} else if asciiEqualFold(tok, "keep-alive") {
					sawKeepAlive = true
				}
			})
		}
	}
	if req.ContentLength > lim.MaxBody {
		return req, 0, ErrBodyTooLarge
	}
	switch {
	case sawClose:
		req.KeepAlive = false
	case sawKeepAlive:
		req.KeepAlive = true
	}
	return req, n, nil
}

var (
	crlf     = []byte("\r\n")
	crlfcrlf = []byte("\r\n\r\n")
)

// parseRequestLine parses "METHOD SP target SP HTTP/1.x".
func parseRequestLine(line []byte, req *Request) error {
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 || !isToken(line[:sp1]) {
		return ErrBadRequest
	}
	rest := line[sp1+1:]
	sp2 := bytes.IndexByte(rest, ' ')
	if sp2 <= 0 {
		return ErrBadRequest
	}
	target, version := rest[:sp2], rest[sp2+1:]
	for _, c := range target {
		if c <= ' ' || c == 0x7f {
			return ErrBadRequest
		}
	}
	if len(version) != 8 || string(version[:5]) != "HTTP/" || version[6] != '.' ||
		!isDigit(version[5]) || !isDigit(version[7]) {
		return ErrBadRequest
	}
	if version[5] != '1' {
		return ErrVersion
	}
	req.Method, req.Target, req.Minor = line[:sp1], target, int(version[7]-'0')
	return nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// parseLength parses a Content-Length: 1 to 18 decimal digits.
func parseLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// isToken reports whether b is a non-empty RFC 9110 token.
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c >= 0x80 || !tokenChars[c] {
			return false
		}
	}
	return true
}

var tokenChars = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// asciiEqualFold compares b with a lower-case ASCII string, ignoring case.
func asciiEqualFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// forEachToken calls fn for each comma-separated element of v.
func forEachToken(v []byte, fn func([]byte)) {
	for len(v) > 0 {
		i := bytes.IndexByte(v, ',')
		if i < 0 {
			i = len(v)
		}
		if tok := trimOWS(v[:i]); len(tok) > 0 {
			fn(tok)
		}
		if i == len(v) {
			break
		}
		v = v[i+1:]
	}
}
