package main

import (
	"bytes"
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

// FuzzParseRequest checks the parser's invariants on arbitrary input: no
// panic, a head length within the input ending in a blank line, and the
// same answer for the head alone.
func FuzzParseRequest(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	f.Add([]byte("POST / HTTP/1.0\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello"))
	f.Add([]byte("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"))
	f.Add([]byte("\r\n\r\n"))
	lim := Limits{MaxHeadBytes: 256, MaxHeaders: 8, MaxBody: 1 << 20}
	f.Fuzz(func(t *testing.T, in []byte) {
		req, n, err := ParseRequest(in, lim)
		if err != nil {
			if n != 0 {
				t.Fatalf("error %v with n = %d", err, n)
			}
			return
		}
		if n < 4 || n > len(in) || n > lim.MaxHeadBytes || !bytes.Equal(in[n-4:n], crlfcrlf) {
			t.Fatalf("n = %d for %d bytes", n, len(in))
		}
		if req.ContentLength < 0 || req.ContentLength > lim.MaxBody {
			t.Fatalf("content length %d", req.ContentLength)
		}
		req2, n2, err2 := ParseRequest(in[:n], lim)
		if err2 != nil || n2 != n || req2.KeepAlive != req.KeepAlive || req2.ContentLength != req.ContentLength {
			t.Fatalf("head alone parses differently: %v", err2)
		}
	})
}
