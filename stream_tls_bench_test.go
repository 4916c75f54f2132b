//go:build linux

package ioloop

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// BenchmarkTLSHelloKeepAlive: a TLS server stream answering HTTP-like
// requests (ReadUntil the end of the head, Write the answer) on a
// keep-alive connection; one op is one request and its answer, or a
// pipelined batch of depth requests and their answers in one record each
// way. So that the allocations counted (process-wide) are the server's, the
// client allocates nothing: a crypto/tls client does the handshake and one
// real exchange, then encrypts b.N requests in advance, and the timed loop
// writes those records and reads the answers' records with plain system
// calls, without decrypting them.
//
// What it shows (Go 1.26): 2 allocs/op of 24 B at any depth, and none of
// them ours. crypto/tls's record reader allocates an atLeastReader
// (conn.go, readFromUntil) each time it asks the transport for bytes: once
// for the read that brings the record, once for the read that finds the
// socket drained and says "would block" (the stream must ask until then:
// crypto/tls may hold bytes epoll cannot see). Writes allocate nothing
// (crypto/tls pools its record buffers).
func BenchmarkTLSHelloKeepAlive(b *testing.B) {
	for _, depth := range []int{1, 16} {
		b.Run(fmt.Sprintf("depth=%d", depth), func(b *testing.B) { benchTLSHello(b, depth) })
	}
}

var (
	benchReq  = []byte("GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
	benchResp = []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world!")
	benchEnd  = []byte("\r\n\r\n")
)

// helloConn answers every request head with benchResp, allocation-free.
type helloConn struct {
	s      *Stream
	onHead func([]byte, error)
}

func (c *helloConn) head(p []byte, err error) {
	if err != nil {
		return
	}
	_ = c.s.Write(benchResp, nil)
	_ = c.s.ReadUntil(benchEnd, 8192, c.onHead)
}

func benchTLSHello(b *testing.B, depth int) {
	l := benchLoop(b)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(fds[0])
	cert := pinCert(&testing.T{})
	ready := make(chan error, 1)
	_ = l.AddCallback(func() {
		s, err := NewStream(l, fds[1])
		if err != nil {
			ready <- err
			return
		}
		c := &helloConn{s: s}
		c.onHead = c.head
		ready <- s.StartTLS(TLSServer, &tls.Config{Certificates: []tls.Certificate{cert}}, func(err error) {
			if err == nil {
				_ = s.ReadUntil(benchEnd, 8192, c.onHead)
			}
		})
	})
	if err := <-ready; err != nil {
		b.Fatal(err)
	}

	// The client: a real handshake and exchange (which also takes the
	// server's session ticket off the wire), then records made in advance.
	cfd, err := unix.FcntlInt(uintptr(fds[0]), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	f := os.NewFile(uintptr(cfd), "client")
	nc, err := net.FileConn(f)
	f.Close()
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	cc := &captureConn{Conn: nc, passWrites: 1 << 30}
	client := tls.Client(cc, &tls.Config{InsecureSkipVerify: true})
	batch := bytes.Repeat(benchReq, depth)
	answer := bytes.Repeat(benchResp, depth)
	got := make([]byte, len(answer))
	if _, err := client.Write(batch); err != nil {
		b.Fatal(err)
	}
	for n := 0; n < len(got); {
		k, err := client.Read(got[n:])
		if err != nil {
			b.Fatal(err)
		}
		n += k
	}
	if !bytes.Equal(got, answer) {
		b.Fatalf("answer %q", got)
	}
	if err := unix.SetNonblock(fds[0], false); err != nil { // shared with nc's duplicate, now idle
		b.Fatal(err)
	}
	cc.passWrites = 0
	const warm = 100
	for i := 0; i < b.N+warm; i++ {
		client.Write(batch)
	}
	records := cc.take()
	recLen := len(records) / (b.N + warm)
	rbuf := make([]byte, 64<<10)
	exchange := func(i int) {
		if _, err := unix.Write(fds[0], records[i*recLen:(i+1)*recLen]); err != nil {
			b.Fatal(err)
		}
		// The answers: records of 5-byte header and body, as many as
		// it takes (one, unless a write was split).
		for want := len(answer); want > 0; {
			readFull(b, fds[0], rbuf[:5])
			n := int(rbuf[3])<<8 | int(rbuf[4])
			readFull(b, fds[0], rbuf[:n])
			want -= n - 17 // TLS 1.3: a type byte and a 16-byte tag
		}
	}
	for i := 0; i < warm; i++ {
		exchange(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		exchange(warm + i)
	}
	b.StopTimer()
}

func readFull(b *testing.B, fd int, p []byte) {
	for got := 0; got < len(p); {
		n, err := unix.Read(fd, p[got:])
		if err != nil || n == 0 {
			b.Fatalf("read: %d, %v", n, err)
		}
		got += n
	}
}

// BenchmarkTLSIdleMemory reports the heap an idle TLS server stream holds
// after its handshake and one request (heap-B/stream): the Stream, its
// TLS state and transport, and crypto/tls's Conn with its buffers. The
// clients' crypto/tls state is dropped before measuring; their sockets
// stay open. The timed loop is a keep-alive request on one of them.
func BenchmarkTLSIdleMemory(b *testing.B) {
	const conns = 200
	l := benchLoop(b)
	cert := pinCert(&testing.T{})
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}}
	heapInuse := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse
	}
	type client struct {
		fd int
		nc net.Conn
		tc *tls.Conn
	}
	clients := make([]*client, conns)
	for i := range clients {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			b.Fatal(err)
		}
		f := os.NewFile(uintptr(fds[0]), "client")
		nc, err := net.FileConn(f)
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
		clients[i] = &client{fd: fds[1], nc: nc}
	}
	b.Cleanup(func() {
		for _, c := range clients {
			c.nc.Close()
		}
	})
	before := heapInuse()
	ready := make(chan error, 1)
	_ = l.AddCallback(func() {
		for _, c := range clients {
			s, err := NewStream(l, c.fd)
			if err != nil {
				ready <- err
				return
			}
			h := &helloConn{s: s}
			h.onHead = h.head
			if err := s.StartTLS(TLSServer, cfg, func(err error) {
				if err == nil {
					_ = s.ReadUntil(benchEnd, 8192, h.onHead)
				}
			}); err != nil {
				ready <- err
				return
			}
		}
		ready <- nil
	})
	if err := <-ready; err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, len(benchResp))
	exchange := func(tc *tls.Conn) {
		if _, err := tc.Write(benchReq); err != nil {
			b.Fatal(err)
		}
		for n := 0; n < len(buf); {
			k, err := tc.Read(buf[n:])
			if err != nil {
				b.Fatal(err)
			}
			n += k
		}
	}
	for _, c := range clients {
		c.tc = tls.Client(c.nc, &tls.Config{InsecureSkipVerify: true})
		exchange(c.tc)
	}
	keep := clients[0].tc
	for _, c := range clients {
		c.tc = nil // the client's side goes to the GC; its socket stays open
	}
	perStream := float64(int64(heapInuse()-before)) / conns
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		exchange(keep)
	}
	b.StopTimer()
	b.ReportMetric(perStream, "heap-B/stream")
}
