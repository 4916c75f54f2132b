//go:build linux

package main

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ioloop-go/ioloop"
)

// startServer runs the hello server in this process on a free port and
// stops it at the end of the test.
func startServer(t *testing.T) string {
	t.Helper()
	g, err := ioloop.ListenGroup("tcp", "127.0.0.1:0", 1, serve)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := g.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return g.Addr().String()
}

// exchange sends req on one connection and returns everything the server
// sends until it closes the connection (req must end with a request that
// closes it), bounded in time.
func exchange(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading the answers: %v (got %q)", err, got)
	}
	return string(got)
}

const (
	headersOK = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\n"
	answerOK  = headersOK + "Hello, world!"
	closeOK   = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nConnection: close\r\n\r\nHello, world!"
)

// A HEAD answer has the GET answer's headers, Content-Length included, and
// no body: one with a body (as before) put "Hello, world!" in front of the
// next answer on a keep-alive connection, and curl reported "Excess found".
func TestHeadHasNoBody(t *testing.T) {
	addr := startServer(t)
	cases := []struct{ name, req, want string }{
		{"HEAD then GET pipelined",
			"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
			headersOK + answerOK + closeOK},
		{"GET, HEAD, HEAD, GET",
			"GET / HTTP/1.1\r\n\r\nHEAD / HTTP/1.1\r\n\r\nHEAD /x HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nConnection: close\r\n\r\n",
			answerOK + headersOK + headersOK + closeOK},
		{"HTTP/1.0 keep-alive HEAD",
			"HEAD / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.1\r\nConnection: close\r\n\r\n",
			"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nConnection: keep-alive\r\n\r\n" + closeOK},
		{"HEAD with Connection: close",
			"HEAD / HTTP/1.1\r\nConnection: close\r\n\r\n",
			strings.TrimSuffix(closeOK, "Hello, world!")},
		{"bad HEAD gets an error answer without its body",
			"HEAD / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
			"HTTP/1.1 501 Not Implemented\r\nContent-Type: text/plain\r\nContent-Length: 28\r\nConnection: close\r\n\r\n"},
		{"head is case-sensitive: a lowercase method is a GET-like request",
			"head / HTTP/1.1\r\nConnection: close\r\n\r\n",
			closeOK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := exchange(t, addr, tc.req); got != tc.want {
				t.Fatalf("answers:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}
