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
// limits (a malformed request line is reported as soon as it is complete,
// a malformed header once the whole head is there). On an error, Method,
// Target and Minor are set if the request line parsed. It never looks past
// buf[:lim.MaxHeadBytes], allocates nothing, and accepts only CRLF line
// ends.
//
// It reads the head once, front to back: each byte is looked at by one
// table-driven loop (span: the method, the target, a header name, a
// value), and the byte that stops a loop is the next part's delimiter or
// the line's end; only a Connection value is read again, for its tokens.
// Only an error sends it looking ahead, for whether the head (or the
// request line) is complete, so that it can tell ErrIncomplete from a
// final error.
func ParseRequest(buf []byte, lim Limits) (Request, int, error) {
	var req Request
	if len(buf) > lim.MaxHeadBytes {
		// A head must end within the limit, so nothing past it can matter:
		// without this cut a request line ending beyond the limit was
		// judged (400, 505) instead of being too large (431).
		buf = buf[:lim.MaxHeadBytes]
	}
	p, err := parseRequestLine(buf, &req)
	if err != nil {
		// A bad request line is final only once it is complete.
		if err == ErrIncomplete || !bytes.Contains(buf, crlf) {
			err = incomplete(buf, lim)
		}
		return req, 0, err
	}
	req.KeepAlive = req.Minor >= 1
	var sawCL, sawKeepAlive, sawClose bool
	for headers := 0; ; headers++ {
		// p is the start of a line: the blank one that ends the head, or
		// "name: value".
		if p+1 < len(buf) && buf[p] == '\r' && buf[p+1] == '\n' {
			p += 2
			break
		}
		if headers >= lim.MaxHeaders {
			return req, 0, headError(buf, p, lim, ErrHeaderTooLarge)
		}
		// The name: a token, then a colon (this also rejects obs-fold,
		// "Name :" and a bare CR or LF).
		i := span(buf, p, &tokenChars)
		if i == len(buf) {
			return req, 0, incomplete(buf, lim)
		}
		if i == p || buf[i] != ':' {
			return req, 0, headError(buf, p, lim, ErrBadRequest)
		}
		name := buf[p:i]
		// The value: optional whitespace, then visible bytes, spaces and
		// tabs up to CRLF; trailing whitespace is not part of it.
		i = span(buf, i+1, &owsChars)
		vs := i
		i = span(buf, i, &valueChars)
		switch {
		case i == len(buf), buf[i] == '\r' && i+1 == len(buf):
			return req, 0, incomplete(buf, lim)
		case buf[i] != '\r' || buf[i+1] != '\n':
			return req, 0, headError(buf, p, lim, ErrBadRequest)
		}
		value := buf[vs:i]
		for len(value) > 0 && owsChars[value[len(value)-1]] {
			value = value[:len(value)-1]
		}
		p = i + 2
		switch len(name) {
		case len("content-length"):
			if asciiEqualFold(name, "content-length") {
				cl, ok := parseLength(value)
				if !ok || (sawCL && cl != req.ContentLength) {
					return req, 0, headError(buf, p, lim, ErrBadRequest)
				}
				sawCL, req.ContentLength = true, cl
			}
		case len("transfer-encoding"):
			if asciiEqualFold(name, "transfer-encoding") {
				return req, 0, headError(buf, p, lim, ErrNotImplemented)
			}
		case len("connection"):
			if asciiEqualFold(name, "connection") {
				c, k := connectionTokens(value)
				sawClose, sawKeepAlive = sawClose || c, sawKeepAlive || k
			}
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
	return req, p, nil
}

// incomplete is the answer for a head that has not ended within buf:
// ErrIncomplete, or ErrHeaderTooLarge when buf already holds the limit.
func incomplete(buf []byte, lim Limits) error {
	if len(buf) >= lim.MaxHeadBytes {
		return ErrHeaderTooLarge
	}
	return ErrIncomplete
}

// headError returns err, found in the header line at or before from, if
// the head ends within buf; else the head is incomplete, and err waits
// until it is not (the first bad line of a whole head is reported).
func headError(buf []byte, from int, lim Limits, err error) error {
	// The head's end cannot start before from-2, and starts there only if
	// the line at from is blank, which a bad line is not; a line already
	// read may be blank-ended right at from-2 (Transfer-Encoding as the
	// last header), so look from there.
	if !bytes.Contains(buf[max(from-2, 0):], crlfcrlf) {
		return incomplete(buf, lim)
	}
	return err
}

var (
	crlf     = []byte("\r\n")
	crlfcrlf = []byte("\r\n\r\n")
)

// parseRequestLine parses "METHOD SP target SP HTTP/1.x CRLF" at the start
// of buf and returns where the headers start. A bad line is ErrBadRequest or
// ErrVersion even when it has not ended yet (the caller decides), and a
// good one that has not ended is ErrIncomplete or ErrHeaderTooLarge.
func parseRequestLine(buf []byte, req *Request) (int, error) {
	i := span(buf, 0, &tokenChars)
	if i == len(buf) {
		return 0, ErrIncomplete
	}
	if i == 0 || buf[i] != ' ' {
		return 0, ErrBadRequest
	}
	method := buf[:i]
	t := i + 1
	i = span(buf, t, &targetChars)
	if i == len(buf) {
		return 0, ErrIncomplete
	}
	if i == t || buf[i] != ' ' {
		return 0, ErrBadRequest
	}
	target := buf[t:i]
	i++
	// "HTTP/1.1\r\n", or anything else up to the line's end.
	v := buf[i:]
	if len(v) < len("HTTP/1.1\r\n") {
		if !bytes.Contains(v, crlf) {
			return 0, ErrIncomplete
		}
		return 0, ErrBadRequest
	}
	if string(v[:5]) != "HTTP/" || !isDigit(v[5]) || v[6] != '.' || !isDigit(v[7]) || v[8] != '\r' || v[9] != '\n' {
		return 0, ErrBadRequest
	}
	if v[5] != '1' {
		return 0, ErrVersion
	}
	req.Method, req.Target, req.Minor = method, target, int(v[7]-'0')
	return i + len("HTTP/1.1\r\n"), nil
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

// tokenChars are the bytes of an RFC 9110 token (a method, a header name).
// 256 entries, so that any byte indexes it without a bounds check.
var tokenChars = func() (t [256]bool) {
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

// span returns the index of the first byte of b at or after i that is not
// in set, or len(b): the one loop every part of the head is read with.
// (The unsigned compare lets the compiler drop the bounds check.)
func span(b []byte, i int, set *[256]bool) int {
	for uint(i) < uint(len(b)) && set[b[i]] {
		i++
	}
	return i
}

// owsChars are optional whitespace: space and tab.
var owsChars = [256]bool{' ': true, '\t': true}

// targetChars are the bytes a request target may hold: anything but
// controls, space and DEL.
var targetChars = func() (t [256]bool) {
	for c := 0x21; c < 0x100; c++ {
		t[c] = c != 0x7f
	}
	return t
}()

// valueChars are the bytes a header value may hold: visible ASCII,
// space, tab and obs-text (0x80 and up); not CR, LF, other controls or DEL.
var valueChars = func() (t [256]bool) {
	for c := 0x20; c < 0x100; c++ {
		t[c] = c != 0x7f
	}
	t['\t'] = true
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

// connectionTokens reports whether a Connection value lists "close" and
// "keep-alive" among its comma-separated elements (any case, OWS around
// each).
func connectionTokens(v []byte) (closeTok, keepAliveTok bool) {
	for len(v) > 0 {
		i := bytes.IndexByte(v, ',')
		if i < 0 {
			i = len(v)
		}
		switch tok := trimOWS(v[:i]); {
		case asciiEqualFold(tok, "close"):
			closeTok = true
		case asciiEqualFold(tok, "keep-alive"):
			keepAliveTok = true
		}
		if i == len(v) {
			break
		}
		v = v[i+1:]
	}
	return closeTok, keepAliveTok
}
