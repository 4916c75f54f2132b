package main

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
)

func TestParseRequest(t *testing.T) {
	lim := DefaultLimits
	big := "GET / HTTP/1.1\r\nX: " + strings.Repeat("a", 9000) + "\r\n\r\n"
	cases := []struct {
		name, in  string
		err       error
		keepAlive bool
		cl        int64
		minor     int
	}{
		{"minimal 1.1", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", nil, true, 0, 1},
		{"no headers", "GET / HTTP/1.1\r\n\r\n", nil, true, 0, 1},
		{"1.0 closes", "GET / HTTP/1.0\r\n\r\n", nil, false, 0, 0},
		{"1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", nil, true, 0, 0},
		{"1.1 close", "GET / HTTP/1.1\r\nConnection: foo, close\r\n\r\n", nil, false, 0, 1},
		{"body", "POST /x HTTP/1.1\r\nContent-Length: 12\r\n\r\n", nil, true, 12, 1},
		{"same length twice", "POST / HTTP/1.1\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\n", nil, true, 3, 1},
		{"OWS", "GET / HTTP/1.1\r\nContent-Length: \t5 \r\n\r\n", nil, true, 5, 1},
		{"incomplete line", "GET / HTT", ErrIncomplete, false, 0, 0},
		{"incomplete head", "GET / HTTP/1.1\r\nHost: x\r\n", ErrIncomplete, false, 0, 0},
		{"garbage line", "HELLO\r\n", ErrBadRequest, false, 0, 0},
		{"no target", "GET  HTTP/1.1\r\n\r\n", ErrBadRequest, false, 0, 0},
		{"bad method", "G(T / HTTP/1.1\r\n\r\n", ErrBadRequest, false, 0, 0},
		{"bad version", "GET / HTTP/1.x\r\n\r\n", ErrBadRequest, false, 0, 0},
		{"extra space", "GET / HTTP/1.1 \r\n\r\n", ErrBadRequest, false, 0, 0},
		{"http2", "GET / HTTP/2.0\r\n\r\n", ErrVersion, false, 0, 0},
		{"control in target", "GET /\x01 HTTP/1.1\r\n\r\n", ErrBadRequest, false, 0, 0},
		{"no colon", "GET / HTTP/1.1\r\nHost\r\n\r\n", ErrBadRequest, false, 0, 0},
		{"space before colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", ErrBadRequest, false, 0, 0},
		{"obs-fold", "GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", ErrBadRequest, false, 0, 0},
		{"bare LF in value", "GET / HTTP/1.1\r\nA: b\nc\r\n\r\n", ErrBadRequest, false, 0, 0},
		{"bad length", "POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", ErrBadRequest, false, 0, 0},
		{"negative length", "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", ErrBadRequest, false, 0, 0},
		{"conflicting lengths", "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", ErrBadRequest, false, 0, 0},
		{"huge length", "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", ErrBadRequest, false, 0, 0},
		{"body over limit", "POST / HTTP/1.1\r\nContent-Length: 999999999999\r\n\r\n", ErrBodyTooLarge, false, 0, 0},
		{"chunked", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", ErrNotImplemented, false, 0, 0},
		{"gzip", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", ErrNotImplemented, false, 0, 0},
		{"head too large", big, ErrHeaderTooLarge, false, 0, 0},
		{"incomplete and too large", big[:9000], ErrHeaderTooLarge, false, 0, 0},
		{"request line ends past the limit", "GET /" + strings.Repeat("a", 9000) + " HTTP/2.0\r\n\r\n", ErrHeaderTooLarge, false, 0, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, n, err := ParseRequest([]byte(c.in), lim)
			if err != c.err {
				t.Fatalf("err = %v; want %v", err, c.err)
			}
			if err != nil {
				return
			}
			if n != len(c.in) || req.KeepAlive != c.keepAlive || req.ContentLength != c.cl || req.Minor != c.minor {
				t.Fatalf("n %d keepAlive %v cl %d minor %d; want %d %v %d %d",
					n, req.KeepAlive, req.ContentLength, req.Minor, len(c.in), c.keepAlive, c.cl, c.minor)
			}
		})
	}
}

func TestParseRequestStopsAtTheFirstHead(t *testing.T) {
	one := "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
	req, n, err := ParseRequest([]byte(one+one+"GET /b"), DefaultLimits)
	if err != nil || n != len(one) || string(req.Target) != "/a" || string(req.Method) != "GET" {
		t.Fatalf("n %d target %q err %v", n, req.Target, err)
	}
}

func TestStatus(t *testing.T) {
	for err, code := range map[error]int{ErrBadRequest: 400, ErrHeaderTooLarge: 431, ErrNotImplemented: 501, ErrBodyTooLarge: 413, ErrVersion: 505} {
		if Status(err) != code || statusText[code] == "" {
			t.Errorf("Status(%v) = %d", err, Status(err))
		}
	}
}

func TestParseRequestDoesNotAllocate(t *testing.T) {
	in := []byte("GET / HTTP/1.1\r\nHost: bench\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n")
	if n := testing.AllocsPerRun(100, func() { _, _, _ = ParseRequest(in, DefaultLimits) }); n != 0 {
		t.Fatalf("%v allocations per parse", n)
	}
}

// FuzzParseRequest checks the parser against its contract on arbitrary
// input and arbitrary (small, so they are hit) limits:
//   - it never panics, and answers a parse, ErrIncomplete, or an error
//     whose Status is 400, 413, 431, 501 or 505;
//   - it never looks past MaxHeadBytes: the input cut there gets the same
//     answer;
//   - ErrIncomplete only for input under the limit with no blank line, and
//     every other error is final (more input does not change it);
//   - a parse covers exactly the first head, within the limits, every
//     shorter prefix of it is ErrIncomplete, and its fields equal those of
//     refParse, a plain string-splitting reading of the same rules, which
//     must also agree on the error for every input.
//
// Seeds live in testdata/fuzz/FuzzParseRequest; run longer with
//
//	go test -run '^$' -fuzz '^FuzzParseRequest$' -fuzztime 5m ./examples/hello/
func FuzzParseRequest(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), uint16(256), uint8(8))
	f.Fuzz(func(t *testing.T, in []byte, maxHead uint16, maxHeaders uint8) {
		lim := Limits{MaxHeadBytes: 1 + int(maxHead%1024), MaxHeaders: int(maxHeaders % 16), MaxBody: 1 << 20}
		req, n, err := ParseRequest(in, lim)
		switch err {
		case nil, ErrIncomplete:
		case ErrBadRequest, ErrHeaderTooLarge, ErrBodyTooLarge, ErrNotImplemented, ErrVersion:
			if st := Status(err); statusText[st] == "" {
				t.Fatalf("%v maps to status %d, which the server cannot answer", err, st)
			}
		default:
			t.Fatalf("unexpected error %v", err)
		}
		if err != nil && n != 0 {
			t.Fatalf("error %v with n = %d", err, n)
		}

		// Within its limits.
		if len(in) > lim.MaxHeadBytes {
			req2, n2, err2 := ParseRequest(in[:lim.MaxHeadBytes], lim)
			if err2 != err || n2 != n || !sameRequest(req, req2) {
				t.Fatalf("input cut at MaxHeadBytes=%d parses differently: (%v, %d) vs (%v, %d)", lim.MaxHeadBytes, err2, n2, err, n)
			}
		}

		// Same answer as the reference reading of the rules.
		rreq, rn, rerr := refParse(in, lim)
		if rerr != err || rn != n || (err == nil && !sameRequest(req, rreq)) {
			t.Fatalf("ParseRequest = (%+v, %d, %v); reference = (%+v, %d, %v)", req, n, err, rreq, rn, rerr)
		}

		if err == ErrIncomplete {
			if len(in) >= lim.MaxHeadBytes || bytes.Contains(in, crlfcrlf) {
				t.Fatalf("ErrIncomplete for %d bytes (limit %d) holding a blank line: %v", len(in), lim.MaxHeadBytes, bytes.Contains(in, crlfcrlf))
			}
			return
		}
		if err != nil {
			more := append(append(append([]byte(nil), in...), "\r\n\r\nGET / HTTP/1.1\r\n\r\n"...), in...)
			if _, _, err2 := ParseRequest(more, lim); err2 != err {
				t.Fatalf("final error %v became %v with more input", err, err2)
			}
			return
		}
		if n < 4 || n > len(in) || n > lim.MaxHeadBytes || bytes.Index(in, crlfcrlf) != n-4 {
			t.Fatalf("n = %d for %d bytes: not the end of the first head", n, len(in))
		}
		if req.ContentLength < 0 || req.ContentLength > lim.MaxBody || req.Minor < 0 || req.Minor > 9 {
			t.Fatalf("content length %d, minor %d", req.ContentLength, req.Minor)
		}
		for k := 0; k < n; k++ {
			if _, _, err := ParseRequest(in[:k], lim); err != ErrIncomplete {
				t.Fatalf("prefix of %d bytes of a valid %d-byte head: %v; want ErrIncomplete", k, n, err)
			}
		}
		req2, n2, err2 := ParseRequest(in[:n], lim)
		if err2 != nil || n2 != n || !sameRequest(req, req2) {
			t.Fatalf("head alone parses differently: %v", err2)
		}
	})
}

func sameRequest(a, b Request) bool {
	return bytes.Equal(a.Method, b.Method) && bytes.Equal(a.Target, b.Target) && a.Minor == b.Minor &&
		a.ContentLength == b.ContentLength && a.KeepAlive == b.KeepAlive
}

// refParse is the reference for FuzzParseRequest: the parser's documented
// rules, written the slow, obvious way (strings, Split, Cut).
func refParse(buf []byte, lim Limits) (Request, int, error) {
	var req Request
	in := string(buf)
	if len(in) > lim.MaxHeadBytes {
		in = in[:lim.MaxHeadBytes] // a head must end within the limit
	}
	line, rest, ok := strings.Cut(in, "\r\n")
	if !ok {
		if len(in) >= lim.MaxHeadBytes {
			return req, 0, ErrHeaderTooLarge
		}
		return req, 0, ErrIncomplete
	}
	parts := strings.SplitN(line, " ", 3)
	if len(parts) != 3 || !refToken(parts[0]) || parts[1] == "" || strings.ContainsFunc(parts[1], func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return req, 0, ErrBadRequest
	}
	v := parts[2]
	if len(v) != 8 || !strings.HasPrefix(v, "HTTP/") || v[6] != '.' || !strings.ContainsRune("0123456789", rune(v[5])) || !strings.ContainsRune("0123456789", rune(v[7])) {
		return req, 0, ErrBadRequest
	}
	if v[5] != '1' {
		return req, 0, ErrVersion
	}
	req.Minor = int(v[7] - '0')
	// The head is the request line, the header lines, and a blank line.
	var lines []string
	if strings.HasPrefix(rest, "\r\n") {
		rest = rest[2:]
	} else {
		fields, _, ok := strings.Cut(rest, "\r\n\r\n")
		if !ok {
			if len(in) >= lim.MaxHeadBytes {
				return req, 0, ErrHeaderTooLarge
			}
			return req, 0, ErrIncomplete
		}
		lines = strings.Split(fields, "\r\n")
		rest = rest[len(fields)+4:]
	}
	n := len(in) - len(rest)
	req.KeepAlive = req.Minor >= 1
	sawCL, closeTok, keepTok := false, false, false
	for i, l := range lines {
		if i >= lim.MaxHeaders {
			return req, 0, ErrHeaderTooLarge
		}
		name, value, ok := strings.Cut(l, ":")
		if !ok || !refToken(name) {
			return req, 0, ErrBadRequest
		}
		value = strings.Trim(value, " \t")
		if strings.ContainsFunc(value, func(r rune) bool { return (r < 0x20 && r != '\t') || r == 0x7f }) {
			return req, 0, ErrBadRequest
		}
		switch strings.ToLower(name) {
		case "content-length":
			cl, err := strconv.ParseInt(value, 10, 64)
			if err != nil || len(value) > 18 || strings.TrimLeft(value, "0123456789") != "" || (sawCL && cl != req.ContentLength) {
				return req, 0, ErrBadRequest
			}
			sawCL, req.ContentLength = true, cl
		case "transfer-encoding":
			return req, 0, ErrNotImplemented
		case "connection":
			for _, tok := range strings.Split(value, ",") {
				switch strings.ToLower(strings.Trim(tok, " \t")) {
				case "close":
					closeTok = true
				case "keep-alive":
					keepTok = true
				}
			}
		}
	}
	if req.ContentLength > lim.MaxBody {
		return req, 0, ErrBodyTooLarge
	}
	if closeTok {
		req.KeepAlive = false
	} else if keepTok {
		req.KeepAlive = true
	}
	req.Method, req.Target = []byte(parts[0]), []byte(parts[1])
	return req, n, nil
}

func refToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}
