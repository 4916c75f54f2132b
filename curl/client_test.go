//go:build linux && cgo

package curl

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ioloop-go/ioloop"
)

// echoHandler answers with what it received: method, path, body, and the
// request headers as X-Echo-<name> response headers.
func echoHandler(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	for k, vs := range r.Header {
		for _, v := range vs {
			w.Header().Add("X-Echo-"+k, v)
		}
	}
	w.Header().Set("X-Method", r.Method)
	w.Header().Set("X-Path", r.URL.Path)
	w.Header().Set("X-Proto", r.Proto)
	w.Header().Set("X-Content-Length", strconv.FormatInt(r.ContentLength, 10))
	w.Header().Set("X-Transfer-Encoding", strings.Join(r.TransferEncoding, ","))
	w.Write(body)
}

// Fetch's callback runs once, on the loop goroutine, with the status,
// header, body, protocol and effective URL of the response.
func TestFetchResponse(t *testing.T) {
	srv, _ := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("X-Multi", "a")
		w.Header().Add("X-Multi", "b")
		w.Header().Set("X-Spaces", "  padded value  ")
		w.WriteHeader(201)
		w.Write([]byte("hello, world"))
	}))
	r := newRig(t)
	res, err := r.fetch(&Request{URL: srv.URL + "/x"})
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 201 || res.Status != "201 Created" {
		t.Errorf("status %d %q", res.StatusCode, res.Status)
	}
	if string(res.Body) != "hello, world" {
		t.Errorf("body %q", res.Body)
	}
	if got := res.Header["X-Multi"]; len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Errorf("X-Multi = %q", got)
	}
	if got := res.Header.Get("X-Spaces"); got != "padded value" {
		t.Errorf("X-Spaces = %q", got)
	}
	if res.Header.Get("Content-Length") != "12" {
		t.Errorf("Content-Length = %q", res.Header.Get("Content-Length"))
	}
	if res.Proto != "HTTP/1.1" || res.ProtoMajor != 1 || res.ProtoMinor != 1 {
		t.Errorf("proto %q %d.%d", res.Proto, res.ProtoMajor, res.ProtoMinor)
	}
	if res.EffectiveURL != srv.URL+"/x" {
		t.Errorf("effective URL %q", res.EffectiveURL)
	}
	if res.Request == nil || res.Request.URL != srv.URL+"/x" {
		t.Errorf("Request not set")
	}
	tm := res.Timings
	if tm.Total <= 0 || tm.FirstByte > tm.Total || tm.Sent > tm.FirstByte || tm.Connect > tm.Sent {
		t.Errorf("timings out of order: %+v", tm)
	}
}

// An HTTP error status is a response, not an error; an empty body is nil.
func TestHTTPStatusIsNotAnError(t *testing.T) {
	srv, _ := newServer(t, http.NotFoundHandler())
	r := newRig(t)
	res, err := r.do(&Request{URL: srv.URL + "/missing"})
	if err != nil {
		t.Fatalf("a 404 is an error: %v", err)
	}
	if res.StatusCode != 404 {
		t.Fatalf("status %d", res.StatusCode)
	}
	empty, _ := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }))
	res, err = r.do(&Request{URL: empty.URL})
	if err != nil || res.StatusCode != 204 || res.Body != nil {
		t.Fatalf("204: %v %+v", err, res)
	}
}

// Do from other goroutines; on the loop goroutine it fails at once.
func TestDoOnTheLoopGoroutineFails(t *testing.T) {
	srv, _ := newServer(t, http.HandlerFunc(echoHandler))
	r := newRig(t)
	var err error
	r.on(func() { _, err = r.c.Do(context.Background(), &Request{URL: srv.URL}) })
	if !errors.Is(err, ErrDoOnLoop) {
		t.Fatalf("Do on the loop: %v, want ErrDoOnLoop", err)
	}
	r.mustDo(&Request{URL: srv.URL})
}

// Request headers reach the server (empty values too), and a field given
// with no values removes one libcurl would add.
func TestRequestHeaders(t *testing.T) {
	srv, _ := newServer(t, http.HandlerFunc(echoHandler))
	r := newRig(t)
	res := r.mustDo(&Request{URL: srv.URL, Header: http.Header{
		"X-One":   {"1"},
		"X-Two":   {"a", "b"},
		"X-Empty": {""},
		"Accept":  nil, // libcurl's Accept: */* is dropped
	}})
	// A field given replaces libcurl's.
	res2 := r.mustDo(&Request{URL: srv.URL, Header: http.Header{"Accept": {"text/x-test"}}})
	if got := res2.Header["X-Echo-Accept"]; len(got) != 1 || got[0] != "text/x-test" {
		t.Errorf("Accept = %q, want only text/x-test", got)
	}
	h := res.Header
	if h.Get("X-Echo-X-One") != "1" || strings.Join(h["X-Echo-X-Two"], ",") != "a,b" {
		t.Errorf("headers not sent: %v", h)
	}
	if _, ok := h["X-Echo-X-Empty"]; !ok {
		t.Errorf("empty header not sent: %v", h)
	}
	if _, ok := h["X-Echo-Accept"]; ok {
		t.Errorf("Accept not removed: %v", h)
	}
}

// Bad requests fail with ErrInvalidRequest (or libcurl's code for a URL
// it rejects), through the callback, never inside Fetch.
func TestInvalidRequests(t *testing.T) {
	srv, _ := newServer(t, http.HandlerFunc(echoHandler))
	r := newRig(t)
	for name, req := range map[string]*Request{
		"nil":               nil,
		"empty URL":         {},
		"CRLF in value":     {URL: srv.URL, Header: http.Header{"X-A": {"a\r\nX-Injected: 1"}}},
		"bad field name":    {URL: srv.URL, Header: http.Header{"X A": {"1"}}},
		"bad method":        {URL: srv.URL, Method: "GE T"},
		"two bodies":        {URL: srv.URL, Body: []byte("a"), BodyReader: strings.NewReader("b")},
		"HEAD with a body":  {URL: srv.URL, Method: "HEAD", Body: []byte("a")},
		"NUL in URL":        {URL: srv.URL + "/\x00"},
		"bad HTTPVersion":   {URL: srv.URL, HTTPVersion: 99},
		"NUL in CA file":    {URL: srv.URL, CAFile: "a\x00b"},
		"NUL in a value":    {URL: srv.URL, Header: http.Header{"X-A": {"a\x00"}}},
		"empty field name":  {URL: srv.URL, Header: http.Header{"": {"1"}}},
		"colon in the name": {URL: srv.URL, Header: http.Header{"X:A": {"1"}}},
	} {
		var inside atomic.Bool
		var calls atomic.Int32
		var err error
		var resp *Response
		done := make(chan struct{})
		r.on(func() {
			inside.Store(true)
			r.c.Fetch(req, func(rr *Response, e error) {
				if inside.Load() {
					t.Errorf("%s: the callback ran inside Fetch", name)
				}
				resp, err = rr, e
				if calls.Add(1) == 1 {
					close(done)
				}
			})
			inside.Store(false)
		})
		select {
		case <-done:
		case <-time.After(waitLimit):
			t.Fatalf("%s: no callback", name)
		}
		e := curlErr(t, resp, err)
		if !errors.Is(err, ErrInvalidRequest) || e.Code != CodeOK {
			t.Errorf("%s: %v (code %d), want ErrInvalidRequest", name, err, e.Code)
		}
	}
	for name, c := range map[string]struct {
		url  string
		code Code
	}{
		"ftp":           {"ftp://127.0.0.1/", CodeUnsupportedProtocol},
		"file":          {"file:///etc/passwd", CodeUnsupportedProtocol},
		"malformed URL": {"http://[::1", CodeURLMalformat},
	} {
		resp, err := r.do(&Request{URL: c.url})
		if e := curlErr(t, resp, err); e.Code != c.code {
			t.Errorf("%s: %v, want code %d", name, err, c.code)
		}
	}
	// Good requests still work on the same client.
	r.mustDo(&Request{URL: srv.URL})
}

// A refused connection is libcurl's CodeCouldntConnect with its message.
func TestConnectionRefused(t *testing.T) {
	srv, _ := newServer(t, http.HandlerFunc(echoHandler))
	url := srv.URL
	srv.Close()
	r := newRig(t)
	resp, err := r.do(&Request{URL: url})
	e := curlErr(t, resp, err)
	if e.Code != CodeCouldntConnect || e.Message == "" || !strings.Contains(err.Error(), "(curl error 7)") ||
		!strings.Contains(err.Error(), url) {
		t.Fatalf("%v (code %d, message %q)", err, e.Code, e.Message)
	}
}

// Methods and bodies: POST and PUT with bytes, HEAD, a custom method; no
// Expect: 100-continue and no default Content-Type are added.
func TestMethodsAndBodies(t *testing.T) {
	srv, _ := newServer(t, http.HandlerFunc(echoHandler))
	r := newRig(t)
	big := bytes.Repeat([]byte("0123456789"), 300_000) // 3 MB: libcurl would add Expect
	for _, c := range []struct {
		req              Request
		method, body, cl string
	}{
		{Request{Body: []byte("abc")}, "POST", "abc", "3"},
		{Request{Method: "PUT", Body: []byte("put body")}, "PUT", "put body", "8"},
		{Request{Method: "POST"}, "POST", "", "0"},
		{Request{Method: "PATCH", Body: big}, "PATCH", string(big), strconv.Itoa(len(big))},
		{Request{Method: "DELETE"}, "DELETE", "", "0"},
		{Request{Method: "OPTIONS"}, "OPTIONS", "", "0"},
		{Request{Method: "GET"}, "GET", "", "0"},
	} {
		req := c.req
		req.URL = srv.URL
		res := r.mustDo(&req)
		if got := res.Header.Get("X-Method"); got != c.method {
			t.Errorf("%s: method %q", c.method, got)
		}
		if string(res.Body) != c.body {
			t.Errorf("%s: body of %d bytes, want %d", c.method, len(res.Body), len(c.body))
		}
		if got := res.Header.Get("X-Content-Length"); got != c.cl {
			t.Errorf("%s: Content-Length %q, want %q", c.method, got, c.cl)
		}
		if res.Header.Get("X-Echo-Expect") != "" || res.Header.Get("X-Echo-Content-Type") != "" {
			t.Errorf("%s: unasked-for headers: %v", c.method, res.Header)
		}
	}
	// A Content-Type given is sent.
	res := r.mustDo(&Request{URL: srv.URL, Body: []byte("{}"), Header: http.Header{"Content-Type": {"application/json"}}})
	if res.Header.Get("X-Echo-Content-Type") != "application/json" {
		t.Errorf("Content-Type not sent: %v", res.Header)
	}
	// HEAD: headers, no body.
	res = r.mustDo(&Request{URL: srv.URL, Method: "HEAD"})
	if res.Body != nil || res.Header.Get("X-Method") != "HEAD" {
		t.Errorf("HEAD: %v %q", res.Header, res.Body)
	}
	// The easy handle is reset after rare options: a plain GET is plain.
	res = r.mustDo(&Request{URL: srv.URL})
	if res.Header.Get("X-Method") != "GET" || res.Header.Get("X-Content-Length") != "0" {
		t.Errorf("GET after others: %v", res.Header)
	}
}

// slowReader yields its chunks one by one with a pause between them.
type slowReader struct {
	chunks [][]byte
	pause  time.Duration
	closed atomic.Bool
}

func (s *slowReader) Read(p []byte) (int, error) {
	if len(s.chunks) == 0 {
		return 0, io.EOF
	}
	time.Sleep(s.pause)
	n := copy(p, s.chunks[0])
	s.chunks[0] = s.chunks[0][n:]
	if len(s.chunks[0]) == 0 {
		s.chunks = s.chunks[1:]
	}
	return n, nil
}

func (s *slowReader) Close() error { s.closed.Store(true); return nil }

// A BodyReader is streamed: chunked without a size, with Content-Length
// when given; the loop keeps running while the reader is slow; the reader
// is closed at the end.
func TestStreamedRequestBody(t *testing.T) {
	srv, _ := newServer(t, http.HandlerFunc(echoHandler))
	r := newRig(t)
	chunks := func() [][]byte {
		var cs [][]byte
		for i := range 5 {
			cs = append(cs, bytes.Repeat([]byte{byte('a' + i)}, 100_000))
		}
		return cs
	}
	want := bytes.Join(chunks(), nil)

	// While the reader sleeps 50 ms per chunk, a loop timer keeps ticking.
	sr := &slowReader{chunks: chunks(), pause: 50 * time.Millisecond}
	var ticks atomic.Int32
	var pc *ioloop.PeriodicCallback
	r.on(func() {
		pc = ioloop.NewPeriodicCallback(r.l, 10*time.Millisecond, func() { ticks.Add(1) })
		pc.Start()
	})
	res := r.mustDo(&Request{URL: srv.URL, Method: "PUT", BodyReader: sr})
	pc.Stop()
	if !bytes.Equal(res.Body, want) {
		t.Fatalf("echoed %d bytes, want %d", len(res.Body), len(want))
	}
	if res.Header.Get("X-Transfer-Encoding") != "chunked" {
		t.Errorf("no size given, but not chunked: %v", res.Header)
	}
	if n := ticks.Load(); n < 5 {
		t.Errorf("the loop ticked %d times in 250 ms of slow upload: it was blocked", n)
	}
	settle(t, "the reader to be closed", sr.closed.Load)

	// With ContentLength.
	res = r.mustDo(&Request{URL: srv.URL, BodyReader: bytes.NewReader(want), ContentLength: int64(len(want))})
	if !bytes.Equal(res.Body, want) || res.Header.Get("X-Content-Length") != strconv.Itoa(len(want)) {
		t.Fatalf("with ContentLength: %d bytes, %v", len(res.Body), res.Header)
	}
	// A reader that fails fails the transfer with its error.
	boom := errors.New("boom")
	resp, err := r.do(&Request{URL: srv.URL, BodyReader: io.MultiReader(strings.NewReader("partial"), errReader{boom})})
	curlErr(t, resp, err)
	if !errors.Is(err, boom) {
		t.Fatalf("reader error: %v, want it to wrap boom", err)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// Redirects are followed up to the limit; the response is the last one.
func TestRedirects(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/r/{n}", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.PathValue("n"))
		if n == 0 {
			w.Header().Set("X-Final", "yes")
			w.Write([]byte("final"))
			return
		}
		w.Header().Set("X-Hop", strconv.Itoa(n))
		http.Redirect(w, r, fmt.Sprintf("/r/%d", n-1), http.StatusFound)
	})
	mux.HandleFunc("/loop", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/loop", http.StatusFound) })
	mux.HandleFunc("/307", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		http.Redirect(w, r, "/r/0", http.StatusTemporaryRedirect)
	})
	srv, _ := newServer(t, mux)
	r := newRig(t)

	res := r.mustDo(&Request{URL: srv.URL + "/r/3", FollowRedirects: true})
	if string(res.Body) != "final" || res.EffectiveURL != srv.URL+"/r/0" || res.Redirects != 3 {
		t.Fatalf("body %q, effective URL %q, redirects %d", res.Body, res.EffectiveURL, res.Redirects)
	}
	if res.Header.Get("X-Final") != "yes" || res.Header.Get("X-Hop") != "" || res.Header.Get("Location") != "" {
		t.Fatalf("header is not the final response's: %v", res.Header)
	}
	// Not following: the 302 is the response.
	res, err := r.do(&Request{URL: srv.URL + "/r/3"})
	if err != nil || res.StatusCode != 302 || res.Header.Get("Location") != "/r/2" {
		t.Fatalf("without following: %v %+v", err, res)
	}
	// A loop ends at the limit.
	resp, err := r.do(&Request{URL: srv.URL + "/loop", FollowRedirects: true, MaxRedirects: 5})
	if e := curlErr(t, resp, err); e.Code != CodeTooManyRedirects || !strings.Contains(e.Message, "5") {
		t.Fatalf("redirect loop: %v", err)
	}
	// MaxRedirects 0 means 10.
	r.mustDo(&Request{URL: srv.URL + "/r/10", FollowRedirects: true})
	resp, err = r.do(&Request{URL: srv.URL + "/r/11", FollowRedirects: true})
	if e := curlErr(t, resp, err); e.Code != CodeTooManyRedirects {
		t.Fatalf("11 redirects with the default limit: %v", err)
	}
	// A streamed body cannot be sent again to a 307.
	resp, err = r.do(&Request{URL: srv.URL + "/307", FollowRedirects: true, BodyReader: strings.NewReader("body")})
	if e := curlErr(t, resp, err); e.Code == CodeOK {
		t.Fatalf("307 with a BodyReader: %v", err)
	}
	// Under the limit is fine.
	r.mustDo(&Request{URL: srv.URL + "/r/3", FollowRedirects: true, MaxRedirects: 3})
	resp, err = r.do(&Request{URL: srv.URL + "/r/3", FollowRedirects: true, MaxRedirects: 2})
	if e := curlErr(t, resp, err); e.Code != CodeTooManyRedirects {
		t.Fatalf("over the limit: %v", err)
	}
}

// Decompress asks for compressed bodies and decodes them.
func TestDecompress(t *testing.T) {
	text := strings.Repeat("compressible text ", 1000)
	srv, _ := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Accept-Encoding", r.Header.Get("Accept-Encoding"))
		if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			io.WriteString(w, text)
			return
		}
		w.Header().Set("Content-Encoding", "gzip")
		gz := gzip.NewWriter(w)
		io.WriteString(gz, text)
		gz.Close()
	}))
	r := newRig(t)
	res := r.mustDo(&Request{URL: srv.URL, Decompress: true})
	if string(res.Body) != text || res.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("decompressed body of %d bytes (want %d), %v", len(res.Body), len(text), res.Header)
	}
	res = r.mustDo(&Request{URL: srv.URL})
	if string(res.Body) != text || res.Header.Get("X-Accept-Encoding") != "" {
		t.Fatalf("without Decompress: %v", res.Header)
	}
}

// OnHeader sees every line of every response in order, status lines and
// line ends included; OnBody gets the body and Response.Body stays nil.
func TestHeaderAndBodyCallbacks(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/a", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/b", http.StatusFound) })
	mux.HandleFunc("/b", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-B", "b")
		w.Write(bytes.Repeat([]byte("x"), 100_000))
	})
	srv, _ := newServer(t, mux)
	r := newRig(t)
	var lines []string
	var body int
	var onLoop = true
	res := r.mustDo(&Request{URL: srv.URL + "/a", FollowRedirects: true,
		OnHeader: func(line []byte) error {
			onLoop = onLoop && r.l.InLoop()
			lines = append(lines, string(line))
			return nil
		},
		OnBody: func(p []byte) error {
			onLoop = onLoop && r.l.InLoop()
			body += len(p)
			return nil
		},
	})
	if !onLoop {
		t.Error("a callback ran off the loop goroutine")
	}
	if res.Body != nil || body != 100_000 {
		t.Errorf("OnBody got %d bytes, Response.Body %d", body, len(res.Body))
	}
	all := strings.Join(lines, "")
	if !strings.HasPrefix(lines[0], "HTTP/1.1 302") || !strings.Contains(all, "\r\nHTTP/1.1 200 OK\r\n") ||
		!strings.Contains(all, "X-B: b\r\n") || !strings.HasSuffix(all, "\r\n\r\n") {
		t.Errorf("header lines: %q", lines)
	}
	// An error from a callback aborts the transfer and is its cause.
	stop := errors.New("stop")
	resp, err := r.do(&Request{URL: srv.URL + "/b", OnBody: func([]byte) error { return stop }})
	if e := curlErr(t, resp, err); !errors.Is(err, stop) || e.Code != CodeWriteError {
		t.Errorf("OnBody error: %v", err)
	}
	resp, err = r.do(&Request{URL: srv.URL + "/b", OnHeader: func(line []byte) error {
		if bytes.HasPrefix(line, []byte("X-B")) {
			return stop
		}
		return nil
	}})
	if curlErr(t, resp, err); !errors.Is(err, stop) {
		t.Errorf("OnHeader error: %v", err)
	}
	// A panic in one is logged and aborts only that transfer.
	resp, err = r.do(&Request{URL: srv.URL + "/b", OnBody: func([]byte) error { panic("in OnBody") }})
	if curlErr(t, resp, err); !errors.Is(err, errCallbackPanicked) || !strings.Contains(r.logs.String(), "in OnBody") {
		t.Errorf("panic in OnBody: %v; log: %s", err, r.logs.String())
	}
	r.mustDo(&Request{URL: srv.URL + "/b"})
}

// A panicking Fetch callback is logged; the loop and the client go on.
func TestPanicInFetchCallback(t *testing.T) {
	srv, _ := newServer(t, http.HandlerFunc(echoHandler))
	r := newRig(t)
	r.on(func() { r.c.Fetch(&Request{URL: srv.URL}, func(*Response, error) { panic("in the callback") }) })
	settle(t, "the panic to be logged", func() bool { return strings.Contains(r.logs.String(), "in the callback") })
	r.mustFetch(&Request{URL: srv.URL})
}

// Timeouts match os.ErrDeadlineExceeded; NewClient checks its arguments.
func TestErrorsAndOptions(t *testing.T) {
	e := &Error{Code: CodeOperationTimedOut, Message: "Operation timed out"}
	if !errors.Is(e, os.ErrDeadlineExceeded) || !e.Timeout() {
		t.Error("a timeout does not match os.ErrDeadlineExceeded")
	}
	if errors.Is(&Error{Code: CodeCouldntConnect}, os.ErrDeadlineExceeded) {
		t.Error("a refused connection matches os.ErrDeadlineExceeded")
	}
	if CodeTooManyRedirects.String() == "" || !strings.Contains(CodeCouldntConnect.String(), "connect") {
		t.Errorf("Code.String: %q", CodeCouldntConnect.String())
	}
	l, err := ioloop.New()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewClient(nil); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("nil loop: %v", err)
	}
	if _, err := NewClient(l, WithMaxClients(0)); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("WithMaxClients(0): %v", err)
	}
	l.Close(false)
	if _, err := NewClient(l); !errors.Is(err, ioloop.ErrClosed) {
		t.Errorf("closed loop: %v", err)
	}
}
