package main

import (
	"bufio"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// tinyServer serves each connection with handle on its own goroutine and
// closes everything when the test ends.
func tinyServer(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func echoHandler(c net.Conn) { io.Copy(c, c) }

// corruptingEcho echoes faithfully except for one byte after the first kilobyte.
func corruptingEcho(c net.Conn) {
	buf := make([]byte, 4096)
	total := 0
	for {
		n, err := c.Read(buf)
		for i := 0; i < n; i++ {
			if total+i == 1000 {
				buf[i] ^= 0x40
			}
		}
		total += n
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

const helloBody = "Hello, world!"

// httpHandler answers every request head with status (and the hello body),
// flushing when no more input is buffered so pipelined answers batch.
func httpHandler(status string, body string) func(net.Conn) {
	return func(c net.Conn) {
		r := bufio.NewReader(c)
		w := bufio.NewWriter(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if line != "\r\n" {
				continue // request line or header
			}
			w.WriteString("HTTP/1.1 " + status + "\r\nContent-Type: text/plain\r\nContent-Length: ")
			w.WriteString(itoa(len(body)) + "\r\n\r\n" + body)
			if r.Buffered() == 0 {
				if w.Flush() != nil {
					return
				}
			}
		}
	}
}

func itoa(n int) string {
	s := ""
	for {
		s = string(rune('0'+n%10)) + s
		n /= 10
		if n == 0 {
			return s
		}
	}
}

func TestLoadEchoCountsAndVerifies(t *testing.T) {
	addr := tinyServer(t, echoHandler)
	for _, tc := range []struct{ conns, size, workers int }{{1, 64, 1}, {16, 64, 2}, {4, 16 << 10, 1}} {
		res, err := runLoad(LoadConfig{Mode: "echo", Addr: addr, Conns: tc.conns, Size: tc.size,
			Workers: tc.workers, Duration: 10 * time.Second, MaxOps: 50})
		if err != nil {
			t.Fatalf("%+v: %v", tc, err)
		}
		if want := int64(50 * tc.conns); res.Ops != want {
			t.Errorf("%+v: %d ops, want %d", tc, res.Ops, want)
		}
		if res.P50ns <= 0 || res.P99ns < res.P50ns {
			t.Errorf("%+v: p50 %d, p99 %d", tc, res.P50ns, res.P99ns)
		}
	}
}

func TestLoadEchoDetectsCorruption(t *testing.T) {
	addr := tinyServer(t, corruptingEcho)
	_, err := runLoad(LoadConfig{Mode: "echo", Addr: addr, Conns: 1, Size: 64,
		Duration: 10 * time.Second, MaxOps: 100})
	if err == nil || !strings.Contains(err.Error(), "echo mismatch") || !strings.Contains(err.Error(), "byte 40") {
		// Byte 1000 of the stream is byte 1000-15*64 = 40 of message 16.
		t.Fatalf("err = %v, want an echo mismatch at byte 40", err)
	}
}

func TestLoadEchoDetectsClose(t *testing.T) {
	addr := tinyServer(t, func(c net.Conn) {
		buf := make([]byte, 64)
		io.ReadFull(c, buf)
		c.Write(buf)
	})
	_, err := runLoad(LoadConfig{Mode: "echo", Addr: addr, Conns: 1, Size: 64,
		Duration: 10 * time.Second, MaxOps: 5})
	// A FIN reads as a close; if the second request drew a reset first, the
	// read fails with ECONNRESET instead. Either way: after 1 operation.
	if err == nil || !strings.Contains(err.Error(), "by the server after 1 operations") {
		t.Fatalf("err = %v, want a close or reset after 1 operation", err)
	}
}

func TestLoadHTTPCountsPipelined(t *testing.T) {
	addr := tinyServer(t, httpHandler("200 OK", helloBody))
	for _, depth := range []int{1, 16} {
		res, err := runLoad(LoadConfig{Mode: "http", Addr: addr, Conns: 8, Depth: depth,
			Duration: 10 * time.Second, MaxOps: 10, Body: helloBody})
		if err != nil {
			t.Fatalf("depth %d: %v", depth, err)
		}
		// A connection stops after the batch that reaches MaxOps: 10 for
		// depth 1, one batch of 16 for depth 16.
		want := map[int]int64{1: 8 * 10, 16: 8 * 16}[depth]
		if res.Ops != want {
			t.Errorf("depth %d: %d ops, want %d", depth, res.Ops, want)
		}
	}
}

func TestLoadHTTPRejectsBadResponses(t *testing.T) {
	for _, tc := range []struct {
		name, status, body, want string
	}{
		{"status", "500 Internal Server Error", helloBody, "want 200"},
		{"body", "200 OK", "Hello, World?", "body"},
	} {
		addr := tinyServer(t, httpHandler(tc.status, tc.body))
		_, err := runLoad(LoadConfig{Mode: "http", Addr: addr, Conns: 2, Depth: 4,
			Duration: 10 * time.Second, MaxOps: 3, Body: helloBody})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to mention %q", tc.name, err, tc.want)
		}
	}
}

func TestLoadTimedWindowSamplesCPU(t *testing.T) {
	addr := tinyServer(t, echoHandler)
	res, err := runLoad(LoadConfig{Mode: "echo", Addr: addr, Conns: 4, Size: 64,
		Warmup: 50 * time.Millisecond, Duration: 200 * time.Millisecond, ServerPID: os.Getpid()})
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops == 0 || res.Seconds != 0.2 {
		t.Fatalf("ops %d over %vs", res.Ops, res.Seconds)
	}
	// The "server" is this process: its CPU over the window includes the
	// load generator's own, and both ran.
	if res.LoadgenCPU <= 0 || res.ServerCPU < 0 {
		t.Fatalf("server CPU %v, loadgen CPU %v", res.ServerCPU, res.LoadgenCPU)
	}
}

func TestLoadConnectError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = runLoad(LoadConfig{Mode: "echo", Addr: addr, Conns: 2, Size: 8, Duration: time.Second})
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("err = %v, want connection refused", err)
	}
}

// TestLoadHTTPPrimesWithOneRequest: before the window, each connection sends
// a single request, then batches of Depth; every response is counted.
func TestLoadHTTPPrimesWithOneRequest(t *testing.T) {
	var mu sync.Mutex
	var firstReads []int
	addr := tinyServer(t, func(c net.Conn) {
		buf := make([]byte, 4096)
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		mu.Lock()
		firstReads = append(firstReads, strings.Count(string(buf[:n]), "\r\n\r\n"))
		mu.Unlock()
		resp := "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n" + helloBody
		c.Write([]byte(resp))
		httpHandler("200 OK", helloBody)(c)
	})
	res, err := runLoad(LoadConfig{Mode: "http", Addr: addr, Conns: 3, Depth: 8,
		Warmup: 10 * time.Millisecond, Duration: 100 * time.Millisecond, Body: helloBody})
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops == 0 {
		t.Fatal("no response counted in the window")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(firstReads) != 3 || firstReads[0] != 1 || firstReads[1] != 1 || firstReads[2] != 1 {
		t.Errorf("requests in each connection's first read: %v, want [1 1 1]", firstReads)
	}
}
