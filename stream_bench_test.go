//go:build linux

package ioloop

import (
	"bytes"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// benchLoop starts a loop for a benchmark and stops it at the end.
func benchLoop(b *testing.B) *IOLoop {
	b.Helper()
	l, err := New()
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- l.Start() }()
	b.Cleanup(func() {
		l.Stop()
		<-done
		_ = l.Close(false)
	})
	return l
}

// echoStream makes s echo everything back, the way examples/echo does.
func echoStream(s *Stream) {
	var onData func([]byte, error)
	onData = func(p []byte, err error) {
		if err != nil {
			return
		}
		_ = s.Write(p, nil)
		_ = s.ReadSome(onData)
	}
	_ = s.ReadSome(onData)
}

// servedByLoop starts a bench loop, serves one end of a socketpair on it
// with a Stream set up by serve, and returns the other end: a blocking fd
// for the benchmark goroutine, closed at the end of the benchmark.
func servedByLoop(b *testing.B, serve func(*Stream)) int {
	b.Helper()
	l := benchLoop(b)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { unix.Close(fds[0]) })
	ready := make(chan struct{})
	_ = l.AddCallback(func() {
		defer close(ready)
		s, err := NewStream(l, fds[1])
		if err != nil {
			b.Error(err)
			return
		}
		serve(s)
	})
	<-ready
	return fds[0]
}

// exchange writes send on the blocking fd and reads len(recv) bytes back
// into recv.
func exchange(b *testing.B, fd int, send, recv []byte) {
	if _, err := unix.Write(fd, send); err != nil {
		b.Fatal(err)
	}
	for got := 0; got < len(recv); {
		n, err := unix.Read(fd, recv[got:])
		if err != nil || n == 0 {
			b.Fatal(err)
		}
		got += n
	}
}

// BenchmarkStreamEchoRoundTrip: a blocking client on one end of a
// socketpair, a Stream echo server on the loop at the other; one op is a
// 64-byte round trip. Allocations are counted process-wide, so the loop's
// are included: the steady state must show 0 allocs/op.
func BenchmarkStreamEchoRoundTrip(b *testing.B) {
	for _, size := range []int{64, 16 << 10} {
		b.Run(byteSize(size), func(b *testing.B) {
			client := servedByLoop(b, echoStream)
			msg := make([]byte, size)
			buf := make([]byte, size)
			roundTrip := func() { exchange(b, client, msg, buf) }
			for i := 0; i < 100; i++ { // warm up: buffers grown, handler registered
				roundTrip()
			}
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				roundTrip()
			}
		})
	}
}

// BenchmarkStreamPingPongOnLoop: both ends are Streams on the same loop, a
// client writing 64 bytes and waiting for them with ReadBytes, the server
// echoing. Everything runs on the loop goroutine, so this is the cost of
// the stream machinery and the loop per round trip (two readiness events).
func BenchmarkStreamPingPongOnLoop(b *testing.B) {
	benchOnLoop(b, echoStream, make([]byte, 64), make([]byte, 64), 1)
}

// benchOnLoop runs a client and a server Stream on one loop, over a
// socketpair: serve sets the server up; the client writes send, waits for
// len(want) bytes with ReadBytes (which must equal want) and repeats. One
// op is one of the perRound requests a round carries. Nothing but the loop
// goroutine runs, so it is the shape to count instructions on (callgrind).
func benchOnLoop(b *testing.B, serve func(*Stream), send, want []byte, perRound int) {
	l := benchLoop(b)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	var client *Stream
	var remaining int
	done := make(chan struct{}, 1)
	var onReply func([]byte, error)
	onReply = func(p []byte, err error) {
		if err != nil || !bytes.Equal(p, want) {
			b.Errorf("reply %q, %v", p, err)
			done <- struct{}{}
			return
		}
		if remaining -= perRound; remaining <= 0 {
			done <- struct{}{}
			return
		}
		_ = client.Write(send, nil)
		_ = client.ReadBytes(len(want), onReply)
	}
	run := func(n int) {
		_ = l.AddCallback(func() {
			remaining = n
			_ = client.Write(send, nil)
			_ = client.ReadBytes(len(want), onReply)
		})
		select {
		case <-done:
		case <-time.After(time.Minute):
			b.Fatal("the on-loop client stalled")
		}
	}
	ready := make(chan struct{})
	_ = l.AddCallback(func() {
		srv, err := NewStream(l, fds[1])
		if err != nil {
			b.Error(err)
		}
		serve(srv)
		client, err = NewStream(l, fds[0])
		if err != nil {
			b.Error(err)
		}
		close(ready)
	})
	<-ready
	run(100 * perRound)
	b.ReportAllocs()
	b.ResetTimer()
	run(b.N)
	b.StopTimer()
	_ = l.AddCallback(func() { client.Close() })
}

// httpRequest and httpResponse are the shapes of the HTTP benchmarks: a
// small GET head, framed by "\r\n\r\n" as the bench's peers frame it, and
// a fixed answer.
var (
	httpRequest  = []byte("GET / HTTP/1.1\r\nHost: 127.0.0.1:8888\r\nUser-Agent: bench\r\n\r\n")
	httpResponse = []byte("HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, world!")
	httpDelim    = []byte("\r\n\r\n")
)

// httpStream answers every request head on s with httpResponse: the
// ReadUntil + Write path of an HTTP/1.1 keep-alive server, pipelining
// included. The callback is bound once, as a server would.
func httpStream(s *Stream) {
	var onHead func([]byte, error)
	onHead = func(p []byte, err error) {
		if err != nil {
			return
		}
		_ = s.Write(httpResponse, nil)
		_ = s.ReadUntil(httpDelim, 8<<10, onHead)
	}
	_ = s.ReadUntil(httpDelim, 8<<10, onHead)
}

// BenchmarkStreamHTTP: a blocking client on one end of a socketpair sends
// depth request heads in one write and reads the depth answers; a Stream
// on the loop serves them with ReadUntil + Write. One op is one request
// (depth=1: a keep-alive round trip; depth=16: pipelined, the answers
// corked into one writev). The steady state must show 0 allocs/op.
func BenchmarkStreamHTTP(b *testing.B) {
	for _, depth := range []int{1, 16} {
		b.Run("depth="+itoaBench(depth), func(b *testing.B) {
			client := servedByLoop(b, httpStream)
			reqs := bytes.Repeat(httpRequest, depth)
			want := bytes.Repeat(httpResponse, depth)
			buf := make([]byte, len(want))
			batch := func() { exchange(b, client, reqs, buf) }
			for i := 0; i < 100; i++ {
				batch()
			}
			if !bytes.Equal(buf, want) {
				b.Fatalf("answers differ: %q", buf)
			}
			b.ReportAllocs()
			b.ResetTimer()
			n := 0
			for b.Loop() {
				if n%depth == 0 {
					batch()
				}
				n++
			}
		})
	}
}

// BenchmarkStreamPipelineOnLoop: both ends are Streams on one loop. The
// client writes 16 request heads at once and waits for the 16 answers with
// ReadBytes; the server answers each with ReadUntil + Write. One op is one
// request.
func BenchmarkStreamPipelineOnLoop(b *testing.B) {
	const depth = 16
	benchOnLoop(b, httpStream, bytes.Repeat(httpRequest, depth), bytes.Repeat(httpResponse, depth), depth)
}

// BenchmarkStreamIdleMemory measures what an idle connection costs: 1,000
// socketpairs, each with a Stream echo server on the loop that has served
// one 64-byte round trip and waits in ReadSome, as a server's streams wait
// between requests. heap-B/stream is the growth of HeapInuse (after a GC)
// per stream, so it counts the Stream, its callbacks, its buffers and its
// handler table slot; the kernel's socket buffers are not in it. The timed
// part is a round trip on each connection in turn.
func BenchmarkStreamIdleMemory(b *testing.B) {
	const conns = 1000
	l := benchLoop(b)
	clients := make([]int, conns)
	servers := make([]int, conns)
	for i := range conns {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			b.Fatal(err)
		}
		clients[i], servers[i] = fds[0], fds[1]
	}
	b.Cleanup(func() {
		for _, fd := range clients {
			_ = unix.Close(fd)
		}
	})
	msg := make([]byte, 64)
	buf := make([]byte, 64)
	roundTrip := func(fd int) {
		if _, err := unix.Write(fd, msg); err != nil {
			b.Fatal(err)
		}
		for got := 0; got < len(buf); {
			n, err := unix.Read(fd, buf[got:])
			if err != nil || n == 0 {
				b.Fatal(err)
			}
			got += n
		}
	}
	heapInuse := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse
	}
	before := heapInuse()
	streams := make([]*Stream, conns)
	ready := make(chan struct{})
	_ = l.AddCallback(func() {
		for i, fd := range servers {
			s, err := NewStream(l, fd)
			if err != nil {
				b.Error(err)
			}
			echoStream(s)
			streams[i] = s
		}
		close(ready)
	})
	<-ready
	for _, fd := range clients {
		roundTrip(fd)
	}
	perStream := float64(int64(heapInuse()-before)) / conns
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		roundTrip(clients[i%conns])
		i++
	}
	b.StopTimer()
	b.ReportMetric(perStream, "heap-B/stream") // after the loop: ResetTimer drops metrics
	done := make(chan struct{})
	_ = l.AddCallback(func() {
		for _, s := range streams {
			s.Close()
		}
		close(done)
	})
	<-done
}

func byteSize(n int) string {
	if n >= 1<<10 {
		return itoaBench(n>>10) + "KiB"
	}
	return itoaBench(n) + "B"
}

func itoaBench(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}
