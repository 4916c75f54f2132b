//go:build linux

package ioloop

import (
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

// BenchmarkStreamEchoRoundTrip: a blocking client on one end of a
// socketpair, a Stream echo server on the loop at the other; one op is a
// 64-byte round trip. Allocations are counted process-wide, so the loop's
// are included: the steady state must show 0 allocs/op.
func BenchmarkStreamEchoRoundTrip(b *testing.B) {
	for _, size := range []int{64, 16 << 10} {
		b.Run(byteSize(size), func(b *testing.B) {
			l := benchLoop(b)
			fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				b.Fatal(err)
			}
			defer unix.Close(fds[0])
			ready := make(chan struct{})
			_ = l.AddCallback(func() {
				s, err := NewStream(l, fds[1])
				if err != nil {
					b.Error(err)
				}
				echoStream(s)
				close(ready)
			})
			<-ready
			msg := make([]byte, size)
			buf := make([]byte, size)
			roundTrip := func() {
				if _, err := unix.Write(fds[0], msg); err != nil {
					b.Fatal(err)
				}
				for got := 0; got < size; {
					n, err := unix.Read(fds[0], buf[got:])
					if err != nil || n == 0 {
						b.Fatal(err)
					}
					got += n
				}
			}
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
	l := benchLoop(b)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	msg := make([]byte, 64)
	var client *Stream
	var remaining int
	done := make(chan struct{}, 1)
	var onReply func([]byte, error)
	onReply = func(p []byte, err error) {
		if err != nil {
			b.Error(err)
			return
		}
		if remaining--; remaining <= 0 {
			done <- struct{}{}
			return
		}
		_ = client.Write(msg, nil)
		_ = client.ReadBytes(len(msg), onReply)
	}
	run := func(n int) {
		_ = l.AddCallback(func() {
			remaining = n
			_ = client.Write(msg, nil)
			_ = client.ReadBytes(len(msg), onReply)
		})
		select {
		case <-done:
		case <-time.After(time.Minute):
			b.Fatal("ping-pong stalled")
		}
	}
	ready := make(chan struct{})
	_ = l.AddCallback(func() {
		srv, err := NewStream(l, fds[1])
		if err != nil {
			b.Error(err)
		}
		echoStream(srv)
		client, err = NewStream(l, fds[0])
		if err != nil {
			b.Error(err)
		}
		close(ready)
	})
	<-ready
	run(100)
	b.ReportAllocs()
	b.ResetTimer()
	run(b.N)
	b.StopTimer()
	_ = l.AddCallback(func() { client.Close() })
	_ = l.AddCallback(func() {
		// The server side sees EOF and closes itself.
	})
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
