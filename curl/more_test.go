//go:build linux && cgo

package curl

import (
	"bytes"
	"errors"
	"net/http"
	"testing"
	"time"
)

// A streamed body over HTTP/2: the upload pauses when the reader is slow
// and resumes when data comes, as over HTTP/1.1.
func TestStreamedRequestBodyHTTP2(t *testing.T) {
	srv, ca, _ := newTLSServer(t, http.HandlerFunc(echoHandler), true)
	r := newRig(t)
	var chunks [][]byte
	for i := range 4 {
		chunks = append(chunks, bytes.Repeat([]byte{byte('k' + i)}, 70_000))
	}
	want := bytes.Join(chunks, nil)
	sr := &slowReader{chunks: chunks, pause: 30 * time.Millisecond}
	res := r.mustDo(&Request{URL: srv.URL, CAFile: ca, HTTPVersion: HTTP2, Method: "PUT", BodyReader: sr})
	if res.Proto != "HTTP/2.0" || !bytes.Equal(res.Body, want) {
		t.Fatalf("%s: echoed %d bytes, want %d", res.Proto, len(res.Body), len(want))
	}
}

// Two clients share a loop: each has its own libcurl state, and closing
// one leaves the other working.
func TestTwoClientsOnOneLoop(t *testing.T) {
	srv, _ := newServer(t, http.HandlerFunc(echoHandler))
	r := newRig(t)
	other, err := NewClient(r.l, WithMaxClients(4))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 20)
	r.on(func() {
		for i := range 10 {
			c := r.c
			if i%2 == 1 {
				c = other
			}
			c.Fetch(&Request{URL: srv.URL}, func(resp *Response, err error) { done <- err })
		}
	})
	for range 10 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	other.Close()
	r.mustDo(&Request{URL: srv.URL})
	if _, err := other.Do(t.Context(), &Request{URL: srv.URL}); !errors.Is(err, ErrClientClosed) {
		t.Fatalf("the closed client: %v", err)
	}
}
