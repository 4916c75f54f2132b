//go:build linux

package main

import (
	"bytes"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/ioloop-go/ioloop"

	"github.com/ioloop-go/ioloop/bench/peers/internal/minihttp"
)

// startPeer serves mode on a private loop in this process until the test
// ends, and returns a connected client.
func startPeer(t *testing.T, mode string) net.Conn {
	t.Helper()
	l, err := ioloop.New()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ioloop.Listen(l, "tcp", "127.0.0.1:0", handler(mode))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- l.Start() }()
	t.Cleanup(func() {
		srv.Close()
		l.Stop()
		if err := <-done; err != nil {
			t.Errorf("Start: %v", err)
		}
		l.Close(true)
	})
	c, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	return c
}

// The steady state allocates nothing: what the suite measures is the loop
// and the stream, not the garbage collector. One allocation per request (or
// per read of a pipelined batch) would show as thousands here; the bound
// leaves room for the runtime's own rare allocations and the client's.
func TestHelloAllocatesNothingPerRequest(t *testing.T) {
	for _, depth := range []int{1, 16} {
		c := startPeer(t, "hello")
		req := bytes.Repeat([]byte("GET / HTTP/1.1\r\nHost: bench\r\n\r\n"), depth)
		resp := make([]byte, depth*len(minihttp.Response))
		exchange := func() {
			if _, err := c.Write(req); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(c, resp); err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; i < 100; i++ { // buffers reach their steady size
			exchange()
		}
		if !bytes.Equal(resp, bytes.Repeat(minihttp.Response, depth)) {
			t.Fatalf("answers %q", resp)
		}
		const rounds = 2000
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for i := 0; i < rounds; i++ {
			exchange()
		}
		runtime.ReadMemStats(&after)
		if n := after.Mallocs - before.Mallocs; n > rounds/10 {
			t.Errorf("depth %d: %d allocations for %d batches of requests", depth, n, rounds)
		}
	}
}

func TestEchoAllocatesNothingPerRoundTrip(t *testing.T) {
	c := startPeer(t, "echo")
	msg := bytes.Repeat([]byte("0123456789abcdef"), 4)
	got := make([]byte, len(msg))
	echo := func() {
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 100; i++ {
		echo()
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echoed %q", got)
	}
	const rounds = 5000
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := 0; i < rounds; i++ {
		echo()
	}
	runtime.ReadMemStats(&after)
	if n := after.Mallocs - before.Mallocs; n > rounds/10 {
		t.Errorf("%d allocations for %d round trips", n, rounds)
	}
}

// A request head split across reads is answered once, when it is whole, and
// a pipelined batch whose last head is cut in two gets every answer.
func TestHelloFramesLikeThePeers(t *testing.T) {
	c := startPeer(t, "hello")
	one := "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
	for _, part := range []string{one[:5], one[5:20], one[20:] + one + one[:10]} {
		if _, err := io.WriteString(c, part); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond) // separate reads on the server
	}
	got := make([]byte, 2*len(minihttp.Response))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, bytes.Repeat(minihttp.Response, 2)) {
		t.Fatalf("answers %q, %v", got, err)
	}
	if _, err := io.WriteString(c, one[10:]); err != nil {
		t.Fatal(err)
	}
	got = got[:len(minihttp.Response)]
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, minihttp.Response) {
		t.Fatalf("answer to the split head %q, %v", got, err)
	}
}
